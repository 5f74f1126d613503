/**
 * The metrics pipeline without the network: the recorder's hdr-layout index against
 * hdr-histogram-js's own, recording + snapshot + merge across workers (with a retired
 * worker), and the Prometheus text rendered and parsed back by a small parser written here
 * (it also checks the format rules: HELP/TYPE before samples, families contiguous, no
 * duplicate series, cumulative buckets).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RouteConfig } from '../../src/shared/config';
import { allocHostState, HostStateTable } from '../../src/shared/host-state';
import type { ProducerStats } from '../../src/shared/kafka-messages';
import {
  LATENCY_BUCKETS_SECONDS,
  LATENCY_MAX_MICROS,
  latencyIndex,
  MetricsRecorder,
  MetricsTotals,
  newLatencyHistogram,
  renderPrometheus,
  WorkerMetricsAggregate,
  type MetricsView,
  type WorkerCounters,
} from '../../src/shared/metrics';

// ---- a small Prometheus text-format (0.0.4) parser ---------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Parsed {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    assert.ok(eq > i, `label name at ${i} in {${text}}`);
    const name = text.slice(i, eq);
    assert.match(name, /^[a-zA-Z_][a-zA-Z0-9_]*$/);
    assert.equal(text[eq + 1], '"', 'label value is quoted');
    let j = eq + 2;
    let v = '';
    while (text[j] !== '"') {
      assert.ok(j < text.length, 'unterminated label value');
      if (text[j] === '\\') {
        const n = text[j + 1];
        v += n === 'n' ? '\n' : (n as string);
        j += 2;
      } else v += text[j++];
    }
    assert.equal(out[name], undefined, `label ${name} twice`);
    out[name] = v;
    i = j + 1;
    if (text[i] === ',') i++;
  }
  return out;
}

function parseValue(v: string): number {
  if (v === 'NaN') return NaN;
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  assert.match(v, /^-?[0-9.]+(e[+-]?[0-9]+)?$/i, `a number: ${v}`);
  return Number(v);
}

/** Parses and checks the exposition rules the Prometheus server enforces. */
function parseProm(text: string): Parsed {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const closed = new Set<string>();
  let current = '';
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [name, ...rest] = line.slice(7).split(' ');
      help.set(name as string, rest.join(' '));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ') as [string, string];
      assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type), `type ${type}`);
      assert.ok(!types.has(name), `TYPE ${name} twice`);
      assert.ok(help.has(name), `HELP before TYPE for ${name}`);
      if (current !== '') closed.add(current);
      types.set(name, type);
      current = name;
      continue;
    }
    assert.notEqual(line.trim(), '', 'no blank lines');
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const name = m[1] as string;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `sample ${name} has a TYPE`);
    assert.equal(family, current, `family ${family} is contiguous`);
    assert.ok(!closed.has(family));
    if (types.get(family) === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
    const labels = m[3] === undefined ? {} : parseLabels(m[3]);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `series ${key} twice`);
    seen.add(key);
    samples.push({ name, labels, value: parseValue(m[4] as string) });
  }
  return { types, help, samples };
}

function value(p: Parsed, name: string, labels: Record<string, string> = {}): number {
  const found = p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `exactly one ${name} ${JSON.stringify(labels)}; got ${found.length}`);
  return (found[0] as Sample).value;
}

// ---- fixtures --------------------------------------------------------------------------

const ROUTES = [
  { name: 'api', match: {}, action: { type: 'proxy', upstream: 'app' } },
  { name: 'split', match: {}, action: { type: 'split', targets: [{ upstream: 'blue', weight: 1 }, { upstream: 'green', weight: 1 }] } },
  { name: 'hello', match: {}, action: { type: 'respond', status: 200, body: 'hi', contentType: 'text/plain' } },
] as unknown as RouteConfig[];

function view(totals: MetricsTotals, extra: Partial<MetricsView> = {}): MetricsView {
  return {
    totals,
    requestsPerSecond: 0,
    inflight: 0,
    pools: [],
    workers: { configured: 2, ready: 2, restarts: 0 },
    configVersion: 1,
    startTimeSeconds: 1_700_000_000,
    draining: false,
    upstreams: [],
    rateLimitTable: null,
    producer: null,
    ...extra,
  };
}

function counters(r: MetricsRecorder): WorkerCounters {
  return { recorder: r.snapshot(), events: { produced: 0, dropped: 0, sampledOut: 0 }, kafka: null };
}

// ---- tests -----------------------------------------------------------------------------

test('the recorder index is hdr-histogram-js’s counts index for every range of values', () => {
  const h = newLatencyHistogram();
  const values: number[] = [];
  for (let v = 0; v < 5000; v++) values.push(v);
  for (let v = 5000; v < LATENCY_MAX_MICROS; v = Math.floor(v * 1.0007) + 1) values.push(v, v - 1, v + 1);
  for (let b = 1; b < 31; b++) values.push(2 ** b - 1, 2 ** b, 2 ** b + 1);
  values.push(LATENCY_MAX_MICROS);
  let checked = 0;
  for (const v of values) {
    if (v < 0 || v > LATENCY_MAX_MICROS) continue;
    assert.equal(latencyIndex(v), h.countsArrayIndex(v), `value ${v}`);
    checked++;
  }
  assert.ok(checked > 20000);
  assert.ok(latencyIndex(LATENCY_MAX_MICROS) < h.countsArrayLength);
});

test('recorded requests come out exact per route, upstream, status class and flag', () => {
  const r = new MetricsRecorder();
  r.prepare(ROUTES);
  for (let i = 0; i < 30; i++) r.record('api', 'app', 200, [], 1000 + i, 10, 100);
  for (let i = 0; i < 7; i++) r.record('api', 'app', 503, ['UF', 'RY', 'RY'], 2500, 0, 50);
  for (let i = 0; i < 4; i++) r.record('api', 'app', 429, ['RL'], 40, 0, 0);
  r.record('split', 'blue', 302, [], 10, 0, 0);
  r.record('split', 'green', 404, ['XX'], 10, 0, 0);
  r.record('', '', 404, [], 5, 0, 0);
  r.record('api', 'app', 0, ['DC'], 90_000_000, 0, 0); // status unknown, latency past the top: clamped
  const t = new MetricsTotals();
  t.add(structuredClone(counters(r)));
  const p = parseProm(renderPrometheus(view(t)));

  const req = (route: string, upstream: string, cls: string): number => value(p, 'sluice_requests_total', { route, upstream, class: cls });
  assert.equal(req('api', 'app', '2xx'), 30);
  assert.equal(req('api', 'app', '5xx'), 7);
  assert.equal(req('api', 'app', '4xx'), 4);
  assert.equal(req('api', 'app', '1xx'), 0);
  assert.equal(req('api', 'app', 'other'), 1);
  assert.equal(req('split', 'blue', '3xx'), 1);
  assert.equal(req('split', 'green', '4xx'), 1);
  assert.equal(req('hello', '', '2xx'), 0, 'prepared routes are exported at zero');
  assert.equal(req('', '', '4xx'), 1);
  assert.equal(t.requests(), 30 + 7 + 4 + 1 + 1 + 1 + 1);

  assert.equal(value(p, 'sluice_response_flags_total', { route: 'api', flag: 'UF' }), 7);
  assert.equal(value(p, 'sluice_response_flags_total', { route: 'api', flag: 'RY' }), 14, 'per occurrence');
  assert.equal(value(p, 'sluice_response_flags_total', { route: 'split', flag: 'XX' }), 1, 'unknown flags are kept');
  assert.equal(value(p, 'sluice_rate_limited_requests_total', { route: 'api' }), 4);
  assert.equal(value(p, 'sluice_rate_limited_requests_total', { route: 'split' }), 0);
  assert.equal(value(p, 'sluice_request_bytes_total', { route: 'api' }), 300);
  assert.equal(value(p, 'sluice_response_bytes_total', { route: 'api' }), 30 * 100 + 7 * 50);

  // Latency: _count, _sum, cumulative buckets, quantiles equal to hdr recording the same values.
  const direct = newLatencyHistogram();
  let sum = 0;
  for (let i = 0; i < 30; i++) {
    direct.recordValue(1000 + i);
    sum += 1000 + i;
  }
  for (let i = 0; i < 7; i++) direct.recordValue(2500);
  for (let i = 0; i < 4; i++) direct.recordValue(40);
  direct.recordValue(LATENCY_MAX_MICROS);
  sum += 7 * 2500 + 4 * 40 + LATENCY_MAX_MICROS;
  assert.equal(value(p, 'sluice_request_duration_seconds_count', { route: 'api' }), 42);
  assert.ok(Math.abs(value(p, 'sluice_request_duration_seconds_sum', { route: 'api' }) - sum / 1e6) < 1e-9);
  assert.equal(value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le: '+Inf' }), 42);
  assert.equal(value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le: '0.0005' }), 4);
  assert.equal(value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le: '0.001' }), 5, '1000 µs is exact in hdr');
  assert.equal(value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le: '0.005' }), 41);
  assert.equal(value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le: '30' }), 41);
  let prev = 0;
  for (const le of [...LATENCY_BUCKETS_SECONDS.map(String), '+Inf']) {
    const n = value(p, 'sluice_request_duration_seconds_bucket', { route: 'api', le });
    assert.ok(n >= prev, `bucket ${le} is cumulative`);
    prev = n;
  }
  for (const q of [0.5, 0.95, 0.99]) {
    assert.equal(value(p, 'sluice_request_duration_quantile_seconds', { route: 'api', quantile: String(q) }), direct.getValueAtPercentile(q * 100) / 1e6);
  }
  assert.ok(Number.isNaN(value(p, 'sluice_request_duration_quantile_seconds', { route: 'hello', quantile: '0.5' })), 'NaN without requests');
  assert.equal(value(p, 'sluice_request_duration_seconds_count', { route: 'hello' }), 0);
  assert.equal(p.types.get('sluice_request_duration_seconds'), 'histogram');
  assert.equal(p.types.get('sluice_requests_total'), 'counter');
});

test('merging workers adds everything, and a retired worker’s counts never go away', () => {
  const a = new MetricsRecorder();
  const b = new MetricsRecorder();
  a.prepare(ROUTES);
  b.prepare(ROUTES);
  for (let i = 0; i < 10; i++) a.record('api', 'app', 200, [], 100 * (i + 1), 0, 0);
  for (let i = 0; i < 20; i++) b.record('api', 'app', 200, [], 10_000, 0, 0);
  b.record('api', 'app', 500, ['UR'], 5, 0, 0);
  const agg = new WorkerMetricsAggregate();
  agg.update(0, { ...counters(a), events: { produced: 5, dropped: 1, sampledOut: 2 }, kafka: { enqueued: 5, dropped: 0, delivered: 4, failed: 1, unknown: 0 } });
  agg.update(1, { ...counters(b), events: { produced: 3, dropped: 0, sampledOut: 0 }, kafka: { enqueued: 3, dropped: 2, delivered: 3, failed: 0, unknown: 0 } });
  const before = parseProm(renderPrometheus(view(agg.total())));
  assert.equal(value(before, 'sluice_requests_total', { route: 'api', upstream: 'app', class: '2xx' }), 30);
  assert.equal(value(before, 'sluice_request_duration_seconds_count', { route: 'api' }), 31);
  assert.equal(value(before, 'sluice_events_produced_total'), 8);
  assert.equal(value(before, 'sluice_events_dropped_total'), 1);
  assert.equal(value(before, 'sluice_events_sampled_out_total'), 2);
  assert.equal(value(before, 'sluice_kafka_link_records_delivered_total'), 7);
  assert.equal(value(before, 'sluice_kafka_link_records_refused_total'), 2);
  // Percentiles of the merge are the percentiles of all values together.
  const all = newLatencyHistogram();
  for (let i = 0; i < 10; i++) all.recordValue(100 * (i + 1));
  for (let i = 0; i < 20; i++) all.recordValue(10_000);
  all.recordValue(5);
  assert.equal(value(before, 'sluice_request_duration_quantile_seconds', { route: 'api', quantile: '0.5' }), all.getValueAtPercentile(50) / 1e6);
  assert.equal(value(before, 'sluice_request_duration_quantile_seconds', { route: 'api', quantile: '0.99' }), all.getValueAtPercentile(99) / 1e6);

  // Worker 0 crashes; its successor starts from zero and counts 2 more.
  agg.retire(0);
  const c = new MetricsRecorder();
  c.prepare(ROUTES);
  c.record('api', 'app', 200, [], 100, 0, 0);
  c.record('api', 'app', 200, [], 100, 0, 0);
  agg.update(0, { ...counters(c), events: { produced: 1, dropped: 0, sampledOut: 0 }, kafka: null });
  const after = parseProm(renderPrometheus(view(agg.total())));
  assert.equal(value(after, 'sluice_requests_total', { route: 'api', upstream: 'app', class: '2xx' }), 32);
  assert.equal(value(after, 'sluice_request_duration_seconds_count', { route: 'api' }), 33);
  assert.equal(value(after, 'sluice_events_produced_total'), 9);
  assert.equal(value(after, 'sluice_kafka_link_records_delivered_total'), 7);
  for (const s of before.samples) {
    if (before.types.get(s.name) !== 'counter') continue;
    assert.ok(value(after, s.name, s.labels) >= s.value, `${s.name} ${JSON.stringify(s.labels)} did not go down`);
  }
  // Retiring twice, or a worker that never reported, changes nothing.
  agg.retire(0);
  agg.retire(7);
  assert.equal(agg.total().requests(), 10 + 21 + 2);
});

test('label values are escaped; hosts, breakers, pools, rate-limit table, workers and Kafka render', () => {
  const r = new MetricsRecorder();
  r.record('we"ird\\na\nme', 'g', 200, [], 1, 0, 0);
  const t = new MetricsTotals();
  t.add(counters(r));
  const table = new HostStateTable(allocHostState(4));
  table.setHealthy(1, false);
  const closed = table.snapshot(0);
  const down = table.snapshot(1);
  const open = { ...closed, available: false, breaker: { ...closed.breaker, state: 'open' as const, opened: 3 } };
  const half = { ...closed, breaker: { ...closed.breaker, state: 'half-open' as const, opened: 4 } };
  const ejected = { ...closed, available: false, outlier: { ...closed.outlier, ejected: true, ejections: 2 } };
  const stats: ProducerStats = {
    at: 0, pid: 1, kafkaConnected: true, brokerUp: true, txnReady: false, connections: 2, received: 10, delivered: 8, failed: 2,
    queueFull: 1, queueMessages: 3, queueBytes: 300, deliveredPerSec: 4, txnCommitted: 0, txnAborted: 0, clientReplacements: 1,
    librdkafka: { at: 0, msgCount: 3, msgBytes: 300, msgMax: 100000, msgBytesMax: 1 << 30, txMessages: 8, txMessageBytes: 800, txRequests: 2, txErrors: 0, brokersUp: 1, brokers: 1, rttAvgMs: 2, queueLatencyAvgMs: 1, outbufLatencyAvgMs: 0.5, batchBytesAvg: 400, batchCountAvg: 4 },
  };
  const text = renderPrometheus(
    view(t, {
      upstreams: [
        { group: 'app', hosts: [{ address: '127.0.0.1:1', state: closed }, { address: '127.0.0.1:2', state: down }, { address: '127.0.0.1:3', state: open }] },
        { group: 'other', hosts: [{ address: '[::1]:4', state: half }, { address: '[::1]:5', state: ejected }, { address: 'x:6', state: null }] },
      ],
      pools: [
        { address: 'app|127.0.0.1:1', open: 2, idle: 1 },
        { address: 'app|127.0.0.1:1', open: 3, idle: 0 },
        { address: 'other|[::1]:4', open: 1, idle: 1 },
      ],
      rateLimitTable: { capacity: 1024, live: 3, inserts: 5, evictions: 0, reclaims: 2 },
      workers: { configured: 2, ready: 1, restarts: 4 },
      configVersion: 3,
      requestsPerSecond: 12.5,
      inflight: 2,
      draining: true,
      producer: { running: true, restarts: 1, stats },
    }),
  );
  const p = parseProm(text);
  assert.equal(value(p, 'sluice_requests_total', { route: 'we"ird\\na\nme', upstream: 'g', class: '2xx' }), 1);
  assert.equal(value(p, 'sluice_upstream_hosts', { upstream: 'app' }), 3);
  assert.equal(value(p, 'sluice_upstream_hosts_healthy', { upstream: 'app' }), 2);
  assert.equal(value(p, 'sluice_upstream_hosts_available', { upstream: 'app' }), 1);
  assert.equal(value(p, 'sluice_upstream_hosts_ejected', { upstream: 'other' }), 1);
  assert.equal(value(p, 'sluice_upstream_hosts_available', { upstream: 'other' }), 2, 'a host without a slot counts as available');
  assert.equal(value(p, 'sluice_breaker_state', { upstream: 'app', host: '127.0.0.1:1' }), 0);
  assert.equal(value(p, 'sluice_breaker_state', { upstream: 'app', host: '127.0.0.1:3' }), 1);
  assert.equal(value(p, 'sluice_breaker_state', { upstream: 'other', host: '[::1]:4' }), 2);
  assert.equal(value(p, 'sluice_breaker_opened_total', { upstream: 'other', host: '[::1]:4' }), 4);
  assert.equal(value(p, 'sluice_upstream_ejections_total', { upstream: 'other', host: '[::1]:5' }), 2);
  assert.equal(value(p, 'sluice_upstream_host_healthy', { upstream: 'app', host: '127.0.0.1:2' }), 0);
  assert.equal(value(p, 'sluice_pool_connections_open', { upstream: 'app', host: '127.0.0.1:1' }), 5, 'summed over workers');
  assert.equal(value(p, 'sluice_pool_connections_idle', { upstream: 'app', host: '127.0.0.1:1' }), 1);
  assert.equal(value(p, 'sluice_pool_connections_open', { upstream: 'other', host: '[::1]:4' }), 1);
  assert.equal(value(p, 'sluice_rate_limit_table_live'), 3);
  assert.equal(value(p, 'sluice_rate_limit_table_reclaims_total'), 2);
  assert.equal(value(p, 'sluice_workers_ready'), 1);
  assert.equal(value(p, 'sluice_worker_restarts_total'), 4);
  assert.equal(value(p, 'sluice_config_version'), 3);
  assert.equal(value(p, 'sluice_requests_per_second'), 12.5);
  assert.equal(value(p, 'sluice_requests_in_flight'), 2);
  assert.equal(value(p, 'sluice_draining'), 1);
  assert.equal(value(p, 'sluice_kafka_producer_up'), 1);
  assert.equal(value(p, 'sluice_kafka_queue_messages'), 3);
  assert.equal(value(p, 'sluice_kafka_records_delivered_total'), 8);
  assert.equal(value(p, 'sluice_kafka_records_failed_total'), 2);
  assert.equal(value(p, 'sluice_kafka_client_replacements_total'), 1);
  assert.equal(value(p, 'sluice_librdkafka_rtt_avg_seconds'), 0.002);
  assert.equal(value(p, 'sluice_librdkafka_tx_messages_total'), 8);
  // Without Kafka, no Kafka families at all (and no rate-limit table without one).
  const bare = parseProm(renderPrometheus(view(new MetricsTotals())));
  assert.ok(![...bare.types.keys()].some((n) => n.includes('kafka') || n.includes('rate_limit_table')));
  assert.equal(value(bare, 'sluice_events_produced_total'), 0);
});

test('snapshots survive structured clone unchanged and cost nothing for idle routes', () => {
  const r = new MetricsRecorder();
  r.prepare(ROUTES);
  r.record('api', 'app', 200, ['RR'], 123.6, 1, 2);
  const snap = r.snapshot();
  assert.deepEqual(structuredClone(snap), snap);
  const api = snap.routes.find((x) => x.route === 'api');
  assert.deepEqual(api?.latency, { index: [latencyIndex(124)], count: [1] });
  assert.deepEqual(snap.routes.find((x) => x.route === 'hello')?.latency, { index: [], count: [] });
});
