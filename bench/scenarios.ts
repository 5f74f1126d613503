/**
 * Bench scenarios: what the load generator sends and what each contender must be configured
 * for. One table; the runner, the contenders' config builders and the report all read it.
 * Adding a scenario here makes it selectable with `--scenario NAME`.
 */

export const SCENARIO_NAMES = [
  'small-get',
  '16k',
  '1m',
  'post-64k',
  'conn-1000',
  'consistent-hash',
  'rate-limit',
  'https',
  'kafka-events',
  'kafka-produce-async',
  'kafka-produce-sync',
] as const;

export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export interface Scenario {
  readonly name: ScenarioName;
  /** One line for the report's section heading. */
  readonly title: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Request body size in bytes (0: no body). */
  readonly bodyBytes: number;
  readonly bodyContentType?: string;
  readonly connections: number;
  /**
   * Vary this request header per request over `keys` distinct values (`k0` … `k<keys-1>`),
   * for features keyed by a header (consistent hashing, rate limiting).
   */
  readonly varyHeader?: { readonly name: string; readonly keys: number };
  /** How many upstream hosts (ports of the one upstream server) the proxy balances over. */
  readonly upstreamHosts: number;
  /** Clients speak TLS to the proxy (the proxy terminates it; the upstream stays plain HTTP). */
  readonly tls?: boolean;
  /**
   * Sluice features this scenario turns on, whose cost the `sluice-1w-off` contender (the
   * same config without them) measures, and the budget for it (CPU per request growth).
   */
  readonly features?: { readonly what: string; readonly budget: number };
  /** A later feature: runs only when the Sluice contender's `supports()` says so. */
  readonly later: boolean;
  /** What the baselines do here, when it differs from "the same thing as Sluice". */
  readonly note?: string;
}

/** The header the keyed scenarios vary; the baselines hash / limit on the same header. */
export const KEY_HEADER = 'x-user-id';

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  'small-get': {
    name: 'small-get',
    title: 'GET / (100-byte body), keep-alive, 64 connections',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 64,
    upstreamHosts: 1,
    features: { what: 'metrics recording (the admin listener on; off: admin.enabled false)', budget: 0.03 },
    later: false,
  },
  '16k': {
    name: '16k',
    title: 'GET /16k (16 KiB body), keep-alive, 64 connections',
    method: 'GET',
    path: '/16k',
    bodyBytes: 0,
    connections: 64,
    upstreamHosts: 1,
    later: false,
  },
  '1m': {
    name: '1m',
    title: 'GET /1m (1 MiB body), keep-alive, 64 connections',
    method: 'GET',
    path: '/1m',
    bodyBytes: 0,
    connections: 64,
    upstreamHosts: 1,
    later: false,
  },
  'post-64k': {
    name: 'post-64k',
    title: 'POST / with a 64 KiB body (small answer), keep-alive, 64 connections',
    method: 'POST',
    path: '/',
    bodyBytes: 64 * 1024,
    bodyContentType: 'application/octet-stream',
    connections: 64,
    upstreamHosts: 1,
    later: false,
  },
  'conn-1000': {
    name: 'conn-1000',
    title: 'GET / (100-byte body), keep-alive, 1,000 concurrent connections',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 1000,
    upstreamHosts: 1,
    later: false,
  },
  'consistent-hash': {
    name: 'consistent-hash',
    title: `GET /, consistent hashing on \`${KEY_HEADER}\` (10,000 keys) over 4 upstream hosts, 64 connections`,
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 64,
    varyHeader: { name: KEY_HEADER, keys: 10_000 },
    upstreamHosts: 4,
    later: true,
    note: `nginx: \`hash $http_${KEY_HEADER.replace(/-/g, '_')} consistent\` (ketama); HAProxy: \`balance hdr(${KEY_HEADER})\` + \`hash-type consistent\`; node-proxy and direct do not take part.`,
  },
  'rate-limit': {
    name: 'rate-limit',
    title: `GET /, rate limiting keyed on \`${KEY_HEADER}\` (10,000 keys), limit never reached, 64 connections`,
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 64,
    varyHeader: { name: KEY_HEADER, keys: 10_000 },
    upstreamHosts: 1,
    features: { what: 'rate limiting and a circuit breaker on the route', budget: 0.05 },
    later: true,
    note: 'Measures the cost of the check, not of rejecting: the limit (1,000,000 req/s per key) is never reached. nginx: `limit_req` on the header; HAProxy: a stick-table tracking `http_req_rate` on the header; node-proxy and direct do not take part.',
  },
  https: {
    name: 'https',
    title: 'GET / (100-byte body) over HTTPS (TLS terminated by the proxy, same certificate), keep-alive, 64 connections',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 64,
    upstreamHosts: 1,
    tls: true,
    later: true,
    note: 'One ECDSA P-256 certificate generated at bench start, used by every contender; TLS 1.3; keep-alive connections, so this measures record encryption per request rather than handshakes. The upstream is plain HTTP. node-proxy and direct do not take part.',
  },
  'kafka-events': {
    name: 'kafka-events',
    title: 'GET / proxied, with one Kafka event per request (async, batched), 64 connections',
    method: 'GET',
    path: '/',
    bodyBytes: 0,
    connections: 64,
    upstreamHosts: 1,
    features: { what: 'request events to Kafka (zstd, throughput profile)', budget: 0.25 },
    later: true,
    note: 'The baselines proxy the same request without producing anything: their rows show what the Kafka events cost Sluice (`sluice-1w-off`: the same config with events off).',
  },
  'kafka-produce-async': {
    name: 'kafka-produce-async',
    title: 'POST /kafka (1 KiB JSON) → Kafka, answered on enqueue (202), 64 connections',
    method: 'POST',
    path: '/kafka',
    bodyBytes: 1024,
    bodyContentType: 'application/json',
    connections: 64,
    upstreamHosts: 1,
    later: true,
    note: 'No baseline produces to Kafka: only the Sluice rows run.',
  },
  'kafka-produce-sync': {
    name: 'kafka-produce-sync',
    title: 'POST /kafka (1 KiB JSON) → Kafka, answered after the delivery report, 64 connections',
    method: 'POST',
    path: '/kafka',
    bodyBytes: 1024,
    bodyContentType: 'application/json',
    connections: 64,
    upstreamHosts: 1,
    later: true,
    note: 'No baseline produces to Kafka: only the Sluice rows run.',
  },
};

export function isScenarioName(s: string): s is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(s);
}

/** The request body a scenario sends: `x` bytes, or a JSON object padded to the size. */
export function scenarioBody(s: Scenario): string {
  if (s.bodyBytes === 0) return '';
  if (s.bodyContentType === 'application/json') {
    const head = '{"event":"bench","pad":"';
    const tail = '"}';
    return head + 'x'.repeat(Math.max(0, s.bodyBytes - head.length - tail.length)) + tail;
  }
  return 'x'.repeat(s.bodyBytes);
}
