/**
 * The admin listener against the real Sluice process (two workers) and a real upstream: a
 * known mix of requests on three routes (200s, upstream 503s, 429s from a rate limit), then
 * /metrics parsed as Prometheus text and compared with what the test sent and saw; /status
 * JSON; 404/405; counters kept across a reload; /healthz 200, then 503 while a drain waits
 * for a held request; a taken admin port fails the start naming admin.port.
 * No timing is asserted: the tests wait for states by polling.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { request, type Running, runSluice, startSluice, startUpstream, tempFile, waitFor } from '../helpers';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format 0.0.4: `# HELP`/`# TYPE` lines and `name{k="v",...} value` samples. */
function parseProm(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ') as [string, string];
      types.set(name, type);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    }
    const v = m[3] as string;
    samples.push({ name: m[1] as string, labels, value: v === 'NaN' ? NaN : v === '+Inf' ? Infinity : Number(v) });
  }
  return { types, samples };
}

function metric(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return (found[0] as Sample).value;
}

async function scrape(s: Running): Promise<Sample[]> {
  const r = await request(s.adminPort, { path: '/metrics' });
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseProm(r.body.toString()).samples;
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

describe('admin listener', () => {
  const held: ServerResponse[] = [];
  let s: Running;

  test('starts with the workers and answers /healthz', async () => {
    const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/fail') === true) {
        res.statusCode = 503;
        res.end('down');
      } else if (req.url?.startsWith('/hold') === true) {
        held.push(res);
      } else res.end('ok');
    });
    closers.push(() => up.close());
    s = await startSluice({
      workers: 2,
      upstreams: { app: { hosts: [{ address: up.address }] } },
      routes: [
        { name: 'ok', match: { path: { prefix: '/ok' } }, action: { type: 'proxy', upstream: 'app' } },
        { name: 'fail', match: { path: { prefix: '/fail' } }, action: { type: 'proxy', upstream: 'app' } },
        { name: 'limited', match: { path: { prefix: '/limited' } }, action: { type: 'proxy', upstream: 'app' }, rateLimit: { key: 'route', rate: 0.01, burst: 3 } },
        { name: 'hold', match: { path: { prefix: '/hold' } }, action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    closers.push(() => s.stop('SIGKILL'));
    assert.ok(s.adminPort > 0 && s.adminPort !== s.port, 'the listening record names the admin port');
    const h = await request(s.adminPort, { path: '/healthz' });
    assert.equal(h.status, 200);
    assert.equal(h.body.toString(), 'ok\n');
  });

  test('/metrics counts exactly what was sent, with latency percentiles inside the observed range', async () => {
    let maxWallMs = 0;
    const send = async (path: string): Promise<number> => {
      const t0 = performance.now();
      const r = await request(s.port, { path });
      maxWallMs = Math.max(maxWallMs, performance.now() - t0);
      return r.status;
    };
    const okStatuses: number[] = [];
    for (let i = 0; i < 30; i++) okStatuses.push(await send(`/ok/${i}`));
    const failStatuses: number[] = [];
    for (let i = 0; i < 7; i++) failStatuses.push(await send('/fail'));
    const limited: number[] = [];
    for (let i = 0; i < 8; i++) limited.push(await send('/limited'));
    assert.deepEqual(okStatuses, new Array(30).fill(200));
    assert.deepEqual(failStatuses, new Array(7).fill(503));
    const passed = limited.filter((x) => x === 200).length;
    const limitedOut = limited.filter((x) => x === 429).length;
    assert.equal(passed + limitedOut, 8);
    assert.ok(limitedOut >= 1, 'the burst of 3 ran out');

    const m = await scrape(s);
    const req = (route: string, cls: string): number => metric(m, 'sluice_requests_total', { route, upstream: 'app', class: cls });
    assert.equal(req('ok', '2xx'), 30);
    assert.equal(req('ok', '5xx'), 0);
    assert.equal(req('fail', '5xx'), 7);
    assert.equal(req('limited', '2xx'), passed);
    assert.equal(req('limited', '4xx'), limitedOut);
    assert.equal(req('hold', '2xx'), 0);
    assert.equal(metric(m, 'sluice_rate_limited_requests_total', { route: 'limited' }), limitedOut);
    assert.equal(metric(m, 'sluice_response_flags_total', { route: 'limited', flag: 'RL' }), limitedOut);
    assert.equal(metric(m, 'sluice_request_duration_seconds_count', { route: 'ok' }), 30);
    assert.equal(metric(m, 'sluice_request_duration_seconds_count', { route: 'fail' }), 7);
    assert.equal(metric(m, 'sluice_request_duration_seconds_bucket', { route: 'ok', le: '+Inf' }), 30);
    const p50 = metric(m, 'sluice_request_duration_quantile_seconds', { route: 'ok', quantile: '0.5' });
    const p99 = metric(m, 'sluice_request_duration_quantile_seconds', { route: 'ok', quantile: '0.99' });
    assert.ok(p50 > 0, `p50 ${p50} > 0`);
    assert.ok(p99 >= p50, `p99 ${p99} >= p50 ${p50}`);
    // The proxy's time is inside the client's; hdr values are at most 0.1 % above the truth.
    assert.ok(p99 <= (maxWallMs / 1000) * 1.001, `p99 ${p99} s within the slowest observed request ${maxWallMs} ms`);
    assert.ok(metric(m, 'sluice_request_duration_seconds_sum', { route: 'ok' }) <= (30 * maxWallMs * 1.001) / 1000);
    assert.equal(metric(m, 'sluice_workers'), 2);
    assert.equal(metric(m, 'sluice_workers_ready'), 2);
    assert.equal(metric(m, 'sluice_config_version'), 1);
    assert.equal(metric(m, 'sluice_draining'), 0);
    assert.equal(metric(m, 'sluice_upstream_hosts', { upstream: 'app' }), 1);
    assert.equal(metric(m, 'sluice_upstream_hosts_healthy', { upstream: 'app' }), 1);
    assert.equal(metric(m, 'sluice_upstream_hosts_available', { upstream: 'app' }), 1);
    assert.ok(metric(m, 'sluice_requests_per_second') > 0);
    assert.equal(metric(m, 'sluice_requests_in_flight'), 0);
    assert.ok(m.some((x) => x.name === 'sluice_pool_connections_open' && x.labels.upstream === 'app'), 'pool sizes are exported');
    assert.ok(metric(m, 'sluice_rate_limit_table_live') >= 1);
  });

  test('/status is JSON with config version, workers and upstream health', async () => {
    const r = await request(s.adminPort, { path: '/status' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const st = JSON.parse(r.body.toString()) as {
      ready: boolean;
      configVersion: number;
      uptimeSeconds: number;
      listen: { port: number };
      workers: { id: number; ready: boolean; alive: boolean; requests: number | null; inflight: number | null }[];
      upstreams: Record<string, { hosts: { address: string; healthy: boolean; available: boolean; breaker: string; ejected: boolean }[] }>;
    };
    assert.equal(st.ready, true);
    assert.equal(st.configVersion, 1);
    assert.ok(st.uptimeSeconds >= 0);
    assert.equal(st.listen.port, s.port);
    assert.deepEqual(st.workers.map((w) => [w.id, w.ready, w.alive]), [[0, true, true], [1, true, true]]);
    assert.equal(st.workers.reduce((n, w) => n + (w.requests ?? 0), 0) >= 45, true, 'every worker answered with its request count');
    const hosts = st.upstreams.app?.hosts ?? [];
    assert.equal(hosts.length, 1);
    assert.deepEqual({ ...hosts[0], address: undefined }, { address: undefined, healthy: true, available: true, breaker: 'closed', ejected: false, ejections: 0, breakerOpened: 0, activeRequests: 0, healthCheck: null });
  });

  test('unknown paths get 404 and other methods 405, with x-sluice-error', async () => {
    const nf = await request(s.adminPort, { path: '/nope' });
    assert.equal(nf.status, 404);
    assert.equal(nf.headers['x-sluice-error'], 'SLUICE_ERR_NO_ROUTE');
    const na = await request(s.adminPort, { method: 'POST', path: '/metrics', body: 'x' });
    assert.equal(na.status, 405);
    assert.equal(na.headers['x-sluice-error'], 'SLUICE_ERR_METHOD_NOT_ALLOWED');
    assert.equal(na.headers.allow, 'GET, HEAD');
    const head = await request(s.adminPort, { method: 'HEAD', path: '/healthz' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test('a reload bumps the config version and keeps the counters', async () => {
    s.proc.kill('SIGHUP');
    await waitFor(async () => metric(await scrape(s), 'sluice_config_version') === 2, 'config version 2');
    const m = await scrape(s);
    assert.equal(metric(m, 'sluice_requests_total', { route: 'ok', upstream: 'app', class: '2xx' }), 30);
    assert.equal(metric(m, 'sluice_request_duration_seconds_count', { route: 'ok' }), 30);
  });

  test('/healthz answers 503 while draining, then the admin port closes', async () => {
    const pending = request(s.port, { path: '/hold' });
    await waitFor(() => held.length === 1, 'the upstream holds the request');
    s.proc.kill('SIGTERM');
    await waitFor(async () => (await request(s.adminPort, { path: '/healthz' })).status === 503, '/healthz 503');
    const h = await request(s.adminPort, { path: '/healthz' });
    assert.equal(h.body.toString(), 'draining\n');
    const m = await scrape(s);
    assert.equal(metric(m, 'sluice_draining'), 1);
    assert.equal(metric(m, 'sluice_requests_in_flight'), 1);
    (held[0] as ServerResponse).end('released');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(await s.exited, 0);
    await assert.rejects(request(s.adminPort, { path: '/healthz' }), /ECONNREFUSED/);
  });
});

test('admin.enabled false: no admin listener', async () => {
  const up = await startUpstream();
  closers.push(() => up.close());
  const s = await startSluice({
    workers: 1,
    admin: { enabled: false },
    upstreams: { app: { hosts: [{ address: up.address }] } },
    routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
  });
  closers.push(() => s.stop('SIGKILL'));
  assert.equal(s.adminPort, 0);
  assert.equal((await request(s.port, { path: '/' })).status, 200);
  assert.equal(await s.stop(), 0);
});

test('a taken admin port fails the start, naming admin.port', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => blocker.close(r)));
  const taken = (blocker.address() as AddressInfo).port;
  const cfg = tempFile(
    'sluice.json',
    JSON.stringify({
      workers: 1,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: taken },
      upstreams: { app: { hosts: [{ address: '127.0.0.1:9' }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    }),
  );
  const r = await runSluice(['--config', cfg]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`admin\\.port: cannot listen on 127\\.0\\.0\\.1:${taken}: the port is in use`));
});
