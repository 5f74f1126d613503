/**
 * The listener front (src/workers/http/downstream/front.ts) against the real Sluice process with two
 * workers: client certificates (mTLS) on the HTTPS listener, required and optional, with the
 * verified identity passed upstream and a client's forged identity header removed; PROXY
 * protocol v1 and v1-or-v2 on the HTTP and the HTTPS listener, read once per connection, so
 * a header at a later request boundary cannot change the address; the private uWS port
 * refusing connections that did not come through the front; CA rotation on SIGHUP; drain.
 * Certificates are made by openssl at test time; every client is a real socket.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { accessLog, startSluice, startUpstream, waitFor, type AccessRecord, type Running, type Upstream } from '../helpers';
import { proxyV2, rawGet, RawClient } from '../raw-client';
import { clientCert, createCa, serverCert, tlsTempDir, type CertAuthority, type IssuedCert } from '../tls-helpers';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

let ca: CertAuthority;
let otherCa: CertAuthority;
let site: IssuedCert;
let fallback: IssuedCert;
let alice: IssuedCert;
let mallory: IssuedCert;
let up: Upstream;

before(async () => {
  ca = createCa('Sluice front test CA');
  otherCa = createCa('Some other CA');
  site = serverCert(ca, ['a.example.com']);
  fallback = serverCert(ca, ['default.test']);
  alice = clientCert(ca, 'alice');
  mallory = clientCert(otherCa, 'mallory');
  up = await startUpstream();
  closers.push(() => up.close());
});

const pair = (c: IssuedCert): { certFile: string; keyFile: string } => ({ certFile: c.certFile, keyFile: c.keyFile });

async function sluice(extra: Record<string, unknown>): Promise<Running> {
  const s = await startSluice({
    workers: 2,
    upstreams: { app: { hosts: [{ address: up.address }] } },
    routes: [
      { name: 'guarded', match: { path: { prefix: '/guarded' } }, acl: [{ deny: '203.0.113.7' }], action: { type: 'proxy', upstream: 'app' } },
      { name: 'all', action: { type: 'proxy', upstream: 'app' } },
    ],
    log: { access: true },
    ...extra,
  });
  closers.push(() => s.stop());
  return s;
}

function tlsSection(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    host: '127.0.0.1',
    port: 0,
    certificates: [{ serverNames: ['a.example.com'], ...pair(site) }],
    defaultCertificate: pair(fallback),
    ...extra,
  };
}

async function tlsPortOf(s: Running): Promise<number> {
  const rec = await s.waitForLog((r) => r.msg === 'listening');
  return rec.tlsPort as number;
}

interface TlsOpen {
  readonly client: RawClient;
  /** Resolves once the handshake is done, or rejects with why it failed. */
  readonly handshake: Promise<TLSSocket>;
}

/** A TLS connection to 127.0.0.1:port, optionally after `preface` bytes in clear (a PROXY header). */
function openTls(port: number, o: { cert?: IssuedCert; servername?: string; preface?: Buffer } = {}): TlsOpen {
  const tcp = netConnect(port, '127.0.0.1');
  if (o.preface !== undefined) tcp.write(o.preface);
  const sock = tlsConnect({
    socket: tcp,
    servername: o.servername ?? 'a.example.com',
    ca: ca.cert,
    ...(o.cert === undefined ? {} : { cert: o.cert.cert, key: o.cert.key }),
  });
  const handshake = new Promise<TLSSocket>((resolve, reject) => {
    sock.once('secureConnect', () => resolve(sock));
    sock.once('error', reject);
    sock.once('close', () => reject(new Error('closed before the handshake finished')));
  });
  handshake.catch(() => undefined);
  return { client: new RawClient({ stream: sock, ready: handshake.then(() => undefined) }), handshake };
}

/** Whether the connection ends without an HTTP response (a refused handshake or header). */
async function refused(c: RawClient, what: string): Promise<void> {
  await waitFor(() => c.closed, `${what}: the connection is closed`);
  assert.equal(c.received(), '', `${what}: no HTTP response`);
}

function seen(id: string): Upstream['seen'][number] {
  const r = up.seen.find((x) => x.headers['x-request-id'] === id);
  assert.ok(r !== undefined, `the upstream saw request ${id}`);
  return r;
}

async function logged(s: Running, id: string): Promise<AccessRecord> {
  await waitFor(() => accessLog(s).some((r) => r.id === id), `access log line of ${id}`);
  return accessLog(s).find((r) => r.id === id) as AccessRecord;
}

let seq = 0;
const nextId = (p: string): string => `${p}-${++seq}-${process.pid}`;

/** The XFCC value Sluice must send for `c`. */
function expectedXfcc(c: IssuedCert, cn: string): string {
  const hash = new X509Certificate(c.cert).fingerprint256.replace(/:/g, '').toLowerCase();
  return `Hash=${hash};Subject="CN=${cn}"`;
}

describe('mTLS, required (tls.clientAuth)', () => {
  let s: Running;
  let port: number;
  before(async () => {
    s = await sluice({ tls: tlsSection({ clientAuth: { caFile: ca.certFile } }) });
    port = await tlsPortOf(s);
  });

  test('a client certificate from the CA gets in; its identity goes upstream on every request of the connection', async () => {
    const { client } = openTls(port, { cert: alice });
    const id = nextId('alice');
    await client.send(rawGet('/', id));
    const r = await client.response();
    assert.equal(r.status, 200, r.body);
    const h = seen(id).headers;
    assert.equal(h['x-forwarded-client-cert'], expectedXfcc(alice, 'alice'));
    assert.equal(h['x-forwarded-proto'], 'https');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    const id2 = nextId('alice-again');
    await client.send(rawGet('/', id2, 'X-Forwarded-Client-Cert: Hash=forged;Subject="CN=admin"\r\n'));
    assert.equal((await client.response()).status, 200);
    assert.equal(seen(id2).headers['x-forwarded-client-cert'], expectedXfcc(alice, 'alice'), 'the forged header is replaced');
    assert.equal((await logged(s, id2)).client, '127.0.0.1');
    client.close();
  });

  test('no client certificate, or one from another CA: the handshake is refused and nothing reaches the routes', async () => {
    for (const [what, cert] of [
      ['no certificate', undefined],
      ['another CA', mallory],
    ] as const) {
      const { client } = openTls(port, cert === undefined ? {} : { cert });
      // With TLS 1.3 the client may finish its side before the server's verdict: send a
      // request anyway; it must never be answered.
      await client.send(rawGet('/', nextId('refused'))).catch(() => undefined);
      await refused(client, what);
    }
  });

  test('SNI still picks the certificate behind the front: an exact name, and the default for others', async () => {
    const named = openTls(port, { cert: alice, servername: 'a.example.com' });
    const peer = (await named.handshake).getPeerX509Certificate();
    assert.equal(peer?.fingerprint256, site.fingerprint256);
    named.client.close();
    const other = openTls(port, { cert: alice, servername: 'default.test' });
    assert.equal((await other.handshake).getPeerX509Certificate()?.fingerprint256, fallback.fingerprint256);
    other.client.close();
  });

  test('the private uWS port refuses requests that did not come through the front (403), also with a forged PROXY header', async () => {
    const rec = await s.waitForLog((r) => r.msg === 'front: listening' && r.tls === true);
    const inner = rec.innerPort as number;
    const direct = new RawClient(inner);
    await direct.send(rawGet('/', nextId('direct')));
    const r = await direct.response();
    assert.equal(r.status, 403);
    assert.match(r.body, /did not come through the listener front/);
    direct.close();
    const forged = new RawClient(inner);
    const ticket = Buffer.alloc(16, 7);
    ticket[0] = 0xfd;
    await forged.send(Buffer.concat([proxyV2(ticket), Buffer.from(rawGet('/', nextId('forged')))]));
    assert.equal((await forged.response()).status, 403);
    forged.close();
  });
});

describe('mTLS, optional', () => {
  test('without a certificate: served, no identity (a forged one removed); with a valid one: identity; from another CA: refused', async () => {
    const s = await sluice({ tls: tlsSection({ clientAuth: { caFile: ca.certFile, required: false, identityHeader: 'X-Client-Identity' } }) });
    const port = await tlsPortOf(s);
    const anon = openTls(port);
    const id = nextId('anon');
    await anon.client.send(rawGet('/', id, 'x-client-identity: CN=admin\r\n'));
    assert.equal((await anon.client.response()).status, 200);
    assert.equal(seen(id).headers['x-client-identity'], undefined);
    anon.client.close();

    const withCert = openTls(port, { cert: alice });
    const id2 = nextId('optional-alice');
    await withCert.client.send(rawGet('/', id2));
    assert.equal((await withCert.client.response()).status, 200);
    assert.equal(seen(id2).headers['x-client-identity'], expectedXfcc(alice, 'alice'));
    withCert.client.close();

    const bad = openTls(port, { cert: mallory });
    await bad.client.send(rawGet('/', nextId('optional-mallory'))).catch(() => undefined);
    await refused(bad.client, 'a certificate from another CA');

    // The plain listener: a client's header of that name is removed there too.
    const plain = new RawClient(s.port);
    const id3 = nextId('plain');
    await plain.send(rawGet('/', id3, 'x-client-identity: CN=admin\r\n'));
    assert.equal((await plain.response()).status, 200);
    assert.equal(seen(id3).headers['x-client-identity'], undefined);
    plain.close();
  });
});

describe('PROXY protocol through the front', () => {
  test('v1 on the HTTP listener: TCP4 and TCP6 sources are the client; UNKNOWN is the peer; no header, a v2 header or a bad line: closed unanswered', async () => {
    const s = await sluice({ listen: { proxyProtocol: 'v1' } });
    const c = new RawClient(s.port);
    const id = nextId('v1');
    await c.send(`PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n${rawGet('/', id)}`);
    assert.equal((await c.response()).status, 200);
    assert.equal(seen(id).headers['x-forwarded-for'], '203.0.113.7');
    assert.equal((await logged(s, id)).client, '203.0.113.7');
    // the address holds for the connection: the route ACL denies it
    await c.send(rawGet('/guarded', nextId('v1-guarded')));
    const g = await c.response();
    assert.equal(g.status, 403, g.body);
    c.close();

    const c6 = new RawClient(s.port);
    const id6 = nextId('v1-6');
    await c6.send(`PROXY TCP6 2001:DB8::7 ::1 40000 80\r\n${rawGet('/', id6)}`);
    assert.equal((await c6.response()).status, 200);
    assert.equal(seen(id6).headers['x-forwarded-for'], '2001:db8::7');
    c6.close();

    const cu = new RawClient(s.port);
    const idu = nextId('v1-unknown');
    await cu.send(`PROXY UNKNOWN\r\n${rawGet('/', idu)}`);
    assert.equal((await cu.response()).status, 200);
    assert.equal(seen(idu).headers['x-forwarded-for'], '127.0.0.1');
    cu.close();

    for (const [what, bytes] of [
      ['no header', Buffer.from(rawGet('/', nextId('none')))],
      ['a v2 header on a v1 listener', Buffer.concat([proxyV2('203.0.113.9'), Buffer.from(rawGet('/', nextId('v2-on-v1')))])],
      ['a bad address', Buffer.from(`PROXY TCP4 203.0.113.999 127.0.0.1 1 2\r\n${rawGet('/', nextId('bad'))}`)],
      ['a line without CRLF within 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)],
    ] as const) {
      const r = new RawClient(s.port);
      await r.send(bytes);
      await refused(r, what);
    }
  });

  test('any: v1 and v2 both read once; a v2 header sent later on the connection cannot change the address', async () => {
    const s = await sluice({ listen: { proxyProtocol: 'any' } });
    const c = new RawClient(s.port);
    const id = nextId('any-v2');
    await c.send(Buffer.concat([proxyV2('203.0.113.7'), Buffer.from(rawGet('/', id))]));
    assert.equal((await c.response()).status, 200);
    assert.equal(seen(id).headers['x-forwarded-for'], '203.0.113.7');
    // A client behind a TCP balancer writes its own header at a request boundary: refused,
    // never taken for the client's address (uWS's own v2 parsing would take it, docs/edge.md).
    const spoof = nextId('any-spoof');
    await c.send(Buffer.concat([proxyV2('198.51.100.1'), Buffer.from(rawGet('/', spoof))]));
    const r = await c.response();
    assert.equal(r.status, 403, r.body);
    assert.equal(up.seen.some((x) => x.headers['x-request-id'] === spoof), false);
    c.close();

    const c1 = new RawClient(s.port);
    const id1 = nextId('any-v1');
    await c1.send(`PROXY TCP4 192.0.2.5 127.0.0.1 40000 80\r\n${rawGet('/', id1)}`);
    assert.equal((await c1.response()).status, 200);
    assert.equal(seen(id1).headers['x-forwarded-for'], '192.0.2.5');
    c1.close();
  });

  test('v1 on the HTTPS listener with client certificates: header, then handshake; address and identity both reach the upstream', async () => {
    const s = await sluice({ tls: tlsSection({ proxyProtocol: 'any', clientAuth: { caFile: ca.certFile } }) });
    const port = await tlsPortOf(s);
    const { client } = openTls(port, { cert: alice, preface: Buffer.from('PROXY TCP4 203.0.113.8 127.0.0.1 40000 443\r\n') });
    const id = nextId('v1-tls');
    await client.send(rawGet('/', id));
    assert.equal((await client.response()).status, 200);
    const h = seen(id).headers;
    assert.equal(h['x-forwarded-for'], '203.0.113.8');
    assert.equal(h['x-forwarded-client-cert'], expectedXfcc(alice, 'alice'));
    client.close();
  });
});

describe('operations', () => {
  test('SIGHUP re-reads the client CA file: a rotated CA admits its clients, the old one no longer does', async () => {
    const dir = tlsTempDir();
    const caFile = join(dir, 'clients.pem');
    writeFileSync(caFile, ca.cert);
    const s = await sluice({ tls: tlsSection({ clientAuth: { caFile } }) });
    const port = await tlsPortOf(s);
    const before1 = openTls(port, { cert: mallory });
    await before1.client.send(rawGet('/', nextId('rot-before'))).catch(() => undefined);
    await refused(before1.client, 'another CA before the rotation');

    writeFileSync(caFile, otherCa.cert);
    s.proc.kill('SIGHUP');
    await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
    const after1 = openTls(port, { cert: mallory });
    const id = nextId('rot-after');
    await after1.client.send(rawGet('/', id));
    assert.equal((await after1.client.response()).status, 200);
    assert.equal(seen(id).headers['x-forwarded-client-cert'], expectedXfcc(mallory, 'mallory'));
    after1.client.close();
    const old = openTls(port, { cert: alice });
    await old.client.send(rawGet('/', nextId('rot-old'))).catch(() => undefined);
    await refused(old.client, 'the old CA after the rotation');
  });

  test('SIGHUP cannot move a listener off the front: listen.proxyProtocol v1 → off is kept until a restart (logged)', async () => {
    const s = await sluice({ listen: { proxyProtocol: 'v1' } });
    const cfg = JSON.parse(readFileSync(s.configPath, 'utf8')) as { listen: Record<string, unknown> };
    cfg.listen.proxyProtocol = 'off';
    writeFileSync(s.configPath, JSON.stringify(cfg));
    s.proc.kill('SIGHUP');
    const warn = await s.waitForLog((l) => l.msg === 'reload: these options only change on restart; keeping their current values');
    assert.deepEqual(warn.options, ['listen.proxyProtocol']);
    await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
    const c = new RawClient(s.port);
    const id = nextId('kept-v1');
    await c.send(`PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n${rawGet('/', id)}`);
    assert.equal((await c.response()).status, 200);
    assert.equal(seen(id).headers['x-forwarded-for'], '203.0.113.7');
    c.close();
  });

  test('SIGTERM with a request in flight on a front connection: it finishes, then exit 0', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('slow done'), 400));
    closers.push(() => slow.close());
    const s = await startSluice({
      workers: 1,
      listen: { proxyProtocol: 'v1' },
      upstreams: { app: { hosts: [{ address: slow.address }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    });
    const c = new RawClient(s.port);
    await c.send(`PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n${rawGet('/', nextId('drain'))}`);
    await waitFor(() => slow.seen.length === 1, 'the request reached the upstream');
    const code = s.stop();
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow done');
    assert.equal(await code, 0);
  });
});
