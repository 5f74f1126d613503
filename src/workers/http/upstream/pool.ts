/**
 * Keep-alive connection pools to upstream hosts, per worker: raw `net.Socket`s speaking
 * HTTP/1.1, one request at a time per connection (never pipelined). Idle connections are
 * kept LIFO (the warmest first) and closed after the pool's idle timeout, or sooner when the
 * upstream announced a shorter `Keep-Alive: timeout=` (kept one second below it, to stay
 * clear of the upstream closing first: the keep-alive reuse race).
 *
 * A connection delivers socket events to its current owner (the proxied request using it);
 * idle connections that receive bytes or close are dropped from the pool.
 *
 * Plain TCP connections are read by the addon (`NativeReader` below, native/napi/src/reader.rs):
 * into one arena per thread during the poll phase, handed to their owners once per turn. The
 * bytes an owner gets in `onData` are only valid during that call; an owner that keeps any of
 * them copies them first; `onData` gets a range of the arena, not a view of its own. TLS
 * connections read through the stream (`data` events): the TLS layer, not the socket,
 * holds their plaintext, so the reader cannot read them.
 *
 * A request head with no body to follow is queued and sent with the turn's other heads once
 * the turn's I/O callbacks are done (`queueText`): a sleeping upstream is woken once per turn,
 * not once per request. The bytes read from plain TCP connections wait for the same moment
 * and are handed to their owners together, before the heads go out (`readerTurn`).
 *
 * A pool with TLS settings (upstreams.NAME.tls) opens `node:tls` connections: SNI, chain and
 * host name verified, client certificate for mTLS, one TLS session kept for resumption. A
 * connection counts as connected only after the handshake and the verification passed
 * (`secureConnect`), so the connect timeout covers the handshake; bytes written before that
 * stay in the TLS socket and never reach an unverified upstream.
 *
 * Must never: pipeline, reuse a connection whose response was not read completely, or keep
 * a per-request timer (idle expiry runs on the coarse clock).
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type SecureContext } from 'node:tls';
import { getSystemErrorName } from 'node:util';
import { coarseNow, track, untrack, type DeadlineHolder } from '../clock';
import type { PoolConfig } from '../../../shared/config';
import { loadNative, READER_COUNT, READER_ENTRY_BASE } from '../../../shared/native';

/** A group's TLS settings, built once per config (Upstreams.build); null on a pool = plain TCP. */
export interface PoolTls {
  /** Digest of the TLS identity (serverName, verify, CA, client certificate): part of the pool key. */
  readonly id: string;
  /** CA bundle and client certificate, parsed once per config build and shared by every connection. */
  readonly secureContext: SecureContext;
  /** Configured SNI / expected certificate name; undefined = the address host. */
  readonly serverName: string | undefined;
  readonly verify: boolean;
}

/** Codes of plain socket errors (ECONNREFUSED, ECONNRESET, EAI_AGAIN, ...), as opposed to TLS ones. */
const ERRNO_CODE = /^E[A-Z]+$|^EAI_/;
/** The reason part of an OpenSSL error string: `...:SSL routines:<function>:<reason>:<file>:...`. */
const OPENSSL_REASON = /SSL routines:[^:]*:([^:]+):/;

const native = loadNative();
const writeString = native.writeString;

/**
 * The addon's upstream reader (native/napi/src/reader.rs), opened by the thread's first plain
 * TCP connection: it reads every watched connection into its arena during the poll phase,
 * without a JavaScript call, and `readerTurn` hands the turn's reads to their owners at
 * the end of the turn. `conns` maps the slot each connection was watched with to it; a slot
 * freed during a turn is reused only after the next take, so that no read taken later can
 * reach a newer connection in the same slot.
 */
interface NativeReader {
  readonly arena: Buffer;
  readonly entries: Int32Array;
  readonly conns: (Conn | null)[];
  readonly free: number[];
  readonly freeing: number[];
}
const READER_ARENA_BYTES = 1024 * 1024;
const READER_MAX_READS = 1024;
let reader: NativeReader | null = null;

/** This thread's reader arena, once the reader is open: the reads it hands over are views of it. */
export function readerArena(): Buffer | null {
  return reader === null ? null : reader.arena;
}

function openReader(): NativeReader {
  const r: NativeReader = {
    arena: Buffer.allocUnsafe(READER_ARENA_BYTES),
    entries: new Int32Array(READER_ENTRY_BASE + 3 * READER_MAX_READS),
    conns: [],
    free: [],
    freeing: [],
  };
  native.readerOpen(r.arena, r.entries, readerTurn);
  reader = r;
  return r;
}

/**
 * The reader's check-phase call, once per turn that read anything or queued a request head
 * (scheduleFlush asks with readerWant): the turn's reads, then its heads.
 */
function readerTurn(): void {
  const r = reader as NativeReader;
  const n = r.entries[READER_COUNT] as number;
  r.entries[READER_COUNT] = 0;
  deliverNativeReads(r, n);
  if (flushScheduled && flushByReader) sendQueued();
}

/** Hands the reads the addon made since the last take to their connections, in read order. */
function takeNativeReads(): void {
  const r = reader;
  if (r !== null) deliverNativeReads(r, native.readerTake());
}

function deliverNativeReads(r: NativeReader, n: number): void {
  const e = r.entries;
  // Counted first: a connection that finishes its exchange while more
  // of its reads wait here is closed by HostPool.release, never handed to another request.
  for (let i = 0, j = READER_ENTRY_BASE; i < n; i++, j += 3) {
    const c = r.conns[e[j] as number];
    if (c !== null && c !== undefined) c.deferred++;
  }
  for (let i = 0, j = READER_ENTRY_BASE; i < n; i++, j += 3) {
    const c = r.conns[e[j] as number];
    if (c === null || c === undefined) continue;
    c.deferred--;
    const start = e[j + 1] as number;
    const len = e[j + 2] as number;
    if (len > 0) c.deliverDeferred(r.arena, start, start + len);
    else c.nativeEnd(len);
  }
  if (r.freeing.length > 0) {
    for (const slot of r.freeing) r.free.push(slot);
    r.freeing.length = 0;
  }
}

/** An error like the ones Node's read path gives for `-errno` ("read ECONNRESET"). */
function sysError(code: number, syscall: string): Error {
  const name = getSystemErrorName(code);
  return Object.assign(new Error(`${syscall} ${name}`), { code: name, errno: code, syscall });
}

/**
 * Request heads queued by `Conn.queueText` during this event-loop turn, sent together when
 * the turn's I/O callbacks are done (libuv's check phase, right after the poll phase that ran
 * the uWS handlers: the reader's call, or setImmediate before it opened). Sending them back
 * to back wakes a sleeping upstream once per turn instead of once per request; on this
 * machine each wake-up of a process on the other CPU cost more than the send itself
 * (docs/decisions.md, D4). Envoy defers its writes to the end of the dispatcher loop the same
 * way.
 */
let queuedConns: Conn[] = [];
let queuedTexts: string[] = [];
let flushScheduled = false;
/** The scheduled end of the turn is the reader's call (readerWant), not an Immediate. */
let flushByReader = false;

/**
 * The end of the turn is the reader's check-phase call (readerTurn), which the turn's reads
 * make anyway: one call into JavaScript per turn for the reads and the heads, instead of a
 * second one through setImmediate. Only a connected plain TCP connection queues a head, and
 * connecting opened the reader, so readerWant answers 0; setImmediate stays for the one case
 * it does not (the reader closed with its environment).
 */
function scheduleFlush(): void {
  if (!flushScheduled) {
    flushScheduled = true;
    flushByReader = reader !== null && native.readerWant() === 0;
    if (!flushByReader) setImmediate(flushQueued);
  }
}

/** The end of the turn through setImmediate, when the reader could not be asked (scheduleFlush). */
function flushQueued(): void {
  if (!flushScheduled) return; // readerTurn sent them
  takeNativeReads();
  sendQueued();
}

/** The turn's queued heads, in the order they were queued. */
function sendQueued(): void {
  flushScheduled = false;
  const conns = queuedConns;
  const texts = queuedTexts;
  queuedConns = [];
  queuedTexts = [];
  for (let i = 0; i < conns.length; i++) (conns[i] as Conn).flushQueued(texts[i] as string);
}

export interface ConnOwner {
  onConnect(conn: Conn): void;
  /**
   * The bytes read are `buf[start..end)`. `buf` may be a buffer shared by every connection of
   * the thread (the reader's arena), larger than the read and reused after this call: read
   * only within the range, and copy what must outlive the call. No view is made per read.
   */
  onData(conn: Conn, buf: Buffer, start: number, end: number): void;
  onEnd(conn: Conn, err: Error | null): void;
  onDrain(conn: Conn): void;
}

export class Conn implements DeadlineHolder {
  readonly socket: Socket;
  owner: ConnOwner | null = null;
  /** Completed exchanges on this connection: > 0 means it came from the idle pool. */
  uses = 0;
  connected = false;
  closed = false;
  deadline = 0;
  trackSlot = -1;
  /** Bytes of a partial response head carried between reads. */
  pending: Buffer | null = null;
  /** -1 = no hint; 0 = the upstream will not wait for another request. */
  private keepAliveMs = -1;
  /** The socket's descriptor once a plain TCP connection is up (-1: TLS, or not connected). */
  private fd = -1;
  /** A request head waits in this turn's queue (queueText): not sent yet. */
  queued = false;
  /** Reads of this connection being handed over (counted during a native take). */
  deferred = 0;
  /** The connection's slot in the native reader once watched, else -1 (Node reads it). */
  private slot = -1;
  /** The owner paused reading (backpressure). */
  private readPaused = false;

  constructor(readonly pool: HostPool) {
    const tls = pool.tlsOptions;
    let s: Socket;
    if (tls === null) {
      // The addon reads it once it is connected; paused, Node never starts reading it.
      s = connect({ host: pool.host, port: pool.port });
      s.pause();
    } else {
      s = pool.connectTls(tls);
      s.on('data', (chunk: Buffer) => this.deliver(chunk, 0, chunk.length));
    }
    s.setNoDelay(true);
    this.socket = s;
    // TLS: connected once the handshake and the certificate checks passed.
    s.on(tls === null ? 'connect' : 'secureConnect', () => {
      this.connected = true;
      if (tls === null) {
        this.fd = socketFd(s);
        if (!this.watch()) return;
      }
      this.owner?.onConnect(this);
    });
    s.on('drain', () => this.owner?.onDrain(this));
    // The bytes read before an end or an error reach the owner before it does.
    s.on('error', (err) => {
      this.takeWaiting();
      this.closeWith(err);
    });
    s.on('close', () => {
      this.takeWaiting();
      this.closeWith(null);
    });
    s.on('end', () => {
      this.takeWaiting();
      this.closeWith(null);
    });
  }

  /** Hands over this connection's reads still waiting for the end of the turn. */
  private takeWaiting(): void {
    if (this.slot !== -1) takeNativeReads();
  }

  /** Puts a connected plain TCP connection in the native reader; false if it had to close. */
  private watch(): boolean {
    const r = reader ?? openReader();
    const slot = r.free.pop() ?? r.conns.length;
    const rc = this.fd < 0 ? -1 : native.readerWatch(this.fd, slot, this.readPaused ? 0 : 1);
    if (rc !== 0) {
      if (slot !== r.conns.length) r.free.push(slot);
      this.closeWith(this.fd < 0 ? new Error('upstream connection without a descriptor') : sysError(rc, 'epoll_ctl'));
      return false;
    }
    r.conns[slot] = this;
    this.slot = slot;
    return true;
  }

  /** Out of the native reader, before the descriptor closes; the slot is free after the next take. */
  private unwatch(): void {
    const r = reader as NativeReader;
    native.readerRemove(this.fd, this.slot);
    r.conns[this.slot] = null;
    r.freeing.push(this.slot);
    this.slot = -1;
  }

  /** The native reader's end of stream (0) or read error (-errno) for this connection. */
  nativeEnd(code: number): void {
    this.closeWith(code === 0 ? null : sysError(code, 'read'));
  }

  /** Backpressure: stop reading until resumeReading (the owner's client is slow). */
  pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    if (this.slot !== -1) native.readerWatch(this.fd, this.slot, 0);
    else this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    if (this.slot !== -1) native.readerWatch(this.fd, this.slot, 1);
    else if (this.pool.tlsOptions !== null) this.socket.resume();
  }

  /**
   * Writes `text` as UTF-8. A plain TCP connection with nothing queued in its stream sends it
   * with one native `send` (the addon's writeString): no Writable bookkeeping, write request
   * or after-write callback per request, which cost more than the system call itself. What
   * that send could not take, and everything else, goes through the stream, which also
   * reports the socket's errors as before. `destroyed` is checked first: once set, the
   * descriptor may already be closed and its number reused.
   */
  writeText(text: string): void {
    const s = this.socket;
    if (this.fd >= 0 && !s.destroyed && s.writableLength === 0) {
      const left = writeString(this.fd, text);
      if (left === 0) return;
      if (left > 0) {
        const bytes = Buffer.from(text, 'utf8');
        s.write(bytes.subarray(bytes.length - left));
        return;
      }
    }
    s.write(text, 'utf8');
  }

  /**
   * Sends `text` (a whole request head, with nothing to follow it) at the end of this
   * event-loop turn, with the other heads queued in it. Only a connected plain TCP connection
   * queues; any other writes at once (the stream holds the bytes until the connection is up).
   * A connection given back to its pool before its head went out is closed instead of kept
   * (HostPool.release), and a closed one drops its head.
   */
  queueText(text: string): void {
    if (this.fd < 0) {
      this.writeText(text);
      return;
    }
    this.queued = true;
    queuedConns.push(this);
    queuedTexts.push(text);
    scheduleFlush();
  }

  /** The end of the turn for a queued head (flushQueued), in the order they were queued. */
  flushQueued(text: string): void {
    this.queued = false;
    if (!this.closed) this.writeText(text);
  }

  /** A read the reader handed over at the end of the turn; a connection closed since then drops it. */
  deliverDeferred(buf: Buffer, start: number, end: number): void {
    if (!this.closed) this.deliver(buf, start, end);
  }

  private deliver(buf: Buffer, start: number, end: number): void {
    const o = this.owner;
    if (o !== null) o.onData(this, buf, start, end);
    else this.destroy(); // bytes on an idle connection: the upstream is out of step
  }

  private closeWith(err: Error | null): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (this.slot !== -1) this.unwatch();
    if (!this.socket.destroyed) this.socket.destroy();
    this.pool.forget(this);
    const o = this.owner;
    this.owner = null;
    o?.onEnd(this, err);
  }

  /**
   * The reason when `err` is a TLS failure of this connection: a refused certificate (the
   * X.509 verify code: CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT, ...), a name mismatch
   * (ERR_TLS_CERT_ALTNAME_INVALID) or a TLS alert / protocol error (ERR_SSL_*, e.g. the
   * upstream requiring a client certificate, which TLS 1.3 reports after the handshake).
   * Null for plain socket errors (refused, reset, unreachable) and for plain TCP pools.
   */
  tlsFailure(err: Error | null): string | null {
    if (err === null || this.pool.tlsOptions === null) return null;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return code;
    if (code === 'EPROTO') {
      // A write that hit a TLS protocol error ("write EPROTO ...:SSL routines:ssl3_get_record:
      // wrong version number:..."): name it as Node names the read side, ERR_SSL_<REASON>.
      const m = OPENSSL_REASON.exec(err.message);
      return m === null ? code : `ERR_SSL_${(m[1] as string).toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`;
    }
    if (this.connected || code === '' || ERRNO_CODE.test(code)) return null;
    return code;
  }

  /** Announced `Keep-Alive: timeout=` of the upstream, in seconds. */
  setKeepAliveHint(seconds: number): void {
    this.keepAliveMs = seconds > 1 ? (seconds - 1) * 1000 : seconds >= 0 ? 0 : -1;
  }

  /** Idle expiry, armed when the connection goes back to the pool. */
  onDeadline(): void {
    if (this.owner === null) this.destroy();
  }

  armIdle(idleTimeoutMs: number): void {
    const limit = this.keepAliveMs > 0 ? Math.min(idleTimeoutMs, this.keepAliveMs) : idleTimeoutMs;
    this.deadline = coarseNow() + limit;
    track(this);
  }

  disarm(): void {
    this.deadline = 0;
    untrack(this);
  }

  /** A hint of 0 (or 1) seconds means the upstream will not wait for another request. */
  get reusableByHint(): boolean {
    return this.keepAliveMs !== 0;
  }

  destroy(): void {
    this.disarm();
    if (!this.closed) {
      this.owner = null;
      this.closeWith(null);
    }
  }
}

/** The descriptor behind a connected net.Socket (Node keeps it on the TCP handle), or -1. */
function socketFd(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

export class HostPool {
  readonly host: string;
  readonly port: number;
  private readonly idle: Conn[] = [];
  /** Open connections (idle + in use). */
  open = 0;
  closed = false;
  /** tls.connect options of every connection (null = plain TCP). */
  readonly tlsOptions: ConnectionOptions | null;
  /** The last TLS session the upstream offered, for resumption (nginx proxy_ssl_session_reuse). */
  private tlsSession: Buffer | undefined = undefined;

  constructor(
    readonly address: string,
    public settings: PoolConfig,
    readonly tls: PoolTls | null = null,
  ) {
    const colon = address.lastIndexOf(':');
    let h = address.slice(0, colon);
    if (h.startsWith('[')) h = h.slice(1, -1);
    this.host = h;
    this.port = Number(address.slice(colon + 1));
    if (tls === null) this.tlsOptions = null;
    else {
      // No SNI for an IP literal (RFC 6066); Node then checks the certificate's IP SANs
      // against the host. With a serverName, SNI and the name check both use it.
      const servername = tls.serverName ?? (isIP(h) === 0 ? h : undefined);
      this.tlsOptions = {
        host: h,
        port: this.port,
        secureContext: tls.secureContext,
        rejectUnauthorized: tls.verify,
        ...(servername === undefined ? {} : { servername }),
      };
    }
  }

  /** Opens a TLS connection, resuming the last session when there is one. */
  connectTls(options: ConnectionOptions): Socket {
    const session = this.tlsSession;
    const s = tlsConnect(session === undefined ? options : { ...options, session });
    s.on('session', (sess: Buffer) => {
      this.tlsSession = sess;
    });
    // A session that led to a failure is not offered again.
    s.once('error', () => {
      if (this.tlsSession === session) this.tlsSession = undefined;
    });
    return s;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /**
   * An idle connection (reused) or a new one. Returns null when the host's connection limit
   * is reached. `fresh` skips the idle list (the retry after a reused connection failed).
   */
  acquire(fresh: boolean): Conn | null {
    if (!fresh) {
      while (this.idle.length > 0) {
        const c = this.idle.pop() as Conn;
        c.disarm();
        if (!c.closed) return c;
      }
    }
    const max = this.settings.maxConnectionsPerHost;
    if (max > 0 && this.open >= max) return null;
    this.open++;
    return new Conn(this);
  }

  /**
   * Returns a connection whose exchange completed cleanly. One with bytes still deferred
   * (the upstream sent more than the response) is closed, never handed to the next request.
   */
  release(c: Conn): void {
    c.owner = null;
    c.uses++;
    if (this.closed || c.closed || c.queued || c.deferred > 0 || !c.reusableByHint || this.idle.length >= this.settings.maxIdlePerHost) {
      c.destroy();
      return;
    }
    this.idle.push(c);
    c.armIdle(this.settings.idleTimeoutMs);
  }

  /** Called by a connection when its socket closed. */
  forget(c: Conn): void {
    this.open--;
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
  }

  /** Closes idle connections; connections in use close when their exchange ends. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }
}
