/**
 * The real Sluice process (primary + 2 worker threads) in front of real node:http
 * upstreams: forwarding headers, hop-by-hop stripping, routing and route actions, load
 * balancing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startSluice, startUpstream, type Running, type Upstream } from '../helpers';

describe('proxying and routing', () => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let s: Running;

  before(async () => {
    a = await startUpstream();
    b = await startUpstream();
    c = await startUpstream();
    s = await startSluice({
      workers: 1,
      log: { access: true },
      upstreams: {
        weighted: { balance: 'round_robin', hosts: [{ address: a.address, weight: 3 }, { address: b.address, weight: 1 }] },
        one: { hosts: [{ address: c.address }] },
        lr: { balance: 'least_request', hosts: [{ address: a.address }, { address: b.address }] },
        rnd: { balance: 'random', hosts: [{ address: a.address }, { address: b.address }] },
      },
      routes: [
        { name: 'exact-host', match: { host: 'api.example.com', path: { prefix: '/' } }, action: { type: 'respond', body: 'exact host' } },
        { name: 'wild-host', match: { host: '*.example.org' }, action: { type: 'respond', status: 201, body: 'wildcard host' } },
        { name: 'exact-path', match: { path: { exact: '/exact' } }, action: { type: 'respond', body: 'exact path' } },
        { name: 'regex-path', match: { path: { regex: '^/items/[0-9]+$' } }, action: { type: 'respond', body: 'regex path' } },
        { name: 'delete-only', match: { path: { prefix: '/m/' }, methods: ['DELETE'] }, action: { type: 'respond', body: 'delete' } },
        { name: 'hdr', match: { headers: [{ name: 'x-canary', exact: 'yes' }] }, action: { type: 'proxy', upstream: 'one' } },
        { name: 'hdr-re', match: { headers: [{ name: 'x-ver', regex: '^v[23]$' }] }, action: { type: 'respond', body: 'regex header' } },
        { name: 'hdr-absent', match: { path: { prefix: '/absent' }, headers: [{ name: 'x-token', present: false }] }, action: { type: 'respond', status: 401, body: 'no token' } },
        { name: 'redir', match: { path: { prefix: '/old' } }, action: { type: 'redirect', location: 'https://new.example.com', status: 308, appendPath: true } },
        {
          name: 'rewrite',
          match: { path: { prefix: '/api/' } },
          rewrite: { prefix: '/v2/' },
          requestHeaders: { set: { 'x-proxy': 'sluice' }, add: { 'x-added': '1' }, remove: ['x-secret'] },
          responseHeaders: { set: { 'x-frame-options': 'DENY' }, remove: ['x-upstream-port'] },
          action: { type: 'proxy', upstream: 'one' },
        },
        { name: 'split', match: { path: { prefix: '/split' } }, action: { type: 'split', targets: [{ upstream: 'one', weight: 1 }, { upstream: 'weighted', weight: 0 }] } },
        { name: 'lr', match: { path: { prefix: '/lr' } }, action: { type: 'proxy', upstream: 'lr' } },
        { name: 'rnd', match: { path: { prefix: '/rnd' } }, action: { type: 'proxy', upstream: 'rnd' } },
        { name: 'nothing-else', match: { path: { prefix: '/none' } }, action: { type: 'respond', status: 404, body: 'nope' } },
        { name: 'default', match: { methods: ['GET', 'POST', 'HEAD', 'PUT'] }, action: { type: 'proxy', upstream: 'weighted' } },
      ],
    });
  });

  after(async () => {
    assert.equal(await s.stop(), 0);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('forwarding headers: X-Forwarded-*, Via, request id generated and echoed', async () => {
    const r = await request(s.port, { path: '/hello?x=1', headers: { host: 'shop.test:8080' } });
    assert.equal(r.status, 200);
    const up = JSON.parse(r.body.toString()) as { url: string; headers: Record<string, string> };
    assert.equal(up.url, '/hello?x=1');
    assert.equal(up.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(up.headers['x-forwarded-proto'], 'http');
    assert.equal(up.headers['x-forwarded-host'], 'shop.test:8080');
    assert.equal(up.headers.host, 'shop.test:8080');
    assert.equal(up.headers.via, '1.1 sluice');
    assert.match(up.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.headers['x-request-id'], up.headers['x-request-id']);
    assert.equal(r.headers.via, '1.1 sluice');
    // uWS's own header is switched off; exactly one Date and one Content-Length.
    assert.equal(r.headers.uwebsockets, undefined);
    assert.equal(r.rawHeaders.filter((h) => h.toLowerCase() === 'date').length, 1);
    assert.equal(r.rawHeaders.filter((h) => h.toLowerCase() === 'content-length').length, 1);
  });

  test('an incoming request id is propagated, X-Forwarded-For appended', async () => {
    const r = await request(s.port, { headers: { 'x-request-id': 'abc-123', 'x-forwarded-for': '203.0.113.7', via: '1.0 edge' } });
    const up = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
    assert.equal(up.headers['x-request-id'], 'abc-123');
    assert.equal(r.headers['x-request-id'], 'abc-123');
    assert.equal(up.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(up.headers.via, '1.0 edge, 1.1 sluice');
  });

  test('X-Forwarded-For names each connection\'s own client while connections close and their descriptors are reused', async () => {
    // The worker answers from the address accept gave (native/napi/src/uws20/accept_peers.rs; its
    // listener is wrapped when it starts): one connection per request, from a new address
    // each time, so a note left by an earlier connection on the same descriptor would show.
    const seen: string[] = [];
    for (let i = 2; i < 12; i++) {
      const r = await request(s.port, { localAddress: `127.0.0.${i}` });
      seen.push((JSON.parse(r.body.toString()) as { headers: Record<string, string> }).headers['x-forwarded-for'] ?? '');
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}`),
    );
  });

  test('hop-by-hop request headers, and those Connection lists, are not forwarded', async () => {
    const r = await request(s.port, {
      headers: { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-connection': 'keep-alive', 'x-end': 'kept' },
    });
    const up = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
    assert.equal(up.headers['x-hop'], undefined);
    assert.equal(up.headers['keep-alive'], undefined);
    assert.equal(up.headers.te, undefined);
    assert.equal(up.headers['proxy-connection'], undefined);
    assert.equal(up.headers['x-end'], 'kept');
  });

  test('hop-by-hop response headers are stripped', async () => {
    const up = await startUpstream((_req, res) => {
      res.setHeader('connection', 'keep-alive, x-private');
      res.setHeader('x-private', '1');
      res.setHeader('keep-alive', 'timeout=30');
      res.setHeader('x-public', '2');
      res.end('ok');
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: up.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    try {
      const r = await request(s2.port);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-private'], undefined);
      assert.equal(r.headers['keep-alive'], undefined);
      assert.equal(r.headers['x-public'], '2');
      assert.equal(r.body.toString(), 'ok');
    } finally {
      await s2.stop();
      await up.close();
    }
  });

  test('host matching: exact and wildcard', async () => {
    assert.equal((await request(s.port, { headers: { host: 'api.example.com' } })).body.toString(), 'exact host');
    assert.equal((await request(s.port, { headers: { host: 'API.example.com:443' } })).body.toString(), 'exact host');
    const w = await request(s.port, { headers: { host: 'a.b.example.org' } });
    assert.equal(w.status, 201);
    assert.equal(w.body.toString(), 'wildcard host');
    const bare = await request(s.port, { headers: { host: 'example.org' } });
    assert.notEqual(bare.body.toString(), 'wildcard host');
  });

  test('path matching: exact, regex, prefix; method and header conditions', async () => {
    assert.equal((await request(s.port, { path: '/exact' })).body.toString(), 'exact path');
    assert.notEqual((await request(s.port, { path: '/exact/more' })).body.toString(), 'exact path');
    assert.equal((await request(s.port, { path: '/items/42' })).body.toString(), 'regex path');
    assert.notEqual((await request(s.port, { path: '/items/4x' })).body.toString(), 'regex path');
    assert.equal((await request(s.port, { method: 'DELETE', path: '/m/1' })).body.toString(), 'delete');
    assert.notEqual((await request(s.port, { method: 'GET', path: '/m/1' })).body.toString(), 'delete');
    assert.equal((await request(s.port, { headers: { 'x-ver': 'v3' } })).body.toString(), 'regex header');
    assert.equal((await request(s.port, { path: '/absent' })).status, 401);
    assert.notEqual((await request(s.port, { path: '/absent', headers: { 'x-token': 't' } })).status, 401);
    const canary = await request(s.port, { headers: { 'x-canary': 'yes' } });
    assert.equal(canary.headers['x-upstream-port'], String(c.port));
  });

  test('no matching route answers 404 with a machine-readable reason', async () => {
    const r = await request(s.port, { method: 'OPTIONS', path: '/zzz' });
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_NO_ROUTE');
    assert.equal((JSON.parse(r.body.toString()) as { error: string }).error, 'SLUICE_ERR_NO_ROUTE');
  });

  test('redirect appends path and query', async () => {
    const r = await request(s.port, { path: '/old/page?q=1' });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://new.example.com/old/page?q=1');
  });

  test('prefix rewrite and request/response header edits', async () => {
    const r = await request(s.port, { path: '/api/users?id=7', headers: { 'x-secret': 's', 'x-proxy': 'client' } });
    assert.equal(r.status, 200);
    const up = JSON.parse(r.body.toString()) as { url: string; headers: Record<string, string> };
    assert.equal(up.url, '/v2/users?id=7');
    assert.equal(up.headers['x-proxy'], 'sluice');
    assert.equal(up.headers['x-added'], '1');
    assert.equal(up.headers['x-secret'], undefined);
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-upstream-port'], undefined);
  });

  test('weighted split sends everything to the only weighted target', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await request(s.port, { path: '/split' });
      assert.equal(r.headers['x-upstream-port'], String(c.port));
    }
  });

  test('smooth weighted round robin: 3:1 exactly over each cycle of 4', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 16; i++) {
      const r = await request(s.port, { path: '/rr' });
      const p = r.headers['x-upstream-port'] as string;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    assert.equal(counts.get(String(a.port)), 12);
    assert.equal(counts.get(String(b.port)), 4);
  });

  test('least_request and random reach both hosts', async () => {
    for (const path of ['/lr', '/rnd']) {
      const ports = new Set<string>();
      const replies = await Promise.all(Array.from({ length: 40 }, () => request(s.port, { path })));
      for (const r of replies) ports.add(r.headers['x-upstream-port'] as string);
      assert.deepEqual([...ports].sort(), [String(a.port), String(b.port)].sort(), path);
    }
  });

  test('the access log has one JSON line per request with route, upstream and status', async () => {
    await request(s.port, { path: '/exact', headers: { 'x-request-id': 'log-me' } });
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && line === undefined; i++) {
      line = s.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.id === 'log-me');
      if (line === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(line, 'access log line present');
    assert.equal(line.route, 'exact-path');
    assert.equal(line.status, 200);
    assert.equal(line.method, 'GET');
  });
});
