/**
 * Metrics: the per-worker recorder (hot path), the snapshots workers send to the primary,
 * the primary's merge across workers, and the Prometheus text exposition (format 0.0.4).
 * docs/observability.md lists every metric.
 *
 * The recorder runs once per request (MetricsPhase.logging) and must never allocate per
 * request, block, or build strings: series are looked up in maps keyed by the route and
 * group names the request already carries, counters are typed-array slots, and latency goes
 * into a counts array laid out exactly like an hdr-histogram-js histogram (1 µs .. 60 s,
 * 3 significant digits), so the primary merges and reads percentiles with hdr-histogram-js
 * itself. hdr-histogram-js's pure-JS `recordValue` computes the index with Math.log2 and
 * Math.pow; the same index with Math.clz32 is much cheaper (bench/results/micro-metrics.md).
 * `test/unit/metrics.test.ts` checks the two index computations agree.
 *
 * Everything here is plain data for structured clone (worker → primary): no prototypes,
 * no typed arrays in snapshots. Never import from src/main or src/workers.
 */
import { build, type JsHistogram } from 'hdr-histogram-js';
import type { RouteConfig } from './config';
import type { HostSnapshot } from './host-state';
import type { ProducerStats } from './kafka-messages';

// ---- latency layout -------------------------------------------------------------------

/** Latencies are recorded in microseconds; longer ones are clamped to this (60 s). */
export const LATENCY_MAX_MICROS = 60_000_000;
const LATENCY_DIGITS = 3;

/** A fresh hdr-histogram-js histogram with the recorder's parameters (pure JS, no WebAssembly). */
export function newLatencyHistogram(): JsHistogram {
  return build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: LATENCY_MAX_MICROS,
    numberOfSignificantValueDigits: LATENCY_DIGITS,
    autoResize: false,
    bitBucketSize: 64,
    useWebAssembly: false,
  }) as JsHistogram;
}

/** The counts-array layout, read from hdr-histogram-js once (so it cannot drift from it). */
const LAYOUT = (() => {
  const h = newLatencyHistogram();
  return {
    length: h.countsArrayLength,
    subBucketHalfCountMagnitude: h.subBucketHalfCountMagnitude,
    subBucketHalfCount: h.subBucketHalfCount,
    subBucketMask: h.subBucketMask,
    unitMagnitude: h.unitMagnitude,
  };
})();

/**
 * hdr-histogram's counts index of `v` (an integer 0..LATENCY_MAX_MICROS): bucket = how many
 * powers of two `v` is above the first bucket's range, sub-bucket = `v` shifted into it.
 * Valid because LATENCY_MAX_MICROS < 2^31 (clz32 and >>> work on 32 bits).
 */
export function latencyIndex(v: number): number {
  const bucket = 31 - Math.clz32(v | LAYOUT.subBucketMask) - LAYOUT.subBucketHalfCountMagnitude - LAYOUT.unitMagnitude;
  const sub = v >>> (bucket + LAYOUT.unitMagnitude);
  return ((bucket + 1) << LAYOUT.subBucketHalfCountMagnitude) + sub - LAYOUT.subBucketHalfCount;
}

/** Non-zero entries of a latency counts array: parallel lists of index and count. */
export interface LatencyCounts {
  readonly index: number[];
  readonly count: number[];
}

// ---- the per-worker recorder (hot path) ----------------------------------------------

/** Status classes, in counter order; 'other' = no valid status (should not happen). */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
const OTHER_CLASS = 5;

/** The response flags of docs/errors.md, counted in fixed slots; others go to a map. */
export const KNOWN_FLAGS = ['UF', 'UT', 'RT', 'UC', 'UR', 'UP', 'RR', 'RY', 'RB', 'RL', 'BO', 'CO', 'UO', 'EJ', 'PN', 'BL', 'DC'] as const;
const FLAG_INDEX: ReadonlyMap<string, number> = new Map(KNOWN_FLAGS.map((f, i) => [f, i]));

/** One route's counters in one worker. */
class RouteSeries {
  /** Requests per upstream group ('' = none chosen) and status class. */
  readonly upstreams = new Map<string, Float64Array>();
  readonly flags = new Float64Array(KNOWN_FLAGS.length);
  otherFlags: Map<string, number> | null = null;
  /** hdr-layout latency counts; allocated at the route's first request (about 136 KiB). */
  latency: Float64Array | null = null;
  sumMicros = 0;
  bytesIn = 0;
  bytesOut = 0;

  classes(upstream: string): Float64Array {
    let c = this.upstreams.get(upstream);
    if (c === undefined) {
      c = new Float64Array(STATUS_CLASSES.length);
      this.upstreams.set(upstream, c);
    }
    return c;
  }
}

/**
 * A worker's request metrics for its whole life (kept across reloads, so counters only
 * grow). `prepare` creates the series of a config's routes up front so that they are
 * exported at zero and the hot path finds them.
 */
export class MetricsRecorder {
  private readonly routes = new Map<string, RouteSeries>();

  prepare(routes: readonly RouteConfig[]): void {
    this.series('');
    for (const r of routes) {
      const s = this.series(r.name);
      const a = r.action;
      if (a.type === 'proxy') s.classes(a.upstream);
      else if (a.type === 'split') for (const t of a.targets) s.classes(t.upstream);
      else s.classes('');
    }
  }

  private series(route: string): RouteSeries {
    let s = this.routes.get(route);
    if (s === undefined) {
      s = new RouteSeries();
      this.routes.set(route, s);
    }
    return s;
  }

  /** One finished request. `micros` is its duration; flags are counted per occurrence. */
  record(route: string, upstream: string, status: number, flags: readonly string[], micros: number, bytesIn: number, bytesOut: number): void {
    const s = this.routes.get(route) ?? this.series(route);
    const classes = s.upstreams.get(upstream) ?? s.classes(upstream);
    const c = status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : OTHER_CLASS;
    classes[c] = (classes[c] as number) + 1;
    for (let i = 0; i < flags.length; i++) {
      const f = flags[i] as string;
      const k = FLAG_INDEX.get(f);
      if (k !== undefined) s.flags[k] = (s.flags[k] as number) + 1;
      else {
        const m = (s.otherFlags ??= new Map());
        m.set(f, (m.get(f) ?? 0) + 1);
      }
    }
    let v = micros < 0 ? 0 : Math.round(micros);
    if (v > LATENCY_MAX_MICROS) v = LATENCY_MAX_MICROS;
    const counts = (s.latency ??= new Float64Array(LAYOUT.length));
    const idx = latencyIndex(v);
    counts[idx] = (counts[idx] as number) + 1;
    s.sumMicros += v;
    s.bytesIn += bytesIn;
    s.bytesOut += bytesOut;
  }

  /** Cumulative counters as plain data (once per scrape, never on the request path). */
  snapshot(): RecorderSnapshot {
    const routes: RouteMetrics[] = [];
    for (const [route, s] of this.routes) {
      const upstreams = [...s.upstreams].map(([upstream, c]) => ({ upstream, classes: Array.from(c) }));
      const flags: Record<string, number> = {};
      KNOWN_FLAGS.forEach((f, i) => {
        const n = s.flags[i] as number;
        if (n > 0) flags[f] = n;
      });
      if (s.otherFlags !== null) for (const [f, n] of s.otherFlags) flags[f] = n;
      const latency: LatencyCounts = { index: [], count: [] };
      const counts = s.latency;
      if (counts !== null) {
        for (let i = 0; i < counts.length; i++) {
          const n = counts[i] as number;
          if (n > 0) {
            latency.index.push(i);
            latency.count.push(n);
          }
        }
      }
      routes.push({ route, upstreams, flags, latency, sumMicros: s.sumMicros, bytesIn: s.bytesIn, bytesOut: s.bytesOut });
    }
    return { routes };
  }
}

// ---- snapshots (worker → primary) ----------------------------------------------------

export interface RouteMetrics {
  readonly route: string;
  /** `classes` in STATUS_CLASSES order. */
  readonly upstreams: readonly { readonly upstream: string; readonly classes: readonly number[] }[];
  /** Non-zero flag counts. */
  readonly flags: Readonly<Record<string, number>>;
  readonly latency: LatencyCounts;
  readonly sumMicros: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export interface RecorderSnapshot {
  readonly routes: readonly RouteMetrics[];
}

/** A worker's request-event counters (src/workers/http/phases/events.ts). */
export interface EventTotals {
  produced: number;
  dropped: number;
  sampledOut: number;
}

/** A worker's Kafka link counters (src/workers/http/kafka/link.ts `status()`). */
export interface KafkaLinkTotals {
  enqueued: number;
  dropped: number;
  delivered: number;
  failed: number;
  unknown: number;
}

/** Everything cumulative one worker reports. */
export interface WorkerCounters {
  readonly recorder: RecorderSnapshot;
  readonly events: Readonly<EventTotals>;
  readonly kafka: Readonly<KafkaLinkTotals> | null;
}

// ---- merging (primary) ---------------------------------------------------------------

export interface RouteTotals {
  readonly upstreams: Map<string, number[]>;
  readonly flags: Map<string, number>;
  /** Latency counts by hdr index. */
  readonly latency: Map<number, number>;
  sumMicros: number;
  bytesIn: number;
  bytesOut: number;
}

/** Counters summed over workers. */
export class MetricsTotals {
  readonly routes = new Map<string, RouteTotals>();
  readonly events: EventTotals = { produced: 0, dropped: 0, sampledOut: 0 };
  kafka: KafkaLinkTotals | null = null;

  add(w: WorkerCounters): void {
    for (const r of w.recorder.routes) {
      const t = this.route(r.route);
      for (const u of r.upstreams) {
        const c = t.upstreams.get(u.upstream) ?? new Array<number>(STATUS_CLASSES.length).fill(0);
        u.classes.forEach((n, i) => (c[i] = (c[i] ?? 0) + n));
        t.upstreams.set(u.upstream, c);
      }
      for (const [f, n] of Object.entries(r.flags)) t.flags.set(f, (t.flags.get(f) ?? 0) + n);
      r.latency.index.forEach((idx, i) => t.latency.set(idx, (t.latency.get(idx) ?? 0) + (r.latency.count[i] ?? 0)));
      t.sumMicros += r.sumMicros;
      t.bytesIn += r.bytesIn;
      t.bytesOut += r.bytesOut;
    }
    this.events.produced += w.events.produced;
    this.events.dropped += w.events.dropped;
    this.events.sampledOut += w.events.sampledOut;
    if (w.kafka !== null) {
      const k = (this.kafka ??= { enqueued: 0, dropped: 0, delivered: 0, failed: 0, unknown: 0 });
      k.enqueued += w.kafka.enqueued;
      k.dropped += w.kafka.dropped;
      k.delivered += w.kafka.delivered;
      k.failed += w.kafka.failed;
      k.unknown += w.kafka.unknown;
    }
  }

  /** Adds another total (the retired workers' part). */
  addTotals(o: MetricsTotals): void {
    for (const [name, r] of o.routes) {
      const t = this.route(name);
      for (const [u, c] of r.upstreams) {
        const mine = t.upstreams.get(u) ?? new Array<number>(STATUS_CLASSES.length).fill(0);
        c.forEach((n, i) => (mine[i] = (mine[i] ?? 0) + n));
        t.upstreams.set(u, mine);
      }
      for (const [f, n] of r.flags) t.flags.set(f, (t.flags.get(f) ?? 0) + n);
      for (const [idx, n] of r.latency) t.latency.set(idx, (t.latency.get(idx) ?? 0) + n);
      t.sumMicros += r.sumMicros;
      t.bytesIn += r.bytesIn;
      t.bytesOut += r.bytesOut;
    }
    this.events.produced += o.events.produced;
    this.events.dropped += o.events.dropped;
    this.events.sampledOut += o.events.sampledOut;
    if (o.kafka !== null) this.add({ recorder: { routes: [] }, events: { produced: 0, dropped: 0, sampledOut: 0 }, kafka: o.kafka });
  }

  /** All requests counted (every route, upstream and class). */
  requests(): number {
    let n = 0;
    for (const r of this.routes.values()) for (const c of r.upstreams.values()) for (const x of c) n += x;
    return n;
  }

  private route(name: string): RouteTotals {
    let t = this.routes.get(name);
    if (t === undefined) {
      t = { upstreams: new Map(), flags: new Map(), latency: new Map(), sumMicros: 0, bytesIn: 0, bytesOut: 0 };
      this.routes.set(name, t);
    }
    return t;
  }
}

/**
 * The primary's merge. Counters must never go down, or Prometheus's rate() would read a
 * worker's respawn as a reset of the whole sum: a worker that dies has its last reported
 * counters moved to `retired` (what it counted after that report is lost), and its
 * successor starts from zero beside them.
 */
export class WorkerMetricsAggregate {
  private readonly retired = new MetricsTotals();
  private readonly latest = new Map<number, WorkerCounters>();

  update(workerId: number, c: WorkerCounters): void {
    this.latest.set(workerId, c);
  }

  /** Worker `workerId` is gone (crashed): keep what it reported last. */
  retire(workerId: number): void {
    const last = this.latest.get(workerId);
    if (last === undefined) return;
    this.retired.add(last);
    this.latest.delete(workerId);
  }

  total(): MetricsTotals {
    const t = new MetricsTotals();
    t.addTotals(this.retired);
    for (const c of this.latest.values()) t.add(c);
    return t;
  }
}

/** An hdr-histogram-js histogram of merged latency counts (µs). */
export function latencyHistogram(counts: ReadonlyMap<number, number>): JsHistogram {
  const h = newLatencyHistogram();
  for (const [idx, n] of counts) if (n > 0) h.recordValueWithCount(h.valueFromIndex(idx), n);
  return h;
}

// ---- Prometheus text exposition -----------------------------------------------------------

/** Histogram bucket bounds in seconds (sub-millisecond ones: a proxy's own latency is small). */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;
/** Quantiles exported as gauges from the merged hdr histogram. */
export const LATENCY_QUANTILES = [0.5, 0.95, 0.99] as const;

export interface UpstreamHostView {
  readonly address: string;
  /** null when the host has no shared-state slot. */
  readonly state: HostSnapshot | null;
}

export interface MetricsView {
  readonly totals: MetricsTotals;
  /** Requests per second since the previous scrape (or since start). */
  readonly requestsPerSecond: number;
  readonly inflight: number;
  /** Per pool key (`group|address`), summed over workers. */
  readonly pools: readonly { readonly address: string; readonly open: number; readonly idle: number }[];
  readonly workers: { readonly configured: number; readonly ready: number; readonly restarts: number };
  readonly configVersion: number;
  readonly startTimeSeconds: number;
  readonly draining: boolean;
  readonly upstreams: readonly { readonly group: string; readonly hosts: readonly UpstreamHostView[] }[];
  readonly rateLimitTable: { readonly capacity: number; readonly live: number; readonly inserts: number; readonly evictions: number; readonly reclaims: number } | null;
  /** null when Kafka is not used. */
  readonly producer: { readonly running: boolean; readonly restarts: number; readonly stats: ProducerStats | null } | null;
}

type Labels = readonly (readonly [string, string])[];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

class Exposition {
  private out = '';

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.out += `# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${type}\n`;
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    let l = '';
    if (labels.length > 0) l = `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
    this.out += `${name}${l} ${formatValue(value)}\n`;
    return this;
  }

  text(): string {
    return this.out;
  }
}

const BREAKER_VALUE: Readonly<Record<HostSnapshot['breaker']['state'], number>> = { closed: 0, open: 1, 'half-open': 2, switching: 1 };

function splitPoolKey(key: string): [string, string] {
  const bar = key.indexOf('|');
  if (bar === -1) return ['', key];
  const rest = key.slice(bar + 1);
  const next = rest.indexOf('|');
  return [key.slice(0, bar), next === -1 ? rest : rest.slice(0, next)];
}

/** Renders `v` as Prometheus text exposition format 0.0.4. */
export function renderPrometheus(v: MetricsView): string {
  const e = new Exposition();
  const routes = [...v.totals.routes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  e.family('sluice_requests_total', 'counter', 'Requests finished, by route, upstream group and status class (route "" = no route matched).');
  for (const [route, t] of routes) {
    for (const [upstream, c] of t.upstreams) {
      STATUS_CLASSES.forEach((cls, i) => {
        const n = c[i] ?? 0;
        if (cls === 'other' && n === 0) return;
        e.sample('sluice_requests_total', [['route', route], ['upstream', upstream], ['class', cls]], n);
      });
    }
  }
  e.family('sluice_requests_per_second', 'gauge', 'Requests finished per second since the previous scrape of /metrics (or since start); prefer rate(sluice_requests_total[...]).');
  e.sample('sluice_requests_per_second', [], v.requestsPerSecond);
  e.family('sluice_requests_in_flight', 'gauge', 'Requests being served by the workers now.');
  e.sample('sluice_requests_in_flight', [], v.inflight);

  e.family('sluice_response_flags_total', 'counter', 'Response flags (docs/errors.md) by route, counted per occurrence.');
  for (const [route, t] of routes) {
    for (const [flag, n] of [...t.flags].sort(([a], [b]) => (a < b ? -1 : 1))) e.sample('sluice_response_flags_total', [['route', route], ['flag', flag]], n);
  }
  e.family('sluice_rate_limited_requests_total', 'counter', 'Requests rejected by the rate limiter (429, flag RL), by route.');
  for (const [route, t] of routes) e.sample('sluice_rate_limited_requests_total', [['route', route]], t.flags.get('RL') ?? 0);

  e.family('sluice_request_bytes_total', 'counter', 'Request body bytes received from clients, by route.');
  for (const [route, t] of routes) e.sample('sluice_request_bytes_total', [['route', route]], t.bytesIn);
  e.family('sluice_response_bytes_total', 'counter', 'Response body bytes sent to clients, by route.');
  for (const [route, t] of routes) e.sample('sluice_response_bytes_total', [['route', route]], t.bytesOut);

  e.family('sluice_request_duration_seconds', 'histogram', 'Request duration from arrival to the end of the response, by route (merged hdr histograms, 3 significant digits).');
  const quantiles: [string, number[]][] = [];
  for (const [route, t] of routes) {
    const h = latencyHistogram(t.latency);
    const bounds = LATENCY_BUCKETS_SECONDS.map((s) => s * 1e6);
    const cumulative = new Array<number>(bounds.length).fill(0);
    for (const [idx, n] of t.latency) {
      // The top of the index's value range: a request is never put in a faster bucket than it was.
      const top = h.highestEquivalentValue(h.valueFromIndex(idx));
      for (let b = 0; b < bounds.length; b++) if (top <= (bounds[b] as number)) cumulative[b] = (cumulative[b] as number) + n;
    }
    LATENCY_BUCKETS_SECONDS.forEach((le, b) => e.sample('sluice_request_duration_seconds_bucket', [['route', route], ['le', String(le)]], cumulative[b] as number));
    e.sample('sluice_request_duration_seconds_bucket', [['route', route], ['le', '+Inf']], h.totalCount);
    e.sample('sluice_request_duration_seconds_sum', [['route', route]], t.sumMicros / 1e6);
    e.sample('sluice_request_duration_seconds_count', [['route', route]], h.totalCount);
    quantiles.push([route, LATENCY_QUANTILES.map((q) => (h.totalCount === 0 ? NaN : h.getValueAtPercentile(q * 100) / 1e6))]);
  }
  e.family('sluice_request_duration_quantile_seconds', 'gauge', 'Request duration percentiles (p50, p95, p99) since start, from the merged hdr histogram, by route; NaN before the first request.');
  for (const [route, qs] of quantiles) {
    LATENCY_QUANTILES.forEach((q, i) => e.sample('sluice_request_duration_quantile_seconds', [['route', route], ['quantile', String(q)]], qs[i] as number));
  }

  e.family('sluice_upstream_hosts', 'gauge', 'Hosts configured in the upstream group.');
  for (const g of v.upstreams) e.sample('sluice_upstream_hosts', [['upstream', g.group]], g.hosts.length);
  e.family('sluice_upstream_hosts_healthy', 'gauge', 'Hosts the active health check considers up (all, without health checks).');
  for (const g of v.upstreams) e.sample('sluice_upstream_hosts_healthy', [['upstream', g.group]], g.hosts.filter((h) => h.state?.healthy ?? true).length);
  e.family('sluice_upstream_hosts_available', 'gauge', 'Hosts that may take requests: healthy, not ejected, breaker not open.');
  for (const g of v.upstreams) e.sample('sluice_upstream_hosts_available', [['upstream', g.group]], g.hosts.filter((h) => h.state?.available ?? true).length);
  e.family('sluice_upstream_hosts_ejected', 'gauge', 'Hosts ejected by outlier detection now.');
  for (const g of v.upstreams) e.sample('sluice_upstream_hosts_ejected', [['upstream', g.group]], g.hosts.filter((h) => h.state?.outlier.ejected ?? false).length);

  const perHost = (name: string, type: 'counter' | 'gauge', help: string, value: (s: HostSnapshot) => number): void => {
    e.family(name, type, help);
    for (const g of v.upstreams) for (const h of g.hosts) if (h.state !== null) e.sample(name, [['upstream', g.group], ['host', h.address]], value(h.state));
  };
  perHost('sluice_upstream_host_healthy', 'gauge', '1 when the host passes its health check (or has none).', (s) => (s.healthy ? 1 : 0));
  perHost('sluice_upstream_host_available', 'gauge', '1 when the host may take requests now.', (s) => (s.available ? 1 : 0));
  perHost('sluice_upstream_host_ejected', 'gauge', '1 while outlier detection ejects the host.', (s) => (s.outlier.ejected ? 1 : 0));
  perHost('sluice_upstream_ejections_total', 'counter', 'Outlier-detection ejections of the host.', (s) => s.outlier.ejections);
  perHost('sluice_breaker_state', 'gauge', 'Circuit breaker state: 0 closed, 1 open, 2 half-open.', (s) => BREAKER_VALUE[s.breaker.state]);
  perHost('sluice_breaker_opened_total', 'counter', 'Times the host breaker opened.', (s) => s.breaker.opened);
  perHost('sluice_upstream_overflow_total', 'counter', 'Requests refused because the host concurrency limits were reached (flag UO).', (s) => s.concurrency.activeOverflow + s.concurrency.pendingOverflow);
  perHost('sluice_upstream_host_active_requests', 'gauge', 'Requests in flight to the host across workers (counted when the group keeps shared state).', (s) => s.concurrency.active);

  const pools = new Map<string, { open: number; idle: number }>();
  for (const p of v.pools) {
    const t = pools.get(p.address) ?? { open: 0, idle: 0 };
    t.open += p.open;
    t.idle += p.idle;
    pools.set(p.address, t);
  }
  e.family('sluice_pool_connections_open', 'gauge', 'Upstream connections open (busy and idle), summed over workers.');
  for (const [key, p] of pools) {
    const [group, host] = splitPoolKey(key);
    e.sample('sluice_pool_connections_open', [['upstream', group], ['host', host]], p.open);
  }
  e.family('sluice_pool_connections_idle', 'gauge', 'Idle keep-alive upstream connections, summed over workers.');
  for (const [key, p] of pools) {
    const [group, host] = splitPoolKey(key);
    e.sample('sluice_pool_connections_idle', [['upstream', group], ['host', host]], p.idle);
  }

  const rl = v.rateLimitTable;
  if (rl !== null) {
    e.family('sluice_rate_limit_table_capacity', 'gauge', 'Slots in the shared rate-limit table (rateLimit.tableSize).').sample('sluice_rate_limit_table_capacity', [], rl.capacity);
    e.family('sluice_rate_limit_table_live', 'gauge', 'Rate-limit buckets in use.').sample('sluice_rate_limit_table_live', [], rl.live);
    e.family('sluice_rate_limit_table_inserts_total', 'counter', 'Rate-limit buckets created.').sample('sluice_rate_limit_table_inserts_total', [], rl.inserts);
    e.family('sluice_rate_limit_table_evictions_total', 'counter', 'Rate-limit buckets evicted because the table was full.').sample('sluice_rate_limit_table_evictions_total', [], rl.evictions);
    e.family('sluice_rate_limit_table_reclaims_total', 'counter', 'Idle rate-limit buckets reclaimed by the sweep.').sample('sluice_rate_limit_table_reclaims_total', [], rl.reclaims);
  }

  e.family('sluice_workers', 'gauge', 'HTTP worker threads configured.').sample('sluice_workers', [], v.workers.configured);
  e.family('sluice_workers_ready', 'gauge', 'HTTP worker threads READY.').sample('sluice_workers_ready', [], v.workers.ready);
  e.family('sluice_worker_restarts_total', 'counter', 'Worker threads respawned after a crash.').sample('sluice_worker_restarts_total', [], v.workers.restarts);
  e.family('sluice_draining', 'gauge', '1 while the instance drains (SIGTERM).').sample('sluice_draining', [], v.draining ? 1 : 0);
  e.family('sluice_config_version', 'gauge', 'Configuration version: 1 at start, +1 per accepted reload.').sample('sluice_config_version', [], v.configVersion);
  e.family('sluice_start_time_seconds', 'gauge', 'Start time of the instance, seconds since the Unix epoch.').sample('sluice_start_time_seconds', [], v.startTimeSeconds);

  const ev = v.totals.events;
  e.family('sluice_events_produced_total', 'counter', 'Request events handed to the Kafka link.').sample('sluice_events_produced_total', [], ev.produced);
  e.family('sluice_events_dropped_total', 'counter', 'Request events dropped because the link buffer was full.').sample('sluice_events_dropped_total', [], ev.dropped);
  e.family('sluice_events_sampled_out_total', 'counter', 'Request events skipped by sampling.').sample('sluice_events_sampled_out_total', [], ev.sampledOut);

  const k = v.totals.kafka;
  if (k !== null) {
    e.family('sluice_kafka_link_records_enqueued_total', 'counter', 'Records the workers handed to the producer process.').sample('sluice_kafka_link_records_enqueued_total', [], k.enqueued);
    e.family('sluice_kafka_link_records_refused_total', 'counter', 'Records the workers refused (send buffer full, too large, closed).').sample('sluice_kafka_link_records_refused_total', [], k.dropped);
    e.family('sluice_kafka_link_records_delivered_total', 'counter', 'Records reported delivered back to the workers.').sample('sluice_kafka_link_records_delivered_total', [], k.delivered);
    e.family('sluice_kafka_link_records_failed_total', 'counter', 'Records reported failed back to the workers.').sample('sluice_kafka_link_records_failed_total', [], k.failed);
    e.family('sluice_kafka_link_records_unknown_total', 'counter', 'Records whose outcome was lost with a dropped link (maybe delivered).').sample('sluice_kafka_link_records_unknown_total', [], k.unknown);
  }

  const p = v.producer;
  if (p !== null) {
    e.family('sluice_kafka_producer_up', 'gauge', '1 while the Kafka producer process listens.').sample('sluice_kafka_producer_up', [], p.running ? 1 : 0);
    e.family('sluice_kafka_producer_restarts_total', 'counter', 'Kafka producer process respawns.').sample('sluice_kafka_producer_restarts_total', [], p.restarts);
    const s = p.stats;
    if (s !== null) {
      const g = (name: string, help: string, value: number): void => void e.family(name, 'gauge', help).sample(name, [], value);
      const c = (name: string, help: string, value: number): void => void e.family(name, 'counter', help).sample(name, [], value);
      g('sluice_kafka_connected', '1 when the Kafka client is connected.', s.kafkaConnected ? 1 : 0);
      g('sluice_kafka_broker_up', '1 when a broker is up.', s.brokerUp ? 1 : 0);
      g('sluice_kafka_producer_links', 'Worker links connected to the producer.', s.connections);
      g('sluice_kafka_queue_messages', 'Records taken by the producer and not yet reported.', s.queueMessages);
      g('sluice_kafka_queue_bytes', 'Key+value+header bytes of the queued records.', s.queueBytes);
      c('sluice_kafka_records_received_total', 'Records the producer read from the worker links (since the producer started).', s.received);
      c('sluice_kafka_records_delivered_total', 'Records acknowledged by Kafka (since the producer started).', s.delivered);
      c('sluice_kafka_records_failed_total', 'Records that failed, queue-full included (since the producer started).', s.failed);
      c('sluice_kafka_records_queue_full_total', 'Records refused because the producer queue was full.', s.queueFull);
      g('sluice_kafka_delivered_per_second', 'Delivery rate the producer measured.', s.deliveredPerSec);
      c('sluice_kafka_transactions_committed_total', 'Kafka transactions committed.', s.txnCommitted);
      c('sluice_kafka_transactions_aborted_total', 'Kafka transactions aborted.', s.txnAborted);
      c('sluice_kafka_client_replacements_total', 'Main Kafka clients replaced because they were wedged or hit a fatal error.', s.clientReplacements);
      const r = s.librdkafka;
      if (r !== null) {
        g('sluice_librdkafka_msg_count', 'librdkafka msg_cnt: records in the producer queues.', r.msgCount);
        g('sluice_librdkafka_msg_bytes', 'librdkafka msg_size: bytes in the producer queues.', r.msgBytes);
        g('sluice_librdkafka_msg_max', 'librdkafka msg_max: queue limit in records.', r.msgMax);
        g('sluice_librdkafka_msg_bytes_max', 'librdkafka msg_size_max: queue limit in bytes.', r.msgBytesMax);
        c('sluice_librdkafka_tx_messages_total', 'librdkafka txmsgs: records sent to brokers.', r.txMessages);
        c('sluice_librdkafka_tx_message_bytes_total', 'librdkafka txmsg_bytes: record bytes sent to brokers.', r.txMessageBytes);
        c('sluice_librdkafka_tx_requests_total', 'librdkafka tx: requests sent to brokers.', r.txRequests);
        c('sluice_librdkafka_tx_errors_total', 'librdkafka txerrs: request errors.', r.txErrors);
        g('sluice_librdkafka_brokers_up', 'Brokers in state UP.', r.brokersUp);
        g('sluice_librdkafka_brokers', 'Brokers known.', r.brokers);
        g('sluice_librdkafka_rtt_avg_seconds', 'Broker round-trip time, window average over brokers.', r.rttAvgMs / 1000);
        g('sluice_librdkafka_queue_latency_avg_seconds', 'Time records wait in librdkafka queues, window average.', r.queueLatencyAvgMs / 1000);
        g('sluice_librdkafka_outbuf_latency_avg_seconds', 'Time requests wait in broker output buffers, window average.', r.outbufLatencyAvgMs / 1000);
        g('sluice_librdkafka_batch_bytes_avg', 'Average batch size in bytes.', r.batchBytesAvg);
        g('sluice_librdkafka_batch_records_avg', 'Average batch size in records.', r.batchCountAvg);
      }
    }
  }
  return e.text();
}
