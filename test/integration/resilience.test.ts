/**
 * Shared-state resilience against the real Sluice process with two workers and real
 * upstreams that fail, hang and recover on purpose: the rate limit holds for the whole
 * instance, breakers open / probe / close, health checks eject and re-admit, outlier
 * detection ejects, retries go to another host within their budget, and per-host
 * concurrency limits fail fast. No timing is asserted: the tests wait for states.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { accessLog, onRequestHead, request, startRawUpstream, startSluice, startUpstream, waitFor, type AccessRecord, type Reply, type Upstream } from '../helpers';

/** An upstream whose behaviour the test switches: 'ok', a status to answer, or 'hang'. */
interface Switchable extends Upstream {
  mode: string | number;
  hits: number;
}

async function switchable(name: string): Promise<Switchable> {
  const sw = { mode: 'ok' as string | number, hits: 0 };
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/health') {
      res.statusCode = sw.mode === 'ok' ? 200 : 503;
      res.end();
      return;
    }
    sw.hits++;
    if (sw.mode === 'hang') return;
    res.setHeader('x-served-by', name);
    res.statusCode = sw.mode === 'ok' ? 200 : (sw.mode as number);
    res.end(name);
  });
  return Object.assign(sw, up);
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

describe('rate limiting across workers', () => {
  test('one bucket for the whole instance; 429 with Retry-After and the RateLimit fields', async () => {
    const up = await startUpstream();
    closers.push(() => up.close());
    const s = await startSluice({
      workers: 2,
      upstreams: { app: { hosts: [{ address: up.address }] } },
      routes: [
        // 0.01 tokens/s: the bucket does not refill during the test, so the counts are exact.
        { name: 'limited', match: { path: { prefix: '/limited' } }, action: { type: 'proxy', upstream: 'app' }, rateLimit: { key: 'route', rate: 0.01, burst: 10 } },
        {
          name: 'perkey',
          match: { path: { prefix: '/perkey' } },
          action: { type: 'proxy', upstream: 'app' },
          rateLimit: { key: 'header:x-api-key', rate: 0.01, burst: 2, headers: 'always' },
        },
        { name: 'direct', match: { path: { prefix: '/direct' } }, action: { type: 'respond', body: 'hi' }, rateLimit: { key: 'client_ip', rate: 0.01, burst: 1 } },
      ],
    });
    closers.push(() => s.stop());
    // Fresh connections: SO_REUSEPORT spreads them over both workers. A per-worker limit
    // would admit up to 20.
    const replies = await Promise.all(Array.from({ length: 40 }, () => request(s.port, { path: '/limited' })));
    const ok = replies.filter((r) => r.status === 200).length;
    assert.equal(ok, 10, 'exactly the burst is admitted across both workers');
    const rejected = replies.find((r) => r.status === 429) as Reply;
    assert.equal(rejected.headers['x-sluice-error'], 'SLUICE_ERR_RATE_LIMITED');
    assert.ok(Number(rejected.headers['retry-after']) >= 1);
    assert.equal(rejected.headers['ratelimit-policy'], '"limited";q=10;w=1000');
    assert.match(String(rejected.headers.ratelimit), /^"limited";r=0;t=\d+$/);

    // Per header value, independent buckets; requests without the header are not limited.
    const a = [];
    for (let i = 0; i < 3; i++) a.push(await request(s.port, { path: '/perkey', headers: { 'x-api-key': 'alpha' } }));
    assert.deepEqual(a.map((r) => r.status), [200, 200, 429]);
    assert.match(String(a[0]?.headers.ratelimit), /^"perkey";r=1;t=\d+$/, 'headers: always puts RateLimit on admitted responses');
    assert.equal((await request(s.port, { path: '/perkey', headers: { 'x-api-key': 'beta' } })).status, 200);
    for (let i = 0; i < 4; i++) assert.equal((await request(s.port, { path: '/perkey' })).status, 200);

    // Routes that answer themselves are limited too (the limiter runs before the action).
    assert.equal((await request(s.port, { path: '/direct' })).status, 200);
    assert.equal((await request(s.port, { path: '/direct' })).status, 429);
  });
});

describe('circuit breaker, shared by the workers', () => {
  test('opens after consecutive failures, skips the host, probes after the cool-down, closes', async () => {
    const bad = await switchable('bad');
    const good = await switchable('good');
    closers.push(() => bad.close(), () => good.close());
    bad.mode = 500;
    const s = await startSluice({
      workers: 2,
      log: { access: true },
      upstreams: {
        app: {
          balance: 'round_robin',
          hosts: [{ address: bad.address }, { address: good.address }],
          breaker: { consecutiveFailures: 3, failureRatio: 0, openMs: 300, halfOpenProbes: 1, closeAfter: 2 },
        },
        solo: { hosts: [{ address: bad.address }], breaker: { consecutiveFailures: 2, failureRatio: 0, openMs: 60000 } },
      },
      routes: [
        { name: 'solo', match: { path: { prefix: '/solo' } }, action: { type: 'proxy', upstream: 'solo' } },
        { name: 'app', action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    closers.push(() => s.stop());
    await waitFor(async () => {
      await request(s.port, { path: '/x' });
      return s.logs.some((l) => l.msg === 'circuit breaker opened');
    }, 'the breaker to open');
    const hitsAtOpen = bad.hits;
    const after = await Promise.all(Array.from({ length: 20 }, () => request(s.port, { path: '/x' })));
    assert.ok(after.every((r) => r.status === 200 && r.body.toString() === 'good'), 'the open host gets no traffic from either worker');
    assert.equal(bad.hits, hitsAtOpen);
    assert.equal(s.logs.filter((l) => l.msg === 'circuit breaker opened' && (l.host as string) === bad.address).length, 1, 'opened once for the instance');
    await waitFor(() => accessLog(s).some((r) => r.flags?.includes('CO')), 'the request that opened it flagged CO');

    // The host recovers: after the cool-down a probe goes through, and closeAfter successes close it.
    bad.mode = 'ok';
    await waitFor(async () => {
      await request(s.port, { path: '/x' });
      return s.logs.some((l) => l.msg === 'circuit breaker closed');
    }, 'the breaker to close');
    const back = await Promise.all(Array.from({ length: 10 }, () => request(s.port, { path: '/x' })));
    assert.ok(back.some((r) => r.body.toString() === 'bad'), 'the recovered host is used again');

    // A group whose only host is behind an open breaker answers 503 at once.
    bad.mode = 502;
    await request(s.port, { path: '/solo' });
    await request(s.port, { path: '/solo' });
    const refused = await request(s.port, { path: '/solo' });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['x-sluice-error'], 'SLUICE_ERR_BREAKER_OPEN');
    bad.mode = 'ok';
  });
});

describe('active health checks', () => {
  test('a failing host is taken out after `fall` checks and re-admitted after `rise`', async () => {
    const a = await switchable('a');
    const b = await switchable('b');
    closers.push(() => a.close(), () => b.close());
    const s = await startSluice({
      workers: 2,
      upstreams: {
        app: {
          hosts: [{ address: a.address }, { address: b.address }],
          healthCheck: { path: '/health', intervalMs: 50, timeoutMs: 500, rise: 2, fall: 2 },
          panicThresholdPercent: 0,
        },
      },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }],
    });
    closers.push(() => s.stop());
    a.mode = 503; // its /health now fails; its traffic would still be answered
    await s.waitForLog((l) => l.msg === 'health check: host is down' && l.host === a.address);
    const replies = await Promise.all(Array.from({ length: 20 }, () => request(s.port, { path: '/x' })));
    assert.ok(replies.every((r) => r.body.toString() === 'b'), 'no request goes to the down host');
    a.mode = 'ok';
    await s.waitForLog((l) => l.msg === 'health check: host is up' && l.host === a.address);
    await waitFor(async () => (await request(s.port, { path: '/x' })).body.toString() === 'a', 'the host to take traffic again');
  });

  test('panic: with fewer than half the hosts healthy, all hosts are used', async () => {
    const a = await switchable('a');
    const b = await switchable('b');
    closers.push(() => a.close(), () => b.close());
    const s = await startSluice({
      workers: 1,
      log: { access: true },
      upstreams: {
        app: { hosts: [{ address: a.address }, { address: b.address }], healthCheck: { path: '/health', intervalMs: 50, rise: 1, fall: 1 }, panicThresholdPercent: 60 },
      },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }],
    });
    closers.push(() => s.stop());
    a.mode = 503;
    await s.waitForLog((l) => l.msg === 'health check: host is down' && l.host === a.address);
    // 1 of 2 available = 50 % < 60 %: panic, both hosts in use (a still answers its traffic with 503).
    const replies = [];
    for (let i = 0; i < 6; i++) replies.push(await request(s.port, { path: '/x' }));
    assert.ok(replies.some((r) => r.body.toString() === 'a'));
    await waitFor(() => accessLog(s).length >= 6, 'access log');
    assert.ok(accessLog(s).every((r) => r.flags?.includes('PN')));
  });
});

describe('consistent hashing with health', () => {
  test('a down host leaves the ketama ring; keys of the other hosts stay put; it comes back', async () => {
    const ups = [await switchable('a'), await switchable('b'), await switchable('c')];
    for (const u of ups) closers.push(() => u.close());
    const s = await startSluice({
      workers: 2,
      upstreams: {
        app: {
          balance: 'ketama',
          hashKey: 'header:x-user',
          hashBalanceFactor: 0,
          hosts: ups.map((u) => ({ address: u.address })),
          healthCheck: { path: '/health', intervalMs: 50, rise: 1, fall: 1 },
          panicThresholdPercent: 0,
        },
      },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }],
    });
    closers.push(() => s.stop());
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const placement = async (): Promise<string[]> =>
      Promise.all(users.map(async (u) => (await request(s.port, { path: '/x', headers: { 'x-user': u } })).body.toString()));
    const before = await placement();
    assert.ok(new Set(before).size === 3, 'keys spread over the three hosts');
    ups[0]!.mode = 503;
    await s.waitForLog((l) => l.msg === 'health check: host is down' && l.host === ups[0]!.address);
    const during = await placement();
    users.forEach((u, i) => {
      assert.notEqual(during[i], 'a', `${u} avoids the down host`);
      if (before[i] !== 'a') assert.equal(during[i], before[i], `${u} stays on its host`);
    });
    ups[0]!.mode = 'ok';
    await s.waitForLog((l) => l.msg === 'health check: host is up' && l.host === ups[0]!.address);
    assert.deepEqual(await placement(), before, 'the table is whole again');
  });
});

describe('outlier detection', () => {
  test('consecutive gateway errors eject a host for all workers', async () => {
    const bad = await switchable('bad');
    const good = await switchable('good');
    closers.push(() => bad.close(), () => good.close());
    bad.mode = 502;
    const s = await startSluice({
      workers: 2,
      log: { access: true },
      upstreams: {
        app: {
          hosts: [{ address: bad.address }, { address: good.address }],
          outlierDetection: { consecutiveErrors: 3, baseEjectionMs: 60000, maxEjectionPercent: 50 },
        },
      },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }],
    });
    closers.push(() => s.stop());
    await waitFor(async () => {
      await request(s.port, { path: '/x' });
      return s.logs.some((l) => l.msg === 'host ejected (outlier detection)');
    }, 'the ejection');
    const hits = bad.hits;
    const replies = await Promise.all(Array.from({ length: 20 }, () => request(s.port, { path: '/x' })));
    assert.ok(replies.every((r) => r.status === 200));
    assert.equal(bad.hits, hits, 'the ejected host gets nothing');
    assert.equal(s.logs.filter((l) => l.msg === 'host ejected (outlier detection)').length, 1);
    await waitFor(() => accessLog(s).some((r) => r.flags?.includes('EJ')), 'the request that ejected the host flagged EJ');
  });
});

describe('retries', () => {
  test('to another host on 503, connect failures and timeouts; never for POST without Idempotency-Key', async () => {
    const failing = await switchable('failing');
    const good = await switchable('good');
    const hang = await switchable('hang');
    closers.push(() => failing.close(), () => good.close(), () => hang.close());
    failing.mode = 503;
    hang.mode = 'hang';
    const dead = await startRawUpstream(() => undefined);
    const deadAddress = dead.address;
    await dead.close();
    // Weights send every first attempt to the failing host; the retry must go to the other one.
    const hosts = (first: string): unknown[] => [
      { address: first, weight: 10000 },
      { address: good.address, weight: 1 },
    ];
    const s = await startSluice({
      workers: 2,
      log: { access: true },
      upstreams: {
        failing: { hosts: hosts(failing.address) },
        dead: { hosts: hosts(deadAddress) },
        hang: { hosts: hosts(hang.address), timeouts: { headerMs: 300 } },
      },
      routes: [
        { name: 'status', match: { path: { prefix: '/status' } }, action: { type: 'proxy', upstream: 'failing' }, retry: { attempts: 2, idempotencyKey: true } },
        { name: 'connect', match: { path: { prefix: '/connect' } }, action: { type: 'proxy', upstream: 'dead' }, retry: { attempts: 1 } },
        { name: 'timeout', match: { path: { prefix: '/timeout' } }, action: { type: 'proxy', upstream: 'hang' }, retry: { attempts: 1, on: ['timeout'] } },
        { name: 'noretry', match: { path: { prefix: '/noretry' } }, action: { type: 'proxy', upstream: 'failing' } },
      ],
    });
    closers.push(() => s.stop());

    const r1 = await request(s.port, { path: '/status' });
    assert.equal(r1.status, 200);
    assert.equal(r1.body.toString(), 'good');
    const r2 = await request(s.port, { path: '/connect' });
    assert.equal(r2.status, 200);
    const r3 = await request(s.port, { path: '/timeout' });
    assert.equal(r3.status, 200);
    const post = await request(s.port, { path: '/status', method: 'POST', body: 'x' });
    assert.equal(post.status, 503, 'POST is not idempotent');
    const keyed = await request(s.port, { path: '/status', method: 'POST', body: 'payload', headers: { 'idempotency-key': 'k1' } });
    assert.equal(keyed.status, 200, 'with Idempotency-Key the route allows it');
    assert.equal(good.seen.at(-1)?.body.toString(), 'payload', 'the body was replayed to the second host');
    assert.equal((await request(s.port, { path: '/noretry' })).status, 503, 'retries are off unless configured');

    await waitFor(() => accessLog(s).length >= 6, 'access log');
    const log = accessLog(s);
    for (const route of ['status', 'connect', 'timeout']) {
      const rec = log.find((r) => r.route === route && r.status === 200) as AccessRecord;
      assert.equal(rec.attempts, 2, route);
      assert.ok(rec.flags?.includes('RY'), `${route} flagged RY`);
      assert.equal(rec.upstreamHost, good.address, `${route} ended on the other host`);
    }
  });

  test('Retry-After is honoured up to maxRetryAfterMs; past it the upstream answer goes through', async () => {
    const slow = await startUpstream((_req, res) => {
      res.statusCode = 503;
      res.setHeader('retry-after', '120');
      res.end('busy');
    });
    const good = await switchable('good');
    closers.push(() => slow.close(), () => good.close());
    const s = await startSluice({
      workers: 1,
      log: { access: true },
      upstreams: { app: { hosts: [{ address: slow.address, weight: 10000 }, { address: good.address, weight: 1 }] } },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' }, retry: { attempts: 2 } }],
    });
    closers.push(() => s.stop());
    const r = await request(s.port, { path: '/x' });
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'busy', 'a 120 s Retry-After is not waited for');
    assert.equal(r.headers['retry-after'], '120');
  });

  test('the retry budget caps retries in flight', async () => {
    // The first host answers 503 after a while; the second holds its answers, so retries stay in flight.
    const release: (() => void)[] = [];
    const slow503 = await startRawUpstream((sock) =>
      onRequestHead(sock, () => setTimeout(() => sock.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'), 100)),
    );
    const holding = await startUpstream((_req, res) => {
      release.push(() => res.end('late'));
    });
    closers.push(() => slow503.close(), () => holding.close());
    const s = await startSluice({
      workers: 1,
      log: { access: true },
      upstreams: { app: { hosts: [{ address: slow503.address, weight: 10000 }, { address: holding.address, weight: 1 }] } },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' }, retry: { attempts: 1, budgetPercent: 0, budgetMin: 1 } }],
    });
    closers.push(() => s.stop());
    const pending = Array.from({ length: 4 }, () => request(s.port, { path: '/x' }));
    await waitFor(() => accessLog(s).length >= 3 && release.length >= 1, 'three answers and one retry held');
    for (const r of release) r();
    const replies = await Promise.all(pending);
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 503, 503, 503]);
    // Worker stdout reaches the process's stdout asynchronously: wait for all four lines.
    await waitFor(() => accessLog(s).length >= 4, 'four access-log lines');
    const log = accessLog(s);
    assert.equal(log.filter((r) => r.flags?.includes('RY')).length, 1);
    assert.equal(log.filter((r) => r.flags?.includes('RB')).length, 3);
  });
});

describe('per-host concurrency limits', () => {
  test('maxActivePerHost holds across workers and fails fast with 503', async () => {
    const release: (() => void)[] = [];
    const up = await startUpstream((_req, res) => {
      release.push(() => res.end('ok'));
    });
    closers.push(() => up.close());
    const s = await startSluice({
      workers: 2,
      upstreams: { app: { hosts: [{ address: up.address }], maxActivePerHost: 2 } },
      routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }],
    });
    closers.push(() => s.stop());
    const first = [request(s.port, { path: '/1' }), request(s.port, { path: '/2' })];
    await waitFor(() => release.length === 2, 'two requests held by the upstream');
    const over = await Promise.all(Array.from({ length: 4 }, () => request(s.port, { path: '/over' })));
    assert.ok(over.every((r) => r.status === 503 && r.headers['x-sluice-error'] === 'SLUICE_ERR_UPSTREAM_OVERFLOW'));
    for (const r of release) r();
    assert.deepEqual((await Promise.all(first)).map((r) => r.status), [200, 200]);
    // The places were given back.
    const again = request(s.port, { path: '/again' });
    await waitFor(() => release.length === 3, 'the next request reaches the upstream');
    release[2]?.();
    assert.equal((await again).status, 200);
  });
});
