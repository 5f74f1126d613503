/**
 * Upstream groups (`upstreams`): hosts and balancing, pool and timeout overrides, TLS to the
 * hosts, active health checks, outlier detection and the circuit breaker, with their checks.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { MapSchema, SchemaIssue, Static } from '../schema';
import { FILE, ms, NAME, type Check } from './common';
import { poolProps } from './pool';
import { upstreamTimeoutProps } from './timeouts';

const HASH_PART = "(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*.^_`|~0-9A-Za-z-]+|client_ip|path)";
const HASH_KEY = new RegExp(`^${HASH_PART}(\\+${HASH_PART})*$`);
const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const positiveWeight = { kind: 'integer', min: 1, max: 10000, default: 1, doc: 'relative weight' } as const;

export const UPSTREAMS_SCHEMA = {
  kind: 'map',
  keyPattern: NAME,
  keyDoc: 'letters, digits, _ . -, up to 64',
  defaultEmpty: true,
  doc: 'upstream groups by name',
  values: {
    kind: 'object',
    doc: 'an upstream group',
    required: ['hosts'],
    properties: {
      balance: {
        kind: 'string',
        enum: ['round_robin', 'least_request', 'random', 'ketama', 'maglev'],
        default: 'round_robin',
        doc: 'load-balancing algorithm (round_robin is smooth weighted; ketama and maglev hash hashKey)',
      },
      hashKey: {
        kind: 'string',
        pattern: HASH_KEY,
        patternDoc: 'parts joined by +: header:NAME, cookie:NAME, client_ip, path',
        doc: 'ketama/maglev key; requests without one fall back to round robin',
      },
      hashBalanceFactor: {
        kind: 'number',
        min: 0,
        max: 100,
        default: 1.25,
        doc: 'ketama/maglev bounded load: no host above factor × average in-flight (0 = off; else >= 1)',
      },
      hosts: {
        kind: 'array',
        minItems: 1,
        doc: 'upstream hosts',
        items: {
          kind: 'object',
          doc: 'an upstream host',
          required: ['address'],
          properties: {
            address: { kind: 'string', pattern: ADDRESS, patternDoc: 'host:port (IPv6 as [addr]:port)', doc: 'host:port' },
            weight: positiveWeight,
          },
        },
      },
      pool: { kind: 'object', doc: 'pool overrides', properties: poolProps(false) },
      tls: {
        kind: 'object',
        doc: 'TLS to the hosts (absent = plain HTTP); certificate and host name verified by default',
        properties: {
          serverName: { kind: 'string', pattern: /^[A-Za-z0-9.-]+$/, patternDoc: 'a host name', doc: 'SNI and the expected certificate name (default: the address host)' },
          verify: { kind: 'boolean', default: true, doc: 'verify the certificate chain and host name (false only for tests)' },
          caFile: { ...FILE, doc: 'CA bundle (PEM) for the upstream certificates (default: the system roots)' },
          certFile: { ...FILE, doc: 'client certificate (PEM) for mTLS to the upstream' },
          keyFile: { ...FILE, doc: 'client key (PEM) for mTLS to the upstream' },
          passphrase: { kind: 'string', doc: 'passphrase of the client key' },
        },
      },
      timeouts: { kind: 'object', doc: 'timeout overrides', properties: upstreamTimeoutProps(false) },
      healthCheck: {
        kind: 'object',
        doc: 'active health check of every host, from the primary thread (absent = none; hosts count as healthy)',
        properties: {
          type: { kind: 'string', enum: ['http', 'tcp'], default: 'http', doc: 'http: GET path and check the status; tcp: connect only' },
          path: { kind: 'string', default: '/', pattern: /^\/[^\s]*$/, patternDoc: 'a request target starting with /', doc: 'http: request target' },
          host: { kind: 'string', pattern: /^[A-Za-z0-9.:[\]-]+$/, patternDoc: 'a host name', doc: 'http: Host header (default: the host address)' },
          expectStatuses: {
            kind: 'array',
            minItems: 1,
            default: ['200-399'],
            doc: 'statuses that count as healthy (HAProxy: 2xx and 3xx)',
            items: { kind: 'string', pattern: /^[1-5]\d\d(-[1-5]\d\d)?$/, patternDoc: 'a status or a range like 200-399', doc: 'status or range' },
          },
          intervalMs: ms('time between two checks of a host (HAProxy inter)', 2000, undefined, 10),
          timeoutMs: ms('one check: connect and response head', 1000, undefined, 1),
          jitter: { kind: 'number', min: 0, max: 0.5, default: 0.1, doc: 'each interval varies by ± this share (spreads the checks)' },
          rise: { kind: 'integer', min: 1, max: 100, default: 2, doc: 'consecutive successes that bring a down host back' },
          fall: { kind: 'integer', min: 1, max: 100, default: 3, doc: 'consecutive failures that take a host down' },
        },
      },
      outlierDetection: {
        kind: 'object',
        doc: 'passive outlier detection from real traffic, shared by all workers (absent = off, as in Envoy)',
        properties: {
          consecutiveErrors: { kind: 'integer', min: 1, max: 10000, default: 5, doc: 'consecutive 5xx or gateway errors that eject a host' },
          baseEjectionMs: ms('first ejection time; the n-th ejection lasts n times as long', 30000, undefined, 1),
          maxEjectionMs: ms('longest ejection; a host un-ejected this long starts counting from one again', 300000, undefined, 1),
          maxEjectionPercent: { kind: 'integer', min: 0, max: 100, default: 10, doc: 'at most this share of the group is ejected at once (at least one host)' },
        },
      },
      breaker: {
        kind: 'object',
        doc: 'circuit breaker per host, shared by all workers (absent = off)',
        properties: {
          consecutiveFailures: { kind: 'integer', min: 0, max: 100000, default: 5, doc: 'consecutive failures that open the breaker (0 = off)' },
          failureRatio: { kind: 'number', min: 0, max: 1, default: 0.5, doc: 'failure share over windowMs that opens the breaker (0 = off)' },
          windowMs: ms('rolling window of the failure ratio', 10000, undefined, 100),
          minRequests: { kind: 'integer', min: 1, max: 1000000, default: 20, doc: 'requests in the window before the ratio counts' },
          openMs: ms('cool-down: how long the breaker stays open before probing', 5000, undefined, 1),
          halfOpenProbes: { kind: 'integer', min: 1, max: 1000, default: 3, doc: 'requests admitted at once while half-open' },
          closeAfter: { kind: 'integer', min: 1, max: 1000, default: 3, doc: 'successful probes that close the breaker' },
          failOn: {
            kind: 'array',
            minItems: 1,
            default: ['connect', 'timeout', 'reset', '5xx'],
            doc: 'what counts as a failure',
            items: { kind: 'string', enum: ['connect', 'timeout', 'reset', '5xx'], doc: 'connect error, timeout, reset or bad response, upstream 5xx' },
          },
        },
      },
      maxActivePerHost: { kind: 'integer', min: 0, max: 10000000, default: 0, doc: 'requests in flight to one host, all workers together (0 = unlimited); past it 503' },
      maxPendingPerHost: { kind: 'integer', min: 0, max: 10000000, default: 0, doc: 'requests waiting for a new connection to one host, all workers together (0 = unlimited); past it 503' },
      panicThresholdPercent: {
        kind: 'integer',
        min: 0,
        max: 100,
        default: 50,
        doc: 'below this share of available hosts, balance across all hosts anyway (Envoy panic threshold; 0 = never)',
      },
    },
  },
} as const satisfies MapSchema;

export type UpstreamConfig = Static<(typeof UPSTREAMS_SCHEMA)['values']>;
export type Balance = UpstreamConfig['balance'];
export type HostConfig = UpstreamConfig['hosts'][number];
/** Active health check of every host of a group (run by the primary thread). */
export type HealthCheckConfig = NonNullable<UpstreamConfig['healthCheck']>;
/** Passive outlier detection from real traffic (Envoy's outlier_detection). */
export type OutlierConfig = NonNullable<UpstreamConfig['outlierDetection']>;
export type BreakerConfig = NonNullable<UpstreamConfig['breaker']>;
/** What an attempt's outcome counts as, for breakers and retries. */
export type FailureKind = BreakerConfig['failOn'][number];
/** TLS to an upstream group's hosts. */
export type UpstreamTlsConfig = NonNullable<UpstreamConfig['tls']>;

/** Upstream host entries (group × address) the shared host-state table holds. */
export const MAX_HOST_ENTRIES = 4096;

/** Identity of a host entry: pools, host-state slots and health checks are keyed by it. */
export function hostKey(group: string, address: string): string {
  return `${group}|${address}`;
}

type Upstreams = { readonly upstreams: Readonly<Record<string, UpstreamConfig>> };

export const upstreamChecks: Check<Upstreams> = (cfg, issues) => {
  let hostEntries = 0;
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    const hashed = u.balance === 'ketama' || u.balance === 'maglev';
    if (hashed && u.hashKey === undefined) issues.push({ path: `upstreams.${name}.hashKey`, message: `is required with balance ${u.balance}` });
    if (!hashed && u.hashKey !== undefined) issues.push({ path: `upstreams.${name}.hashKey`, message: `is only used with balance ketama or maglev (got ${u.balance})` });
    if (u.hashBalanceFactor > 0 && u.hashBalanceFactor < 1) {
      issues.push({ path: `upstreams.${name}.hashBalanceFactor`, message: `must be 0 (off) or >= 1, got ${u.hashBalanceFactor}` });
    }
    const o = u.outlierDetection;
    if (o !== undefined && o.maxEjectionMs < o.baseEjectionMs) {
      issues.push({ path: `upstreams.${name}.outlierDetection.maxEjectionMs`, message: `must be >= baseEjectionMs (${o.baseEjectionMs}), got ${o.maxEjectionMs}` });
    }
    u.healthCheck?.expectStatuses.forEach((r, j) => {
      const [lo, hi = lo] = r.split('-').map(Number) as [number, number?];
      if (hi < lo) issues.push({ path: `upstreams.${name}.healthCheck.expectStatuses[${j}]`, message: `is an empty range ${r}` });
    });
    if (u.healthCheck?.type === 'tcp' && (u.healthCheck.path !== '/' || u.healthCheck.host !== undefined)) {
      issues.push({ path: `upstreams.${name}.healthCheck.type`, message: 'is tcp: path and host only apply to http checks' });
    }
    hostEntries += u.hosts.length;
    u.hosts.forEach((h, j) => {
      const port = Number(h.address.slice(h.address.lastIndexOf(':') + 1));
      if (port < 1 || port > 65535) issues.push({ path: `upstreams.${name}.hosts[${j}].address`, message: `has port ${port} outside 1..65535` });
    });
  }
  if (hostEntries > MAX_HOST_ENTRIES) {
    issues.push({ path: 'upstreams', message: `list ${hostEntries} hosts in all; at most ${MAX_HOST_ENTRIES} are supported (the shared host-state table)` });
  }
};

export const upstreamTlsChecks: Check<Upstreams> = (cfg, issues) => {
  for (const [name, u] of Object.entries(cfg.upstreams)) {
    const t = u.tls;
    if (t !== undefined && (t.certFile === undefined) !== (t.keyFile === undefined)) {
      issues.push({ path: `upstreams.${name}.tls.${t.certFile === undefined ? 'certFile' : 'keyFile'}`, message: 'is needed too: a client certificate takes certFile and keyFile' });
    } else if (t !== undefined) upstreamTlsFileChecks(t, `upstreams.${name}.tls`, issues);
  }
};

/**
 * The files of upstreams.NAME.tls: readable, a CA bundle with at least one certificate (the
 * TLS stack silently ignores a file without any), and a client certificate and key (with
 * its passphrase) that belong together. The workers read them again when they build pools.
 */
function upstreamTlsFileChecks(t: UpstreamTlsConfig, path: string, issues: SchemaIssue[]): void {
  const read = (field: 'caFile' | 'certFile' | 'keyFile'): Buffer | null => {
    const file = t[field];
    if (file === undefined) return null;
    try {
      return readFileSync(file);
    } catch (e) {
      issues.push({ path: `${path}.${field}`, message: `cannot be read: ${(e as Error).message}` });
      return null;
    }
  };
  const ca = read('caFile');
  if (ca !== null) {
    try {
      new X509Certificate(ca);
    } catch (e) {
      issues.push({ path: `${path}.caFile`, message: `holds no PEM certificate: ${(e as Error).message}` });
    }
  }
  const cert = read('certFile');
  const key = read('keyFile');
  if (cert !== null && key !== null) {
    try {
      createSecureContext({ cert, key, ...(t.passphrase === undefined ? {} : { passphrase: t.passphrase }) });
    } catch (e) {
      issues.push({ path: `${path}.certFile`, message: `and keyFile are not a usable certificate and key (PEM; passphrase): ${(e as Error).message}` });
    }
  }
}
