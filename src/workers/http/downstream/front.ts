/**
 * The listener front: a Node `net`/`tls` server in the worker thread for what uWebSockets.js
 * 20.30 cannot do on a listener itself (docs/edge.md, "The listener front"):
 *
 * - client certificate verification (mTLS, `tls.clientAuth`): uWS lets a client that sends
 *   no certificate in and cannot show a handler the verified certificate;
 * - the PROXY protocol v1 (uWS parses only v2), and v2 read once per connection (uWS
 *   re-parses it before every request on a keep-alive connection, so a client behind a TCP
 *   balancer could replace the address).
 *
 * Each worker listens on the public port with its own SO_REUSEPORT socket (the native
 * `listenReusePort`: Node 20's `net` cannot set the option), reads the PROXY header if the
 * listener takes one, terminates TLS if it is the HTTPS listener, then hands the plain bytes
 * to a private uWS app of the worker on 127.0.0.1 over a loopback connection, which starts
 * with a PROXY v2 header of its own. That header's 16-byte "source address" is not an
 * address but a ticket: byte 0 is 0xfd, bytes 1-4 the connection's number, bytes 5-15
 * random. The uWS handler reads it back (`getProxiedRemoteAddress`) and asks `peer()` for
 * the client's real address and certificate. A ticket cannot be guessed, so neither a local
 * process connecting to the private port nor a client sending its own header at a request
 * boundary can borrow another connection's identity; a request without a valid ticket is
 * refused (403).
 *
 * Cost: the TLS records are handled by Node's TLS (OpenSSL) instead of uWS's, and every byte
 * crosses one more loopback connection. Listeners without these options keep the direct uWS
 * path.
 *
 * Must never: pass bytes to uWS before the connection's ticket is registered, or keep a
 * ticket after either side closed.
 */
import { createHash, randomFillSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { parseAddress } from '../../../shared/cidr';
import type { Logger } from '../../../shared/log';
import { loadNative } from '../../../shared/native';
import { parseProxyHeader, proxyV2Header, type ProxyProtocolMode } from './proxy-protocol';
import type { TlsFiles, TlsSnapshot } from '../../../shared/tls-certs';
import type { Uws } from '../../../shared/uws';

type Handler = (res: HttpResponse, req: HttpRequest) => void;

/** What the uWS handler learns about a fronted connection. */
export interface FrontPeer {
  /** The client's address, 16 bytes (IPv4 mapped): the TCP peer, or the PROXY header's source. */
  readonly address: Uint8Array;
  /** The verified client certificate as the identity header's value; '' when none was sent. */
  readonly clientCert: string;
}

interface Entry extends FrontPeer {
  readonly ticket: Uint8Array;
}

export interface FrontOptions {
  readonly host: string;
  readonly port: number;
  /** The PROXY protocol versions taken; null: none (the connection starts with the client's bytes). */
  readonly proxyProtocol: ProxyProtocolMode | null;
  /** TLS termination: the certificates, and client verification (null: no client certificates asked). */
  readonly tls: { readonly snapshot: TlsSnapshot; readonly clientAuth: { readonly required: boolean } | null } | null;
}

/** How long a connection may take to send its PROXY header, and to finish the TLS handshake. */
export const FRONT_HEADER_TIMEOUT_MS = 10_000;
const TICKET_MARK = 0xfd;
const BACKLOG = 511;

/** An XFCC key=value pair, quoted when the value has a separator in it. */
function xfccPair(key: string, value: string): string {
  return /[,;="\\]/.test(value) ? `${key}="${value.replace(/["\\]/g, (c) => `\\${c}`)}"` : `${key}=${value}`;
}

/**
 * The identity header's value for a verified client certificate, in the format of Envoy's
 * `x-forwarded-client-cert`: `Hash` (SHA-256 of the DER, hex), `Subject` (RFC 4514 order:
 * most specific first), then one `URI` and one `DNS` per subject alternative name.
 */
export function clientCertValue(cert: X509Certificate): string {
  // Node gives one attribute per line, least specific first, values already escaped as RFC 4514 wants.
  const subject = cert.subject
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .join(',');
  const parts = [`Hash=${createHash('sha256').update(cert.raw).digest('hex')}`, `Subject="${subject.replace(/["\\]/g, (c) => `\\${c}`)}"`];
  const sans = (cert.subjectAltName ?? '').split(', ');
  for (const kind of ['URI', 'DNS']) {
    for (const s of sans) if (s.startsWith(`${kind}:`)) parts.push(xfccPair(kind, s.slice(kind.length + 1)));
  }
  return parts.join(';');
}

/** The context options of one certificate pair (plus the client CA when certificates are verified). */
function optionsOf(files: TlsFiles, ca: Buffer | null): SecureContextOptions {
  return {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ...(files.passphrase === undefined ? {} : { passphrase: files.passphrase }),
    ...(ca === null ? {} : { ca }),
  };
}

interface Contexts {
  readonly id: string;
  readonly byName: ReadonlyMap<string, SecureContext>;
  /** The default certificate: the server's own context, used when the SNI callback names none. */
  readonly fallbackOptions: SecureContextOptions;
}

export class FrontListener {
  private server: Server | null = null;
  private tlsServer: ReturnType<typeof createTlsServer> | null = null;
  private contexts: Contexts | null = null;
  private app: TemplatedApp | null = null;
  private innerToken: us_listen_socket | null = null;
  private innerPort = 0;
  private nextNumber = 1;
  private readonly entries = new Map<number, Entry>();
  /** Streams waiting for their TLS handshake, with the address their PROXY header gave. */
  private readonly pending = new WeakMap<object, Uint8Array>();
  private readonly open = new Set<Duplex>();

  constructor(
    private readonly uws: Uws,
    private readonly options: FrontOptions,
    private readonly log: Logger,
  ) {}

  /** Builds the private uWS app and listens on the public port; an error message, or null once listening. */
  start(handler: Handler): string | null {
    const app = this.uws.App();
    app.any('/*', handler);
    app.listen('127.0.0.1', 0, (t) => {
      this.innerToken = t === false ? null : t;
    });
    if (this.innerToken === null) {
      (app as unknown as { close(): void }).close();
      return 'cannot listen on 127.0.0.1 (the listener front\'s private port)';
    }
    this.app = app;
    this.innerPort = this.uws.us_socket_local_port(this.innerToken);
    const tls = this.options.tls;
    if (tls !== null) {
      try {
        this.contexts = this.buildContexts(tls.snapshot);
      } catch (e) {
        this.closeAll();
        return `cannot load the HTTPS listener's certificates: ${(e as Error).message}`;
      }
      const auth = tls.clientAuth;
      // The server's own context (the default certificate) answers clients without SNI and
      // names no certificate lists (the callback then returns no context).
      const server = createTlsServer({
        ...(this.contexts as Contexts).fallbackOptions,
        SNICallback: (name, cb) => cb(null, this.contextFor(name)),
        requestCert: auth !== null,
        rejectUnauthorized: auth?.required === true,
        handshakeTimeout: FRONT_HEADER_TIMEOUT_MS,
        ALPNProtocols: ['http/1.1'],
      });
      server.on('secureConnection', (t: TLSSocket) => this.onSecure(t));
      server.on('tlsClientError', (err, s) => {
        this.log.debug('front: TLS handshake failed', { err: err.message, peer: s.remoteAddress });
        s.destroy();
      });
      this.tlsServer = server;
    }
    let fd: number;
    try {
      fd = loadNative().listenReusePort(this.options.host, this.options.port, BACKLOG);
    } catch (e) {
      this.closeAll();
      return `cannot listen on ${this.options.host}:${this.options.port}: ${(e as Error).message}`;
    }
    const server = createServer({ noDelay: true }, (s) => this.onConnection(s));
    server.on('error', (err) => this.log.error('front: listener error', { err }));
    server.listen({ fd });
    this.server = server;
    this.log.debug('front: listening', { host: this.options.host, port: this.options.port, innerPort: this.innerPort, tls: tls !== null });
    return null;
  }

  /**
   * The client behind a request on the private app: looked up by the ticket in the
   * connection's PROXY header; undefined when there is no valid ticket.
   */
  peer(res: HttpResponse): FrontPeer | undefined {
    const ab = res.getProxiedRemoteAddress();
    if (ab.byteLength !== 16) return undefined;
    const b = new Uint8Array(ab);
    if (b[0] !== TICKET_MARK) return undefined;
    const n = (((b[1] as number) << 24) | ((b[2] as number) << 16) | ((b[3] as number) << 8) | (b[4] as number)) >>> 0;
    const e = this.entries.get(n);
    if (e === undefined) return undefined;
    for (let i = 5; i < 16; i++) if (e.ticket[i] !== b[i]) return undefined;
    return e;
  }

  /** New certificates (SIGHUP): new handshakes use them; open connections keep theirs. */
  swap(snap: TlsSnapshot): void {
    if (this.tlsServer === null || this.contexts === null || snap.id === this.contexts.id) return;
    try {
      const next = this.buildContexts(snap);
      this.tlsServer.setSecureContext(next.fallbackOptions);
      this.contexts = next;
      this.log.info('tls: serving new certificates', { snapshot: snap.id, front: true });
    } catch (e) {
      this.log.error('tls: cannot load the new certificates; keeping the current ones', { err: e });
    }
  }

  /** Stops accepting (drain): connections already open keep going. */
  stopListening(): void {
    this.server?.close();
    this.server = null;
  }

  /** Closes everything: the public socket, open connections, the private app. Idempotent. */
  closeAll(): void {
    this.stopListening();
    for (const s of this.open) s.destroy();
    this.open.clear();
    this.entries.clear();
    if (this.innerToken !== null) this.uws.us_listen_socket_close(this.innerToken);
    this.innerToken = null;
    (this.app as unknown as { close(): void } | null)?.close();
    this.app = null;
  }

  private buildContexts(snap: TlsSnapshot): Contexts {
    const ca = snap.clientCaFile === undefined ? null : readFileSync(snap.clientCaFile);
    const byFiles = new Map<string, SecureContext>();
    const of = (f: TlsFiles): SecureContext => {
      let c = byFiles.get(f.certFile);
      if (c === undefined) byFiles.set(f.certFile, (c = createSecureContext(optionsOf(f, ca))));
      return c;
    };
    const byName = new Map<string, SecureContext>();
    for (const { name, files } of snap.serverNames) byName.set(name, of(files));
    return { id: snap.id, byName, fallbackOptions: optionsOf(snap.defaultCert, ca) };
  }

  /**
   * uWS's SNI semantics (exact name, then a one-label wildcard), but case-insensitive;
   * undefined: the default certificate.
   */
  private contextFor(serverName: string): SecureContext | undefined {
    const c = this.contexts as Contexts;
    const name = serverName.toLowerCase();
    const exact = c.byName.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot === -1 ? undefined : c.byName.get(`*${name.slice(dot)}`);
  }

  private onConnection(raw: Socket): void {
    this.track(raw);
    const mode = this.options.proxyProtocol;
    if (mode === null) {
      this.afterHeader(raw, null);
      return;
    }
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.log.debug('front: no PROXY header in time', { peer: raw.remoteAddress });
      raw.destroy();
    }, FRONT_HEADER_TIMEOUT_MS);
    const onData = (d: Buffer): void => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      const h = parseProxyHeader(buf, mode);
      if (h.kind === 'more') return;
      raw.off('data', onData);
      clearTimeout(timer);
      if (h.kind === 'bad') {
        // nginx and HAProxy close such a connection too: there is no HTTP to answer yet.
        this.log.debug('front: bad PROXY header; closing', { reason: h.reason, peer: raw.remoteAddress });
        raw.destroy();
        return;
      }
      raw.pause();
      if (buf.length > h.length) raw.unshift(buf.subarray(h.length));
      this.afterHeader(raw, h.source);
    };
    raw.on('data', onData);
    raw.on('close', () => clearTimeout(timer));
  }

  private afterHeader(raw: Socket, source: Uint8Array | null): void {
    const address = source ?? parseAddress(raw.remoteAddress ?? '') ?? new Uint8Array(16);
    if (this.tlsServer === null) {
      this.handOver(raw, address, '');
      return;
    }
    this.pending.set(raw, address);
    // Node's TLS takes over the socket, including bytes already read past the PROXY header.
    this.tlsServer.emit('connection', raw);
  }

  private onSecure(t: TLSSocket): void {
    // TLSSocket keeps the stream it wraps as `_parent` (Node's tls module, every version).
    const raw = (t as unknown as { _parent?: object })._parent;
    const address = raw === undefined ? undefined : this.pending.get(raw);
    if (address === undefined) {
      t.destroy();
      return;
    }
    this.track(t);
    let clientCert = '';
    if (this.options.tls?.clientAuth != null) {
      const cert = t.getPeerX509Certificate();
      if (cert !== undefined) {
        // Optional verification lets a certificate from another CA through the handshake:
        // refuse the connection, as nginx's `ssl_verify_client optional` answers 400.
        if (!t.authorized) {
          this.log.debug('front: client certificate not trusted; closing', { reason: String(t.authorizationError), peer: t.remoteAddress });
          t.destroy();
          return;
        }
        clientCert = clientCertValue(cert);
      }
    }
    this.handOver(t, address, clientCert);
  }

  /** Connects `client` to the private uWS app behind a ticket, and pumps both ways. */
  private handOver(client: Duplex, address: Uint8Array, clientCert: string): void {
    const n = this.nextNumber;
    this.nextNumber = n === 0xffffffff ? 1 : n + 1;
    const ticket = new Uint8Array(16);
    randomFillSync(ticket, 5, 11);
    ticket[0] = TICKET_MARK;
    ticket[1] = n >>> 24;
    ticket[2] = (n >>> 16) & 0xff;
    ticket[3] = (n >>> 8) & 0xff;
    ticket[4] = n & 0xff;
    this.entries.set(n, { address, clientCert, ticket });
    const inner = connect({ host: '127.0.0.1', port: this.innerPort, noDelay: true });
    this.track(inner);
    inner.write(proxyV2Header(ticket));
    client.pipe(inner);
    inner.pipe(client);
    client.resume();
    let closed = false;
    const done = (): void => {
      if (closed) return;
      closed = true;
      // After 2^32 connections a number comes round again: only delete our own entry.
      if (this.entries.get(n)?.ticket === ticket) this.entries.delete(n);
      client.destroy();
      inner.destroy();
    };
    client.on('close', done);
    inner.on('close', done);
    client.on('error', done);
    inner.on('error', done);
  }

  private track(s: Duplex): void {
    this.open.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => this.open.delete(s));
  }
}
