/**
 * ACLs, the client address and PROXY protocol against the real Sluice process: listener and
 * route allow/deny lists seen from 127.0.0.1 and ::1 on a dual-stack listener, the client
 * behind proxy.trustedHops X-Forwarded-For hops (in ACLs, client_ip rate-limit keys and the
 * access log) while the upstream's X-Forwarded-For gets the peer appended, and PROXY
 * protocol v2 headers written byte by byte on raw sockets; v1 and uWS's acceptance of a new
 * v2 header at any request boundary are pinned as the limitations docs/edge.md documents.
 * No timing is asserted: the tests wait for states.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, describe, test } from 'node:test';
import { proxyV2, proxyV2Local, rawGet, RawClient } from '../raw-client';
import { accessLog, runSluice, startSluice, startUpstream, tempFile, waitFor, type AccessRecord, type Running, type Upstream } from '../helpers';

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection from the loopback address of `host`'s family. */
function get(host: '127.0.0.1' | '::1', port: number, path: string, headers: Record<string, string | string[]> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(15000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function logged(s: Running, id: string): Promise<AccessRecord> {
  await waitFor(() => accessLog(s).some((r) => r.id === id), `access log line of ${id}`);
  return accessLog(s).find((r) => r.id === id) as AccessRecord;
}

function seenXff(up: Upstream, id: string): string | undefined {
  const r = up.seen.find((x) => x.headers['x-request-id'] === id);
  assert.ok(r !== undefined, `the upstream saw request ${id}`);
  return r.headers['x-forwarded-for'] as string | undefined;
}

function assertForbidden(r: Got, what: string): void {
  assert.equal(r.status, 403, `${what}: ${r.status} ${r.body}`);
  assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_FORBIDDEN', what);
  assert.equal((JSON.parse(r.body) as { error: string }).error, 'SLUICE_ERR_FORBIDDEN');
}

// ---------------------------------------------------------------- fixtures

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

let upstream: Upstream | null = null;
async function up(): Promise<Upstream> {
  if (upstream === null) {
    const u = await startUpstream();
    closers.push(() => u.close());
    upstream = u;
  }
  return upstream;
}

async function sluice(config: Record<string, unknown>): Promise<Running> {
  const s = await startSluice({ workers: 2, log: { level: 'warn', access: true }, ...config });
  closers.push(() => s.stop());
  return s;
}

let seq = 0;
const nextId = (tag: string): string => `${tag}-${process.pid}-${++seq}`;

// ---------------------------------------------------------------- tests

describe('listener ACL', () => {
  test('deny 127.0.0.1 on a dual-stack listener: 403 from 127.0.0.1, served from ::1', async () => {
    const u = await up();
    const s = await sluice({
      listen: { host: '::', acl: [{ deny: '127.0.0.1' }] },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    });
    const before = u.seen.length;
    const id4 = nextId('v4');
    const denied = await get('127.0.0.1', s.port, '/x', { 'x-request-id': id4 });
    assertForbidden(denied, 'from 127.0.0.1');
    assert.match(denied.body, /127\.0\.0\.1 \(listen\.acl\)/);
    const id6 = nextId('v6');
    const served = await get('::1', s.port, '/x', { 'x-request-id': id6 });
    assert.equal(served.status, 200, served.body);
    assert.equal(u.seen.length, before + 1, 'only the allowed request reached the upstream');
    assert.equal(seenXff(u, id6), '::1');
    // The access log has both, the refusal with its code (the listener ACL runs before the
    // request id is read, so its line is found by client and status).
    await waitFor(() => accessLog(s).some((r) => r.status === 403 && r.client === '127.0.0.1' && r.error === 'SLUICE_ERR_FORBIDDEN'), 'the 403 logged');
    assert.equal((await logged(s, id6)).client, '::1');
  });

  test('allow-list: ::1 and 127.0.0.0/8 allowed, everyone else of both families denied', async () => {
    const u = await up();
    const s = await sluice({
      listen: { host: '::', acl: [{ allow: '::1' }, { deny: '::/0' }, { deny: '127.0.0.2' }, { allow: '127.0.0.0/8' }, { deny: '0.0.0.0/0' }] },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    });
    assert.equal((await get('127.0.0.1', s.port, '/')).status, 200);
    assert.equal((await get('::1', s.port, '/')).status, 200);
    // Same listener, now a list that leaves ::1 out: first match wins, IPv6 deny-all.
    const s2 = await sluice({
      listen: { host: '::', acl: [{ allow: '127.0.0.1' }, { deny: '::/0' }] },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    });
    assert.equal((await get('127.0.0.1', s2.port, '/')).status, 200);
    assertForbidden(await get('::1', s2.port, '/'), '::1 under deny ::/0');
  });

  test('SIGHUP swaps the ACL without a restart', async () => {
    const u = await up();
    const s = await sluice({
      workers: 1,
      log: { level: 'debug', access: false },
      listen: { acl: [{ deny: '127.0.0.0/8' }] },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    });
    assertForbidden(await get('127.0.0.1', s.port, '/'), 'before reload');
    // The same file with only the ACL changed (options that need a restart stay as they were).
    const file = JSON.parse(readFileSync(s.configPath, 'utf8')) as { listen: { acl: unknown[] } };
    file.listen.acl = [{ allow: '127.0.0.1' }, { deny: '0.0.0.0/0' }];
    writeFileSync(s.configPath, JSON.stringify(file));
    s.proc.kill('SIGHUP');
    await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
    assert.equal((await get('127.0.0.1', s.port, '/')).status, 200);
  });

  test('a bad CIDR exits 2 naming the option path', async () => {
    const path = tempFile(
      'acl.json',
      JSON.stringify({
        listen: { acl: [{ allow: '10.0.0.0/8' }, { deny: '10.0.0.0/33' }] },
        upstreams: { app: { hosts: [{ address: '127.0.0.1:9' }] } },
        routes: [{ name: 'r', acl: [{ allow: '1::2::3' }], action: { type: 'proxy', upstream: 'app' } }],
      }),
    );
    const r = await runSluice(['--config', path]);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes('listen.acl[1].deny must be an IPv4 or IPv6 address with an optional /prefix (got "10.0.0.0/33": prefix over 32)'), r.stderr);
    assert.ok(r.stderr.includes('routes[0].acl[0].allow must be an IPv4 or IPv6 address with an optional /prefix (got "1::2::3": not an address)'), r.stderr);
  });
});

describe('route ACL', () => {
  test('checked after routing, per route, before rate limiting and route actions', async () => {
    const u = await up();
    const s = await sluice({
      listen: { host: '::' },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [
        { name: 'admin', match: { path: { prefix: '/admin' } }, acl: [{ allow: '::1' }, { deny: '0.0.0.0/0' }, { deny: '::/0' }], action: { type: 'proxy', upstream: 'app' } },
        {
          name: 'limited',
          match: { path: { prefix: '/limited' } },
          acl: [{ deny: '127.0.0.1' }],
          // one token for the whole route: a denied request must not spend it
          rateLimit: { key: 'route', rate: 0.001, burst: 1 },
          action: { type: 'proxy', upstream: 'app' },
        },
        { name: 'hello', match: { path: { exact: '/hello' } }, acl: [{ deny: '127.0.0.0/8' }], action: { type: 'respond', status: 200, body: 'hi' } },
        { name: 'open', action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    const idAdmin4 = nextId('admin4');
    const denied = await get('127.0.0.1', s.port, '/admin/x', { 'x-request-id': idAdmin4 });
    assertForbidden(denied, '/admin from 127.0.0.1');
    assert.match(denied.body, /routes\[0\]\.acl, route admin/);
    assert.equal(denied.headers['x-request-id'], idAdmin4, 'route ACL runs after the request id phase');
    const logLine = await logged(s, idAdmin4);
    assert.equal(logLine.route, 'admin');
    assert.equal(logLine.status, 403);
    assert.equal(logLine.error, 'SLUICE_ERR_FORBIDDEN');
    assert.equal((await get('::1', s.port, '/admin/x')).status, 200);
    assert.equal((await get('127.0.0.1', s.port, '/open')).status, 200);

    for (let i = 0; i < 3; i++) assertForbidden(await get('127.0.0.1', s.port, '/limited'), `denied /limited #${i}`);
    assert.equal((await get('::1', s.port, '/limited')).status, 200, 'the route token is still there');
    assert.equal((await get('::1', s.port, '/limited')).status, 429, 'and now spent');

    assertForbidden(await get('127.0.0.1', s.port, '/hello'), 'respond route');
    const hi = await get('::1', s.port, '/hello');
    assert.equal(hi.status, 200);
    assert.equal(hi.body, 'hi');
  });
});

describe('trusted hops (proxy.trustedHops)', () => {
  const CHAIN = '203.0.113.9, 198.51.100.7, 10.0.0.1';

  async function withHops(hops: number): Promise<{ s: Running; u: Upstream }> {
    const u = await up();
    const s = await sluice({
      proxy: { trustedHops: hops },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [
        { name: 'guarded', match: { path: { prefix: '/guarded' } }, acl: [{ deny: '198.51.100.7' }], action: { type: 'proxy', upstream: 'app' } },
        { name: 'limited', match: { path: { prefix: '/limited' } }, rateLimit: { key: 'client_ip', rate: 0.001, burst: 1 }, action: { type: 'proxy', upstream: 'app' } },
        { name: 'open', action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    return { s, u };
  }

  test('0 hops: the peer is the client whatever X-Forwarded-For says', async () => {
    const { s, u } = await withHops(0);
    const id = nextId('h0');
    assert.equal((await get('127.0.0.1', s.port, '/guarded', { 'x-request-id': id, 'x-forwarded-for': CHAIN })).status, 200);
    assert.equal(seenXff(u, id), `${CHAIN}, 127.0.0.1`);
    assert.equal((await logged(s, id)).client, '127.0.0.1');
    // client_ip keys: everyone behind this peer shares one bucket
    assert.equal((await get('127.0.0.1', s.port, '/limited', { 'x-forwarded-for': '192.0.2.1' })).status, 200);
    assert.equal((await get('127.0.0.1', s.port, '/limited', { 'x-forwarded-for': '192.0.2.2' })).status, 429);
  });

  test('1 hop: the rightmost entry is the client; the upstream still gets the peer appended', async () => {
    const { s, u } = await withHops(1);
    const id = nextId('h1');
    assert.equal((await get('127.0.0.1', s.port, '/guarded', { 'x-request-id': id, 'x-forwarded-for': CHAIN })).status, 200);
    assert.equal(seenXff(u, id), `${CHAIN}, 127.0.0.1`);
    assert.equal((await logged(s, id)).client, '10.0.0.1');
    // client_ip keys use the derived client: two clients, two buckets
    assert.equal((await get('127.0.0.1', s.port, '/limited', { 'x-forwarded-for': '192.0.2.1' })).status, 200);
    assert.equal((await get('127.0.0.1', s.port, '/limited', { 'x-forwarded-for': '192.0.2.2' })).status, 200);
    assert.equal((await get('127.0.0.1', s.port, '/limited', { 'x-forwarded-for': '203.0.113.50, 192.0.2.1' })).status, 429);
    // no header: the peer
    const bare = nextId('h1-bare');
    await get('127.0.0.1', s.port, '/open', { 'x-request-id': bare });
    assert.equal((await logged(s, bare)).client, '127.0.0.1');
    assert.equal(seenXff(u, bare), '127.0.0.1');
  });

  test('2 hops: the second entry from the right; short chains give the leftmost; bad entries the peer', async () => {
    const { s, u } = await withHops(2);
    const id = nextId('h2');
    const denied = await get('127.0.0.1', s.port, '/guarded', { 'x-request-id': id, 'x-forwarded-for': CHAIN });
    assertForbidden(denied, 'client 198.51.100.7 on /guarded');
    assert.match(denied.body, /198\.51\.100\.7/);
    assert.equal((await logged(s, id)).client, '198.51.100.7');
    const open = nextId('h2-open');
    assert.equal((await get('127.0.0.1', s.port, '/open', { 'x-request-id': open, 'x-forwarded-for': CHAIN })).status, 200);
    assert.equal((await logged(s, open)).client, '198.51.100.7');
    assert.equal(seenXff(u, open), `${CHAIN}, 127.0.0.1`);
    // two header lines form one chain
    const split = nextId('h2-split');
    await get('127.0.0.1', s.port, '/open', { 'x-request-id': split, 'x-forwarded-for': ['203.0.113.9', '198.51.100.8'] });
    assert.equal((await logged(s, split)).client, '203.0.113.9');
    // shorter chain: the leftmost entry
    const short = nextId('h2-short');
    assertForbidden(await get('127.0.0.1', s.port, '/guarded', { 'x-request-id': short, 'x-forwarded-for': '198.51.100.7' }), 'one-entry chain');
    // the chosen entry is not an address: the peer
    const junk = nextId('h2-junk');
    assert.equal((await get('127.0.0.1', s.port, '/guarded', { 'x-request-id': junk, 'x-forwarded-for': '198.51.100.7, unknown, 10.0.0.1' })).status, 200);
    assert.equal((await logged(s, junk)).client, '127.0.0.1');
    // IPv6 entries are normalised
    const six = nextId('h2-v6');
    await get('127.0.0.1', s.port, '/open', { 'x-request-id': six, 'x-forwarded-for': '2001:DB8:0:0::7, 10.0.0.1' });
    assert.equal((await logged(s, six)).client, '2001:db8::7');
  });
});

describe('PROXY protocol v2', () => {
  async function withProxyProtocol(on: boolean): Promise<{ s: Running; u: Upstream }> {
    const u = await up();
    const s = await sluice({
      listen: { proxyProtocol: on ? 'v2' : 'off' },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [
        { name: 'guarded', match: { path: { prefix: '/guarded' } }, acl: [{ deny: '203.0.113.7' }], action: { type: 'proxy', upstream: 'app' } },
        { name: 'open', action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    return { s, u };
  }

  test('proxyProtocol on: the v2 source address is the client (IPv4 and IPv6), in ACLs, logs and X-Forwarded-For', async () => {
    const { s, u } = await withProxyProtocol(true);
    const c = new RawClient(s.port);
    const id = nextId('pp4');
    await c.send(Buffer.concat([proxyV2('203.0.113.7'), Buffer.from(rawGet('/open', id))]));
    assert.equal((await c.response()).status, 200);
    assert.equal(seenXff(u, id), '203.0.113.7');
    assert.equal((await logged(s, id)).client, '203.0.113.7');
    // the same connection keeps its address for the next request
    const id2 = nextId('pp4-guarded');
    await c.send(rawGet('/guarded', id2));
    const r2 = await c.response();
    assert.equal(r2.status, 403, r2.body);
    assert.match(r2.body, /SLUICE_ERR_FORBIDDEN/);
    c.close();

    const c6 = new RawClient(s.port);
    const id6 = nextId('pp6');
    const src6 = Buffer.from('20010db8000000000000000000000007', 'hex');
    await c6.send(Buffer.concat([proxyV2(src6), Buffer.from(rawGet('/open', id6))]));
    assert.equal((await c6.response()).status, 200);
    assert.equal(seenXff(u, id6), '2001:db8::7');
    c6.close();

    // no header, or a LOCAL header (the balancer's own health check): the peer address
    const plain = nextId('pp-none');
    assert.equal((await get('127.0.0.1', s.port, '/open', { 'x-request-id': plain })).status, 200);
    assert.equal(seenXff(u, plain), '127.0.0.1');
    const cl = new RawClient(s.port);
    const local = nextId('pp-local');
    await cl.send(Buffer.concat([proxyV2Local(), Buffer.from(rawGet('/open', local))]));
    assert.equal((await cl.response()).status, 200);
    assert.equal(seenXff(u, local), '127.0.0.1');
    cl.close();
  });

  test('proxyProtocol on + trustedHops: X-Forwarded-For behind the balancer is walked from the v2 source', async () => {
    const u = await up();
    const s = await sluice({
      listen: { proxyProtocol: 'v2' },
      proxy: { trustedHops: 1 },
      upstreams: { app: { hosts: [{ address: u.address }] } },
      routes: [{ name: 'open', action: { type: 'proxy', upstream: 'app' } }],
    });
    const c = new RawClient(s.port);
    const id = nextId('pp-hops');
    await c.send(Buffer.concat([proxyV2('203.0.113.7'), Buffer.from(rawGet('/', id, 'x-forwarded-for: 192.0.2.44\r\n'))]));
    assert.equal((await c.response()).status, 200);
    assert.equal(seenXff(u, id), '192.0.2.44, 203.0.113.7');
    assert.equal((await logged(s, id)).client, '192.0.2.44');
    c.close();
  });

  test('proxyProtocol off: a v2 header is consumed by uWS but its address is ignored (it could be spoofed)', async () => {
    const { s, u } = await withProxyProtocol(false);
    const c = new RawClient(s.port);
    const id = nextId('pp-off');
    await c.send(Buffer.concat([proxyV2('203.0.113.7'), Buffer.from(rawGet('/guarded', id))]));
    const r = await c.response();
    assert.equal(r.status, 200, 'the spoofed address does not reach the route ACL');
    assert.equal(seenXff(u, id), '127.0.0.1');
    assert.equal((await logged(s, id)).client, '127.0.0.1');
    c.close();
  });

  test('limitation (uWS 20.30): a later v2 header on a keep-alive connection replaces the address', async () => {
    // uWS runs its PROXY parser before every request head and lets a new header overwrite
    // the former one. Pinned here so that docs/edge.md changes when uWS does.
    const { s, u } = await withProxyProtocol(true);
    const c = new RawClient(s.port);
    const first = nextId('pp-ka1');
    await c.send(Buffer.concat([proxyV2('192.0.2.10'), Buffer.from(rawGet('/open', first))]));
    assert.equal((await c.response()).status, 200);
    const second = nextId('pp-ka2');
    await c.send(Buffer.concat([proxyV2('192.0.2.20'), Buffer.from(rawGet('/open', second))]));
    assert.equal((await c.response()).status, 200);
    assert.equal(seenXff(u, first), '192.0.2.10');
    assert.equal(seenXff(u, second), '192.0.2.20');
    c.close();
  });

  test('limitation (uWS 20.30): a PROXY v1 header is never answered; uWS closes the connection at its idle timeout', async () => {
    const { s, u } = await withProxyProtocol(true);
    const before = u.seen.length;
    const c = new RawClient(s.port);
    const id = nextId('pp-v1');
    await c.send(`PROXY TCP4 198.51.100.9 127.0.0.1 40000 80\r\n${rawGet('/open', id)}`);
    await waitFor(() => c.closed, 'uWS closes the v1 connection', 30000);
    assert.equal(c.received(), '', 'not a byte of response');
    assert.equal(u.seen.length, before, 'nothing reached the upstream');
    assert.equal(accessLog(s).some((r) => r.id === id), false);
  });
});
