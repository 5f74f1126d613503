/**
 * Upstream TLS against the real Sluice process and real `node:https` upstreams with
 * certificates made by openssl at test time: a trusted CA via caFile, SNI, IP SANs, the
 * refusals (untrusted, other CA, expired, wrong name, TLS to a plain-HTTP port) as 502
 * SLUICE_ERR_UPSTREAM_TLS with the TLS reason and without the request ever reaching the
 * upstream's application, verify:false, mTLS to the upstream, pools keyed by the TLS identity
 * (two groups on one address; a reload that changes TLS settings), and TLS failures counted
 * as connect failures by retries and breakers. No timing is asserted: tests wait for states.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { accessLog, request, runSluice, startRawUpstream, startSluice, startUpstream, tempFile, waitFor, type AccessRecord, type Reply } from '../helpers';
import { clientCert, createCa, issueCert, selfSignedCert, serverCert, tlsTempDir, type CertAuthority, type IssuedCert } from '../tls-helpers';

interface Seen {
  /** Which TLS connection (1, 2, ... in accept order) carried the request. */
  conn: number;
  /** The SNI the client sent (false: none). */
  servername: string | false;
  /** Subject CN of the client certificate ('' without one). */
  clientCn: string;
  url: string;
}

interface TlsUpstream {
  readonly address: string;
  readonly seen: Seen[];
  /** TLS connections whose handshake completed. */
  readonly accepted: () => number;
  /** Connection numbers that closed. */
  readonly closed: Set<number>;
  /** Handshakes the server side saw fail (their error codes). */
  readonly handshakeErrors: string[];
  close(): Promise<void>;
}

/** A real HTTPS upstream on 127.0.0.1:0 that records, per request, its connection, SNI and client certificate. */
async function startTlsUpstream(name: string, opts: ServerOptions): Promise<TlsUpstream> {
  const seen: Seen[] = [];
  const ids = new WeakMap<TLSSocket, number>();
  const closed = new Set<number>();
  const handshakeErrors: string[] = [];
  let n = 0;
  const server = createHttpsServer(opts, (req, res) => {
    const sock = req.socket as TLSSocket;
    const cert = sock.getPeerCertificate();
    const cn = cert.subject?.CN;
    seen.push({ conn: ids.get(sock) ?? 0, servername: sock.servername ?? false, clientCn: typeof cn === 'string' ? cn : '', url: req.url ?? '' });
    req.resume();
    req.on('end', () => res.end(`${name} ${req.url ?? ''}`));
  });
  server.on('secureConnection', (sock: TLSSocket) => {
    const id = ++n;
    ids.set(sock, id);
    sock.on('close', () => closed.add(id));
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => handshakeErrors.push(err.code ?? err.message));
  server.keepAliveTimeout = 30000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    seen,
    accepted: () => n,
    closed,
    handshakeErrors,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function serve(pem: IssuedCert, extra: ServerOptions = {}): ServerOptions {
  return { cert: pem.cert, key: pem.key, ...extra };
}

function errorBody(r: Reply): { error: string; message: string } {
  return JSON.parse(r.body.toString()) as { error: string; message: string };
}

/** A 502 SLUICE_ERR_UPSTREAM_TLS whose message carries `reason`. */
function assertTlsRefusal(r: Reply, reason: string | RegExp, what: string): void {
  assert.equal(r.status, 502, `${what}: status (body ${r.body.toString()})`);
  assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_UPSTREAM_TLS', what);
  const b = errorBody(r);
  assert.equal(b.error, 'SLUICE_ERR_UPSTREAM_TLS', what);
  if (typeof reason === 'string') assert.ok(b.message.includes(reason), `${what}: reason ${reason} in ${JSON.stringify(b.message)}`);
  else assert.match(b.message, reason, what);
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

let ca: CertAuthority;
let otherCa: CertAuthority;
let clientCa: CertAuthority;
let good: IssuedCert;

before(() => {
  const dir = tlsTempDir();
  ca = createCa('Upstream CA', dir);
  otherCa = createCa('Other CA', dir);
  clientCa = createCa('Client CA', dir);
  // DNS names plus the IP SANs 127.0.0.1 and ::1.
  good = serverCert(ca, ['upstream.test', 'alt.test']);
});

function route(name: string, upstream = name): Record<string, unknown> {
  return { name, match: { path: { prefix: `/${name}` } }, action: { type: 'proxy', upstream } };
}

describe('upstream TLS: verification, SNI, refusals', () => {
  test('trusted via caFile, SNI, verify:false; untrusted, expired, wrong name and plain HTTP refused with a reason', async () => {
    const goodUp = await startTlsUpstream('good', serve(good));
    const selfUp = await startTlsUpstream('self', serve(selfSignedCert(['upstream.test'])));
    const otherUp = await startTlsUpstream('other', serve(serverCert(otherCa, ['upstream.test'])));
    const expiredUp = await startTlsUpstream('expired', serve(serverCert(ca, ['upstream.test'], { expired: true })));
    const noIpUp = await startTlsUpstream('noip', serve(issueCert(ca, { dns: ['upstream.test'] })));
    const plainUp = await startUpstream();
    closers.push(() => goodUp.close(), () => selfUp.close(), () => otherUp.close(), () => expiredUp.close(), () => noIpUp.close(), () => plainUp.close());
    const caFile = ca.certFile;
    const s = await startSluice({
      workers: 2,
      log: { access: true },
      upstreams: {
        trusted: { hosts: [{ address: goodUp.address }], tls: { caFile } },
        sni: { hosts: [{ address: goodUp.address }], tls: { caFile, serverName: 'alt.test' } },
        wrongname: { hosts: [{ address: goodUp.address }], tls: { caFile, serverName: 'other.test' } },
        untrusted: { hosts: [{ address: selfUp.address }], tls: { serverName: 'upstream.test' } },
        noverify: { hosts: [{ address: selfUp.address }], tls: { verify: false, serverName: 'upstream.test' } },
        otherca: { hosts: [{ address: otherUp.address }], tls: { caFile, serverName: 'upstream.test' } },
        expired: { hosts: [{ address: expiredUp.address }], tls: { caFile, serverName: 'upstream.test' } },
        noipsan: { hosts: [{ address: noIpUp.address }], tls: { caFile } },
        plain: { hosts: [{ address: plainUp.address }], tls: { caFile } },
      },
      routes: ['trusted', 'sni', 'wrongname', 'untrusted', 'noverify', 'otherca', 'expired', 'noipsan', 'plain'].map((n) => route(n)),
    });
    closers.push(() => s.stop());

    const trusted = await request(s.port, { path: '/trusted/x' });
    assert.equal(trusted.status, 200, trusted.body.toString());
    assert.equal(trusted.body.toString(), 'good /trusted/x');
    const viaIp = goodUp.seen.find((r) => r.url === '/trusted/x');
    assert.equal(viaIp?.servername, false, 'no SNI for an IP literal (RFC 6066); the name was checked against the IP SAN');

    const sni = await request(s.port, { path: '/sni/y' });
    assert.equal(sni.status, 200, sni.body.toString());
    assert.equal(goodUp.seen.find((r) => r.url === '/sni/y')?.servername, 'alt.test', 'the upstream sees the configured serverName as SNI');

    assertTlsRefusal(await request(s.port, { path: '/wrongname' }), 'ERR_TLS_CERT_ALTNAME_INVALID', 'name mismatch');
    assertTlsRefusal(await request(s.port, { path: '/noipsan' }), 'ERR_TLS_CERT_ALTNAME_INVALID', 'IP not among the IP SANs');
    assertTlsRefusal(await request(s.port, { path: '/untrusted' }), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed, verified by default');
    assertTlsRefusal(await request(s.port, { path: '/otherca' }), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/, 'signed by a CA not in caFile');
    assertTlsRefusal(await request(s.port, { path: '/expired' }), 'CERT_HAS_EXPIRED', 'expired');
    assertTlsRefusal(await request(s.port, { path: '/plain' }), 'ERR_SSL_WRONG_VERSION_NUMBER', 'TLS to a plain-HTTP port');

    const noverify = await request(s.port, { path: '/noverify/z' });
    assert.equal(noverify.status, 200, 'verify:false accepts anything (tests only)');
    assert.equal(noverify.body.toString(), 'self /noverify/z');

    // Refused upstreams never saw a request: Sluice's bytes stay in the TLS socket until the
    // handshake and the certificate checks passed.
    assert.deepEqual(goodUp.seen.map((r) => r.url).sort(), ['/sni/y', '/trusted/x']);
    assert.deepEqual(selfUp.seen.map((r) => r.url), ['/noverify/z']);
    assert.equal(otherUp.seen.length, 0);
    assert.equal(expiredUp.seen.length, 0);
    assert.equal(noIpUp.seen.length, 0);
    assert.equal(plainUp.seen.length, 0, 'the plain upstream got a ClientHello, never a request');

    await waitFor(() => accessLog(s).length >= 9, 'access log lines');
    const expired = accessLog(s).find((r) => r.route === 'expired');
    assert.equal(expired?.error, 'SLUICE_ERR_UPSTREAM_TLS');
    assert.ok(expired?.flags?.split(',').includes('UF'), 'flagged as an upstream connect failure');
  });

  test('mTLS to the upstream: the client certificate is presented; without it the upstream refuses and Sluice answers 502', async () => {
    const client = clientCert(clientCa, 'sluice-client');
    const up = await startTlsUpstream('mtls', serve(good, { requestCert: true, rejectUnauthorized: true, ca: clientCa.cert }));
    closers.push(() => up.close());
    const tls = { caFile: ca.certFile, serverName: 'upstream.test' };
    const s = await startSluice({
      workers: 1,
      upstreams: {
        withcert: { hosts: [{ address: up.address }], tls: { ...tls, certFile: client.certFile, keyFile: client.keyFile } },
        nocert: { hosts: [{ address: up.address }], tls },
      },
      routes: [route('withcert'), route('nocert')],
    });
    closers.push(() => s.stop());

    const ok = await request(s.port, { path: '/withcert' });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(up.seen.at(-1)?.clientCn, 'sluice-client', 'the upstream verified our client certificate');

    const refused = await request(s.port, { path: '/nocert' });
    // TLS 1.3 reports the refusal after the client's side of the handshake completed.
    assertTlsRefusal(refused, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'no client certificate');
    assert.ok(up.seen.every((r) => r.clientCn === 'sluice-client'), 'no request without a client certificate reached the application');
    await waitFor(() => up.handshakeErrors.length > 0, 'the upstream to report the refused handshake');
  });

  test('an encrypted client key with its passphrase works', async () => {
    const client = clientCert(clientCa, 'locked-client', { passphrase: 'open sesame' });
    const up = await startTlsUpstream('mtls', serve(good, { requestCert: true, rejectUnauthorized: true, ca: clientCa.cert }));
    closers.push(() => up.close());
    const s = await startSluice({
      workers: 1,
      upstreams: {
        app: { hosts: [{ address: up.address }], tls: { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile, passphrase: 'open sesame' } },
      },
      routes: [route('app')],
    });
    closers.push(() => s.stop());
    const r = await request(s.port, { path: '/app' });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(up.seen.at(-1)?.clientCn, 'locked-client');
  });

  test('the connect timeout covers the TLS handshake', async () => {
    // Accepts TCP and never answers the ClientHello.
    const silent = await startRawUpstream(() => undefined);
    closers.push(() => silent.close());
    const s = await startSluice({
      workers: 1,
      upstreams: { app: { hosts: [{ address: silent.address }], tls: { caFile: ca.certFile }, timeouts: { connectMs: 300 } } },
      routes: [route('app')],
    });
    closers.push(() => s.stop());
    const r = await request(s.port, { path: '/app' });
    assert.equal(r.status, 504, r.body.toString());
    assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT');
    assert.ok(silent.received[0]?.length, 'a ClientHello went out');
  });
});

describe('upstream TLS: pools keyed by the TLS identity', () => {
  test('two groups on one address with different TLS settings never share a connection; each keeps its own alive', async () => {
    const up = await startTlsUpstream('shared', serve(good));
    closers.push(() => up.close());
    const base = { caFile: ca.certFile };
    const s = await startSluice({
      workers: 1,
      upstreams: {
        a: { hosts: [{ address: up.address }], tls: { ...base, serverName: 'upstream.test' } },
        b: { hosts: [{ address: up.address }], tls: { ...base, serverName: 'alt.test' } },
        plain: { hosts: [{ address: up.address }], tls: { ...base, serverName: 'upstream.test', verify: false } },
      },
      routes: [route('a'), route('b'), route('plain')],
    });
    closers.push(() => s.stop());
    for (let i = 0; i < 4; i++) {
      for (const g of ['a', 'b', 'plain']) {
        const r = await request(s.port, { path: `/${g}/${i}` });
        assert.equal(r.status, 200, r.body.toString());
      }
    }
    const connsOf = (g: string): Set<number> => new Set(up.seen.filter((r) => r.url.startsWith(`/${g}/`)).map((r) => r.conn));
    const a = connsOf('a');
    const b = connsOf('b');
    const p = connsOf('plain');
    assert.equal(a.size, 1, 'group a reused its keep-alive connection');
    assert.equal(b.size, 1, 'group b reused its keep-alive connection');
    assert.equal(p.size, 1, 'group plain reused its keep-alive connection');
    assert.equal(new Set([...a, ...b, ...p]).size, 3, 'no connection carried requests of two groups');
    for (const r of up.seen) {
      const want = r.url.startsWith('/b/') ? 'alt.test' : 'upstream.test';
      assert.equal(r.servername, want, `SNI of ${r.url}`);
    }
  });

  test('a reload that changes TLS settings gets a fresh pool and closes the old one; an unchanged one keeps it', async () => {
    const up = await startTlsUpstream('reload', serve(good));
    closers.push(() => up.close());
    const cfg = (serverName: string): Record<string, unknown> => ({
      workers: 1,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { port: 0 },
      upstreams: { app: { hosts: [{ address: up.address }], tls: { caFile: ca.certFile, serverName } } },
      routes: [route('app')],
    });
    const s = await startSluice(cfg('upstream.test'));
    closers.push(() => s.stop());
    const reload = async (serverName: string, version: number): Promise<void> => {
      writeFileSync(s.configPath, JSON.stringify(cfg(serverName)));
      s.proc.kill('SIGHUP');
      await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === version);
    };

    assert.equal((await request(s.port, { path: '/app/1' })).status, 200);
    assert.equal((await request(s.port, { path: '/app/2' })).status, 200);
    const first = up.seen[0]?.conn as number;
    assert.deepEqual(up.seen.map((r) => r.conn), [first, first]);

    await reload('upstream.test', 2);
    assert.equal((await request(s.port, { path: '/app/3' })).status, 200);
    assert.equal(up.seen.at(-1)?.conn, first, 'same TLS settings: the warm connection survived the reload');

    await reload('alt.test', 3);
    assert.equal((await request(s.port, { path: '/app/4' })).status, 200);
    const last = up.seen.at(-1) as Seen;
    assert.notEqual(last.conn, first, 'new TLS settings: a new connection');
    assert.equal(last.servername, 'alt.test');
    await waitFor(() => up.closed.has(first), 'the old pool to close its idle connection');
  });

  test('rotating the CA file contents also counts as a new TLS identity', async () => {
    const up = await startTlsUpstream('rotate', serve(good));
    closers.push(() => up.close());
    const caCopy = tempFile('ca.pem', readFileSync(ca.certFile, 'utf8'));
    const s = await startSluice({
      workers: 1,
      upstreams: { app: { hosts: [{ address: up.address }], tls: { caFile: caCopy } } },
      routes: [route('app')],
    });
    closers.push(() => s.stop());
    assert.equal((await request(s.port, { path: '/app/1' })).status, 200);
    const first = up.seen[0]?.conn as number;
    // The same CA plus another one: still trusted, different contents.
    writeFileSync(caCopy, `${readFileSync(ca.certFile, 'utf8')}${readFileSync(otherCa.certFile, 'utf8')}`);
    s.proc.kill('SIGHUP');
    await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
    assert.equal((await request(s.port, { path: '/app/2' })).status, 200);
    assert.notEqual(up.seen.at(-1)?.conn, first);
    await waitFor(() => up.closed.has(first), 'the old pool to close');
  });
});

describe('upstream TLS failures are connect failures', () => {
  test('retried on another host (retry.on connect) and counted by the breaker', async () => {
    const expiredUp = await startTlsUpstream('expired', serve(serverCert(ca, ['upstream.test'], { expired: true })));
    const goodUp = await startTlsUpstream('good', serve(good));
    closers.push(() => expiredUp.close(), () => goodUp.close());
    const tls = { caFile: ca.certFile, serverName: 'upstream.test' };
    const s = await startSluice({
      workers: 1,
      log: { access: true },
      upstreams: {
        // Weights send every first attempt to the expired host; the retry must go to the other one.
        mixed: { hosts: [{ address: expiredUp.address, weight: 10000 }, { address: goodUp.address, weight: 1 }], tls },
        solo: { hosts: [{ address: expiredUp.address }], tls, breaker: { consecutiveFailures: 2, failureRatio: 0, openMs: 60000, failOn: ['connect'] } },
      },
      routes: [{ ...route('mixed'), retry: { attempts: 1, on: ['connect'] } }, route('solo')],
    });
    closers.push(() => s.stop());

    const r = await request(s.port, { path: '/mixed' });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.body.toString(), 'good /mixed');

    assertTlsRefusal(await request(s.port, { path: '/solo' }), 'CERT_HAS_EXPIRED', 'first failure');
    assertTlsRefusal(await request(s.port, { path: '/solo' }), 'CERT_HAS_EXPIRED', 'second failure');
    const open = await request(s.port, { path: '/solo' });
    assert.equal(open.status, 503, open.body.toString());
    assert.equal(open.headers['x-sluice-error'], 'SLUICE_ERR_BREAKER_OPEN', 'two TLS failures opened the breaker');

    await waitFor(() => accessLog(s).some((l) => l.route === 'mixed'), 'access log');
    const mixed = accessLog(s).find((l) => l.route === 'mixed') as AccessRecord;
    assert.equal(mixed.attempts, 2);
    assert.ok(mixed.flags?.split(',').includes('RY'), `retried: ${mixed.flags}`);
  });
});

describe('active health checks of a TLS group', () => {
  test('check over TLS with the group\'s trust settings: a verified host is up, an untrusted one goes down', async () => {
    const trusted = await startTlsUpstream('trusted', serve(good));
    const untrusted = await startTlsUpstream('untrusted', serve(serverCert(otherCa, ['upstream.test'])));
    closers.push(() => trusted.close(), () => untrusted.close());
    const s = await startSluice({
      workers: 1,
      upstreams: {
        app: {
          hosts: [{ address: trusted.address }, { address: untrusted.address }],
          tls: { caFile: ca.certFile, serverName: 'upstream.test' },
          healthCheck: { path: '/health', intervalMs: 50, rise: 1, fall: 1 },
          panicThresholdPercent: 0,
        },
      },
      routes: [route('app')],
    });
    closers.push(() => s.stop());
    const down = await s.waitForLog((l) => l.msg === 'health check: host is down' && l.host === untrusted.address);
    assert.match(String(down.reason), /CERT|certificate|verify/i, 'the reason is the TLS verification failure');
    await waitFor(() => trusted.seen.some((x) => x.url === '/health'), 'a check over TLS reached the trusted host');
    assert.ok(!s.logs.some((l) => l.msg === 'health check: host is down' && l.host === trusted.address), 'the verified host stays up');
    for (let i = 0; i < 6; i++) assert.equal((await request(s.port, { path: '/app' })).body.toString(), 'trusted /app');
  });
});

describe('upstream TLS configuration errors', () => {
  const check = async (tls: Record<string, unknown>, path: string, what: RegExp): Promise<void> => {
    const cfg = tempFile('sluice.json', JSON.stringify({ upstreams: { app: { hosts: [{ address: '127.0.0.1:1' }], tls } }, routes: [route('app')] }));
    const r = await runSluice(['--config', cfg]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(path), `${path} named in: ${r.stderr}`);
    assert.match(r.stderr, what);
  };

  test('a missing CA file, a file without certificates, a certificate and key that do not match, a wrong passphrase: exit 2 naming the option', async () => {
    const dir = tlsTempDir();
    const other = serverCert(otherCa, ['x.test']);
    const locked = clientCert(clientCa, 'locked', { passphrase: 'right' });
    await check({ caFile: `${dir}/missing.pem` }, 'upstreams.app.tls.caFile', /cannot be read/);
    await check({ caFile: good.keyFile }, 'upstreams.app.tls.caFile', /holds no PEM certificate/);
    await check({ certFile: good.certFile, keyFile: other.keyFile }, 'upstreams.app.tls.certFile', /not a usable certificate and key/);
    await check({ certFile: locked.certFile, keyFile: locked.keyFile, passphrase: 'wrong' }, 'upstreams.app.tls.certFile', /not a usable certificate and key/);
    await check({ certFile: good.certFile }, 'upstreams.app.tls.keyFile', /is needed too/);
  });
});
