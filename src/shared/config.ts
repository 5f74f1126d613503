/**
 * Sluice's configuration: the one schema (with defaults and `SLUICE_*` variables), the
 * types it produces, and the loader (file + environment → validated, semantically checked,
 * deep-frozen value). The primary thread loads it once per start or reload and hands the
 * frozen value to the workers; nothing else parses configuration.
 */
import { X509Certificate } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createSecureContext } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { SluiceError } from './errors';
import { parseCidr } from './cidr';
import { listenerTlsChecks } from './tls-certs';
import { policyProblem } from './rate-limit';
import { KAFKA_SCHEMA, kafkaSemanticChecks, type KafkaConfig } from './kafka-config';
import {
  deepFreeze,
  envVars,
  parseEnvValue,
  validate,
  type ObjectSchema,
  type Schema,
  type SchemaIssue,
} from './schema';

// ---------------------------------------------------------------- types

export type Balance = 'round_robin' | 'least_request' | 'random' | 'ketama' | 'maglev';

export interface HostConfig {
  readonly address: string;
  readonly weight: number;
}

export interface PoolConfig {
  readonly maxIdlePerHost: number;
  readonly idleTimeoutMs: number;
  readonly maxConnectionsPerHost: number;
}

export interface UpstreamTimeouts {
  readonly connectMs: number;
  readonly headerMs: number;
  readonly idleMs: number;
}

export interface RouteTimeouts extends Partial<UpstreamTimeouts> {
  readonly totalMs?: number;
}

/** Active health check of every host of a group (run by the primary thread). */
export interface HealthCheckConfig {
  readonly type: 'http' | 'tcp';
  readonly path: string;
  readonly host?: string;
  /** Status ranges that count as healthy, e.g. "200-399", "204". */
  readonly expectStatuses: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly jitter: number;
  readonly rise: number;
  readonly fall: number;
}

/** Passive outlier detection from real traffic (Envoy's outlier_detection). */
export interface OutlierConfig {
  readonly consecutiveErrors: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
}

/** What an attempt's outcome counts as, for breakers and retries. */
export type FailureKind = 'connect' | 'timeout' | 'reset' | '5xx';

export interface BreakerConfig {
  readonly consecutiveFailures: number;
  readonly failureRatio: number;
  readonly windowMs: number;
  readonly minRequests: number;
  readonly openMs: number;
  readonly halfOpenProbes: number;
  readonly closeAfter: number;
  readonly failOn: readonly FailureKind[];
}

export interface UpstreamConfig {
  readonly balance: Balance;
  /** ketama / maglev: the key, parts joined by '+': header:NAME, cookie:NAME, client_ip, path. */
  readonly hashKey?: string;
  /** ketama / maglev: bounded load (HAProxy hash-balance-factor as a ratio, e.g. 1.25); 0 = off. */
  readonly hashBalanceFactor: number;
  readonly hosts: readonly HostConfig[];
  readonly pool?: Partial<PoolConfig>;
  readonly timeouts?: Partial<UpstreamTimeouts>;
  readonly healthCheck?: HealthCheckConfig;
  readonly tls?: UpstreamTlsConfig;
  readonly outlierDetection?: OutlierConfig;
  readonly breaker?: BreakerConfig;
  /** Requests in flight to one host across all workers (0 = unlimited); past it 503. */
  readonly maxActivePerHost: number;
  /** Requests waiting for a new connection to one host across all workers (0 = unlimited). */
  readonly maxPendingPerHost: number;
  /** Fewer available hosts than this percentage: balance across all hosts (Envoy's panic threshold). */
  readonly panicThresholdPercent: number;
}

export interface PathMatch {
  readonly prefix?: string;
  readonly exact?: string;
  readonly regex?: string;
}

export interface HeaderMatch {
  readonly name: string;
  readonly exact?: string;
  readonly regex?: string;
  readonly present?: boolean;
}

export interface RouteMatch {
  readonly host?: string;
  readonly path?: PathMatch;
  readonly methods?: readonly string[];
  readonly headers?: readonly HeaderMatch[];
}

export interface HeaderEdits {
  readonly add?: Readonly<Record<string, string>>;
  readonly set?: Readonly<Record<string, string>>;
  readonly remove?: readonly string[];
}

/** Where a Kafka route takes the record key from. */
export interface KafkaKeySource {
  readonly header?: string;
  readonly pathParam?: string;
  readonly jsonField?: string;
}

export interface KafkaRouteAction {
  readonly type: 'kafka';
  readonly topic: string;
  readonly format: 'raw' | 'ndjson' | 'json-array';
  readonly key?: KafkaKeySource;
  readonly partitioner: 'hash' | 'default';
  /** Request headers copied into Kafka headers (the request id always is). */
  readonly headers?: readonly string[];
  readonly allowSensitiveHeaders: boolean;
  readonly mode: 'sync' | 'async';
  readonly maxRecordBytes: number;
  readonly deliveryTimeoutMs: number;
  readonly transactional: boolean;
}

export interface EventsConfig {
  readonly enabled: boolean;
  readonly topic: string;
  /** Key expression: parts joined by '+', each route | client | upstream | host | request_id | header:NAME | none. */
  readonly key: string;
  readonly policy: 'drop' | 'sample';
  /** With policy sample: the share of non-5xx events kept (every 5xx is kept). */
  readonly sampleRate: number;
  /** Request headers copied into each event. */
  readonly headers?: readonly string[];
  readonly allowSensitiveHeaders: boolean;
}

export type RouteAction =
  | { readonly type: 'proxy'; readonly upstream: string }
  | { readonly type: 'split'; readonly targets: readonly { readonly upstream: string; readonly weight: number }[] }
  | { readonly type: 'redirect'; readonly location: string; readonly status: number; readonly appendPath: boolean }
  | KafkaRouteAction
  | {
      readonly type: 'respond';
      readonly status: number;
      readonly body: string;
      readonly contentType: string;
      readonly headers?: Readonly<Record<string, string>>;
    };

/** Retry condition: a failure kind, or an upstream status that is retried. */
export type RetryOn = 'connect' | 'timeout' | 'reset' | '502' | '503' | '504' | '5xx';

export interface RetryConfig {
  /** Retries after the first attempt (0 = off). */
  readonly attempts: number;
  readonly on: readonly RetryOn[];
  /** Also retry non-idempotent requests that carry an Idempotency-Key header. */
  readonly idempotencyKey: boolean;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** An upstream Retry-After longer than this is not waited for: the response goes to the client. */
  readonly maxRetryAfterMs: number;
  readonly budgetPercent: number;
  readonly budgetMin: number;
}

export interface RateLimitConfig {
  /** Key parts joined by '+': client_ip, route, header:NAME. */
  readonly key: string;
  /** Tokens per second (fractions allowed: 0.5 = one per two seconds). */
  readonly rate: number;
  /** Bucket size; absent = the rate rounded up. */
  readonly burst?: number;
  /** Routes naming the same zone share buckets (nginx limit_req_zone); default: the route name. */
  readonly zone?: string;
  /** rejected: the RateLimit fields only on 429; always: on every response of the route. */
  readonly headers: 'rejected' | 'always';
}

export interface RouteConfig {
  readonly name: string;
  readonly match: RouteMatch;
  readonly rewrite?: { readonly prefix: string };
  readonly requestHeaders?: HeaderEdits;
  readonly responseHeaders?: HeaderEdits;
  readonly action: RouteAction;
  readonly timeouts?: RouteTimeouts;
  readonly maxBodyBytes?: number;
  readonly retry?: RetryConfig;
  readonly rateLimit?: RateLimitConfig;
  readonly acl?: readonly AclRule[];
}

/** One ACL rule: exactly one of allow / deny, a CIDR (IPv4 or IPv6) or a single address. */
export interface AclRule {
  readonly allow?: string;
  readonly deny?: string;
}

/** A certificate and its key (PEM files). */
export interface CertPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly passphrase?: string;
}

export interface SniCertificate extends CertPair {
  /** Host names served with this certificate: exact, or `*.example.com` (one label). */
  readonly serverNames: readonly string[];
}

/** The HTTPS listener (TLS termination). */
export interface TlsListenerConfig {
  readonly host?: string;
  readonly port: number;
  /** Certificates chosen by SNI. */
  readonly certificates: readonly SniCertificate[];
  /** Served when the client sends no SNI or an unknown name (default: the first certificate). */
  readonly defaultCertificate?: CertPair;
  /** Client certificate verification (mTLS), through the listener front (docs/edge.md). */
  readonly clientAuth?: {
    readonly caFile: string;
    /** true: a client without a valid certificate is refused; false: one without any gets in (no identity header). */
    readonly required: boolean;
    /** The request header carrying the verified certificate upstream (lower case); removed from what clients send. */
    readonly identityHeader: string;
  };
  readonly proxyProtocol: ProxyProtocolSetting;
  readonly acl?: readonly AclRule[];
}

/**
 * A listener's PROXY protocol: `off`; `v2` parsed by uWS itself (the fast path; a header is
 * optional and re-parsed per request); `v1`, `any` (v1 or v2) through the listener front
 * (required, read once per connection). docs/edge.md.
 */
export type ProxyProtocolSetting = 'off' | 'v2' | 'v1' | 'any';

/** TLS to an upstream group's hosts. */
export interface UpstreamTlsConfig {
  /** SNI and the name the certificate must match (default: the host part of the address). */
  readonly serverName?: string;
  /** Verify the upstream's certificate chain and host name (default true; false is for tests only). */
  readonly verify: boolean;
  /** CA bundle (PEM) the upstream's certificate must chain to (default: Node's root store). */
  readonly caFile?: string;
  /** Client certificate for mTLS to the upstream. */
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly passphrase?: string;
}

export interface SluiceConfig {
  readonly workers: number;
  readonly listen: { readonly host: string; readonly port: number; readonly proxyProtocol: ProxyProtocolSetting; readonly acl?: readonly AclRule[] };
  readonly tls?: TlsListenerConfig;
  readonly admin: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly limits: {
    readonly maxUrlLength: number;
    readonly maxHeaderBytes: number;
    readonly maxHeaderCount: number;
    readonly maxBodyBytes: number;
  };
  readonly timeouts: UpstreamTimeouts & { readonly totalMs: number };
  readonly pool: PoolConfig;
  readonly proxy: {
    readonly via: string;
    readonly requestIdHeader: string;
    readonly retryBufferBytes: number;
    /** Proxies in front of Sluice whose X-Forwarded-For entries are trusted (0 = none: the peer address is the client). */
    readonly trustedHops: number;
  };
  readonly log: { readonly level: LogLevel; readonly access: boolean; readonly accessFile: string };
  readonly shutdown: { readonly drainTimeoutMs: number };
  readonly rateLimit: { readonly tableSize: number; readonly idleMs: number };
  readonly kafka: KafkaConfig;
  readonly events: EventsConfig;
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly routes: readonly RouteConfig[];
}

/** Authorization and Cookie never leave for Kafka unless a section says allowSensitiveHeaders. */
export const SENSITIVE_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization', 'set-cookie'];

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

// ---------------------------------------------------------------- schema

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const HASH_PART = "(header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*.^_`|~0-9A-Za-z-]+|client_ip|path)";
const HASH_KEY = new RegExp(`^${HASH_PART}(\\+${HASH_PART})*$`);
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const EVENT_KEY = /^(none|((route|client|upstream|host|request_id|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)(\+(route|client|upstream|host|request_id|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+))*))$/;
const RATE_PART = "(header:[!#$%&'*.^_`|~0-9A-Za-z-]+|client_ip|route)";
const RATE_KEY = new RegExp(`^${RATE_PART}(\\+${RATE_PART})*$`);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const ms = (doc: string, def: number | undefined, env?: string, min = 0): Schema => ({
  kind: 'integer',
  min,
  max: 24 * 3600 * 1000,
  doc,
  ...(def === undefined ? {} : { default: def }),
  ...(env === undefined ? {} : { env }),
});

const headerMap: Schema = {
  kind: 'map',
  keyPattern: HEADER_NAME,
  keyDoc: 'an HTTP header name',
  values: { kind: 'string', doc: 'header value', pattern: /^[^\r\n\0]*$/, patternDoc: 'a header value without CR, LF or NUL' },
  doc: 'header name → value',
};

const headerEdits: ObjectSchema = {
  kind: 'object',
  doc: 'header edits, applied in the order remove, set, add',
  properties: {
    add: { ...headerMap, doc: 'headers appended (existing values kept)' },
    set: { ...headerMap, doc: 'headers replaced (existing values dropped)' },
    remove: {
      kind: 'array',
      doc: 'header names removed',
      items: { kind: 'string', doc: 'header name', pattern: HEADER_NAME, patternDoc: 'an HTTP header name' },
    },
  },
};

const upstreamTimeoutProps = (withDefaults: boolean): Record<string, Schema> => ({
  connectMs: ms('TCP connect timeout to an upstream host', withDefaults ? 5000 : undefined, withDefaults ? 'SLUICE_CONNECT_TIMEOUT_MS' : undefined, 1),
  headerMs: ms(
    'time from the request being sent until the upstream response head arrives (TTFB)',
    withDefaults ? 60000 : undefined,
    withDefaults ? 'SLUICE_HEADER_TIMEOUT_MS' : undefined,
    1,
  ),
  idleMs: ms(
    'longest silence between two reads of the upstream response body',
    withDefaults ? 60000 : undefined,
    withDefaults ? 'SLUICE_READ_IDLE_TIMEOUT_MS' : undefined,
    1,
  ),
});

const poolProps = (withDefaults: boolean): Record<string, Schema> => ({
  maxIdlePerHost: {
    kind: 'integer',
    min: 0,
    max: 100000,
    doc: 'idle keep-alive connections kept per upstream host, per worker',
    ...(withDefaults ? { default: 1024, env: 'SLUICE_POOL_MAX_IDLE' } : {}),
  },
  idleTimeoutMs: ms(
    'an idle pooled connection is closed after this long; keep it below the upstream keep-alive timeout (a shorter `Keep-Alive: timeout=` hint from the upstream wins)',
    withDefaults ? 4000 : undefined,
    withDefaults ? 'SLUICE_POOL_IDLE_TIMEOUT_MS' : undefined,
    1,
  ),
  maxConnectionsPerHost: {
    kind: 'integer',
    min: 0,
    max: 1000000,
    doc: 'connections per upstream host, per worker (0 = unlimited); past it requests fail fast with 503',
    ...(withDefaults ? { default: 0, env: 'SLUICE_POOL_MAX_CONNECTIONS' } : {}),
  },
});

const CIDR = /^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(\/[0-9]{1,3})?$/;

const aclSchema = (doc: string): Schema => ({
  kind: 'array',
  doc: `${doc}: rules in order, the first match wins; no match = allowed (nginx allow/deny)`,
  items: {
    kind: 'object',
    doc: 'an ACL rule',
    oneOf: ['allow', 'deny'],
    properties: {
      allow: { kind: 'string', pattern: CIDR, patternDoc: 'an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1, fd00::/8)', doc: 'allow these addresses' },
      deny: { kind: 'string', pattern: CIDR, patternDoc: 'an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1, fd00::/8)', doc: 'deny these addresses (403)' },
    },
  },
});

const proxyProtocolSchema = (which: string): Schema => ({
  kind: 'string',
  enum: ['off', 'v2', 'v1', 'any'],
  default: 'off',
  doc: `PROXY protocol on ${which}, only behind a trusted load balancer: off; v2 (parsed by uWS, optional, per request); v1 or any (v1 or v2: required, read once per connection by the listener front)`,
});

const FILE: Schema = { kind: 'string', minLength: 1, doc: 'a file path' };

const certPair = (doc: string): ObjectSchema => ({
  kind: 'object',
  doc,
  required: ['certFile', 'keyFile'],
  properties: {
    certFile: { ...FILE, doc: 'certificate chain (PEM)' },
    keyFile: { ...FILE, doc: 'private key (PEM)' },
    passphrase: { kind: 'string', doc: 'passphrase of the key' },
  },
});

const positiveWeight: Schema = { kind: 'integer', min: 1, max: 10000, default: 1, doc: 'relative weight' };

export const CONFIG_SCHEMA: ObjectSchema = {
  kind: 'object',
  doc: 'Sluice configuration',
  required: ['routes'],
  properties: {
    workers: {
      kind: 'integer',
      min: 0,
      max: 256,
      default: 0,
      env: 'SLUICE_WORKERS',
      doc: 'HTTP worker threads (0 = one per CPU)',
    },
    listen: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'the HTTP listener',
      properties: {
        host: { kind: 'string', default: '0.0.0.0', env: 'SLUICE_LISTEN_HOST', doc: 'listen address', minLength: 1 },
        port: { kind: 'integer', min: 0, max: 65535, default: 8080, env: 'SLUICE_LISTEN_PORT', doc: 'listen port (0 = pick a free one)' },
        proxyProtocol: proxyProtocolSchema('the HTTP listener'),
        acl: aclSchema('who may connect to this listener'),
      },
    },
    tls: {
      kind: 'object',
      doc: 'the HTTPS listener: TLS termination with SNI (absent = none)',
      required: ['certificates'],
      properties: {
        host: { kind: 'string', minLength: 1, doc: 'listen address (default: listen.host)' },
        port: { kind: 'integer', min: 0, max: 65535, default: 8443, doc: 'HTTPS port (0 = pick a free one)' },
        certificates: {
          kind: 'array',
          minItems: 1,
          doc: 'certificates chosen by SNI',
          items: {
            ...certPair('a certificate for some host names'),
            required: ['serverNames', 'certFile', 'keyFile'],
            properties: {
              ...certPair('').properties,
              serverNames: {
                kind: 'array',
                minItems: 1,
                doc: 'host names (exact or *.suffix) served with this certificate',
                items: { kind: 'string', pattern: /^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, patternDoc: 'a host name or *.suffix', doc: 'host name' },
              },
            },
          },
        },
        defaultCertificate: certPair('served without SNI or for an unknown name (default: the first certificate)'),
        clientAuth: {
          kind: 'object',
          doc: 'mTLS: verify client certificates against caFile (the listener then runs through the front, docs/edge.md)',
          required: ['caFile'],
          properties: {
            caFile: { ...FILE, doc: 'CA bundle (PEM) client certificates must chain to' },
            required: { kind: 'boolean', default: true, doc: 'refuse clients without a certificate (false: let them in without an identity)' },
            identityHeader: {
              kind: 'string',
              pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/,
              patternDoc: 'an HTTP header name',
              default: 'x-forwarded-client-cert',
              doc: 'request header carrying the verified certificate upstream (Envoy XFCC format); any such header from a client is removed',
            },
          },
        },
        proxyProtocol: proxyProtocolSchema('the HTTPS listener'),
        acl: aclSchema('who may connect to the HTTPS listener'),
      },
    },
    admin: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'the admin listener (primary thread): /metrics, /healthz, /status',
      properties: {
        enabled: { kind: 'boolean', default: true, env: 'SLUICE_ADMIN', doc: 'serve the admin endpoints' },
        host: { kind: 'string', minLength: 1, default: '127.0.0.1', env: 'SLUICE_ADMIN_HOST', doc: 'admin listen address (loopback by default)' },
        port: { kind: 'integer', min: 0, max: 65535, default: 9901, env: 'SLUICE_ADMIN_PORT', doc: 'admin port (0 = pick a free one)' },
      },
    },
    limits: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'request limits',
      properties: {
        maxUrlLength: { kind: 'integer', min: 16, max: 65536, default: 8192, env: 'SLUICE_MAX_URL_LENGTH', doc: 'longest request target in bytes; longer gets 414' },
        maxHeaderBytes: {
          kind: 'integer',
          min: 256,
          max: 65536,
          default: 8192,
          env: 'SLUICE_MAX_HEADER_BYTES',
          doc: 'total bytes of request header names and values; more gets 431',
        },
        maxHeaderCount: {
          kind: 'integer',
          min: 1,
          max: 47,
          default: 40,
          env: 'SLUICE_MAX_HEADER_COUNT',
          doc: 'request header fields; more gets 431 (uWS closes the connection at the 49th on its own)',
        },
        maxBodyBytes: {
          kind: 'integer',
          min: 0,
          max: 2 ** 50,
          default: 10 * 1024 * 1024,
          env: 'SLUICE_MAX_BODY_BYTES',
          doc: 'largest request body; more gets 413',
        },
      },
    },
    timeouts: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'upstream timeouts (route and upstream settings override them)',
      properties: {
        ...upstreamTimeoutProps(true),
        totalMs: ms('whole request deadline from arrival to the last response byte (0 = none)', 0, 'SLUICE_TOTAL_TIMEOUT_MS'),
      },
    },
    pool: { kind: 'object', defaultEmpty: true, doc: 'upstream connection pools', properties: poolProps(true) },
    proxy: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'proxy behaviour',
      properties: {
        via: {
          kind: 'string',
          default: 'sluice',
          env: 'SLUICE_VIA',
          pattern: /^[A-Za-z0-9._-]*$/,
          patternDoc: 'a pseudonym token (letters, digits, . _ -), empty to send no Via',
          doc: 'pseudonym in the `Via: 1.1 <name>` header added both ways ("" = none)',
        },
        requestIdHeader: {
          kind: 'string',
          default: 'x-request-id',
          env: 'SLUICE_REQUEST_ID_HEADER',
          pattern: HEADER_NAME,
          patternDoc: 'an HTTP header name',
          doc: 'request id header: propagated when present, generated when absent',
        },
        retryBufferBytes: {
          kind: 'integer',
          min: 0,
          max: 16 * 1024 * 1024,
          default: 65536,
          env: 'SLUICE_RETRY_BUFFER_BYTES',
          doc: 'request bodies up to this size are kept so that a failed reused connection can be retried',
        },
        trustedHops: {
          kind: 'integer',
          min: 0,
          max: 16,
          default: 0,
          env: 'SLUICE_TRUSTED_HOPS',
          doc: 'proxies in front of Sluice: the client address is taken this many entries from the right of X-Forwarded-For (0 = the peer address)',
        },
      },
    },
    log: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'logging',
      properties: {
        level: { kind: 'string', enum: ['debug', 'info', 'warn', 'error'], default: 'info', env: 'SLUICE_LOG_LEVEL', doc: 'structured log level' },
        access: { kind: 'boolean', default: false, env: 'SLUICE_ACCESS_LOG', doc: 'one JSON line per request (docs/access-log.md)' },
        accessFile: { kind: 'string', default: '', env: 'SLUICE_ACCESS_LOG_FILE', doc: 'write the access log to this file (appended; reopened on SIGHUP) instead of stdout' },
      },
    },
    shutdown: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'graceful shutdown',
      properties: {
        drainTimeoutMs: ms('SIGTERM: how long in-flight requests may take before workers are stopped', 30000, 'SLUICE_DRAIN_TIMEOUT_MS'),
      },
    },
    rateLimit: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'the shared rate-limit table (fixed at start; a reload cannot resize it)',
      properties: {
        tableSize: {
          kind: 'integer',
          min: 16,
          max: 1 << 24,
          default: 65536,
          env: 'SLUICE_RATE_LIMIT_TABLE_SIZE',
          doc: 'buckets held at once (a power of two; 32 bytes each); when full, the least recently used bucket nearby is reused',
        },
        idleMs: ms('a bucket untouched this long is refilled and may be reused', 60000, 'SLUICE_RATE_LIMIT_IDLE_MS', 1000),
      },
    },
    kafka: KAFKA_SCHEMA,
    events: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'one structured event per proxied request, produced to Kafka (docs/kafka.md)',
      properties: {
        enabled: { kind: 'boolean', default: false, env: 'SLUICE_EVENTS', doc: 'produce request events' },
        topic: { kind: 'string', default: 'sluice.requests', pattern: TOPIC, patternDoc: 'a Kafka topic name', env: 'SLUICE_EVENTS_TOPIC', doc: 'topic of the request events' },
        key: {
          kind: 'string',
          default: 'route',
          pattern: EVENT_KEY,
          patternDoc: 'parts joined by +: route, client, upstream, host, request_id, header:NAME, or none',
          env: 'SLUICE_EVENTS_KEY',
          doc: 'record key (partitioning): route, client, upstream, host, request_id, header:NAME, joined by +; none = no key',
        },
        policy: {
          kind: 'string',
          enum: ['drop', 'sample'],
          default: 'drop',
          env: 'SLUICE_EVENTS_POLICY',
          doc: 'drop: every event, the newest dropped and counted when the buffer is full; sample: keep every 5xx and sampleRate of the rest',
        },
        sampleRate: { kind: 'number', min: 0, max: 1, default: 1, env: 'SLUICE_EVENTS_SAMPLE_RATE', doc: 'share of non-5xx events kept with policy sample' },
        headers: {
          kind: 'array',
          doc: 'request headers copied into events',
          items: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
        },
        allowSensitiveHeaders: { kind: 'boolean', default: false, doc: 'allow Authorization/Cookie in headers' },
      },
    },
    upstreams: {
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
    },
    routes: {
      kind: 'array',
      minItems: 1,
      doc: 'ordered routes; the first match wins',
      items: {
        kind: 'object',
        doc: 'a route',
        required: ['name', 'action'],
        properties: {
          name: { kind: 'string', pattern: NAME, patternDoc: 'letters, digits, _ . -, up to 64', doc: 'route name (logs, metrics)' },
          match: {
            kind: 'object',
            defaultEmpty: true,
            doc: 'all given conditions must hold',
            properties: {
              host: {
                kind: 'string',
                pattern: /^(\*\.)?[A-Za-z0-9.-]+$/,
                patternDoc: 'a host name or *.suffix',
                doc: 'Host header (port ignored): exact or *.example.com',
              },
              path: {
                kind: 'object',
                oneOf: ['prefix', 'exact', 'regex'],
                doc: 'path condition',
                properties: {
                  prefix: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'path prefix' },
                  exact: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'exact path' },
                  regex: { kind: 'string', doc: 'JavaScript regular expression tested against the path' },
                },
              },
              methods: {
                kind: 'array',
                minItems: 1,
                doc: 'allowed methods',
                items: { kind: 'string', pattern: /^[A-Z]+$/, patternDoc: 'an upper-case method name', doc: 'method' },
              },
              headers: {
                kind: 'array',
                doc: 'header conditions',
                items: {
                  kind: 'object',
                  doc: 'a header condition',
                  required: ['name'],
                  oneOf: ['exact', 'regex', 'present'],
                  properties: {
                    name: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
                    exact: { kind: 'string', doc: 'exact value' },
                    regex: { kind: 'string', doc: 'regular expression on the value' },
                    present: { kind: 'boolean', doc: 'true: must be present; false: must be absent' },
                  },
                },
              },
            },
          },
          rewrite: {
            kind: 'object',
            doc: 'path rewrite',
            required: ['prefix'],
            properties: {
              prefix: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'replaces the matched path prefix' },
            },
          },
          requestHeaders: headerEdits,
          responseHeaders: headerEdits,
          action: {
            kind: 'union',
            tag: 'type',
            doc: 'what the route does',
            variants: {
              proxy: {
                kind: 'object',
                doc: 'proxy to an upstream group',
                required: ['upstream'],
                properties: { upstream: { kind: 'string', doc: 'upstream group name' } },
              },
              split: {
                kind: 'object',
                doc: 'weighted split across upstream groups (canary)',
                required: ['targets'],
                properties: {
                  targets: {
                    kind: 'array',
                    minItems: 1,
                    doc: 'groups and weights',
                    items: {
                      kind: 'object',
                      doc: 'a split target',
                      required: ['upstream', 'weight'],
                      properties: {
                        upstream: { kind: 'string', doc: 'upstream group name' },
                        weight: { kind: 'integer', min: 0, max: 10000, doc: 'relative weight (0 = off)' },
                      },
                    },
                  },
                },
              },
              redirect: {
                kind: 'object',
                doc: 'redirect',
                required: ['location'],
                properties: {
                  location: { kind: 'string', minLength: 1, pattern: /^[^\r\n\0]*$/, patternDoc: 'a URL without CR, LF or NUL', doc: 'target URL' },
                  status: { kind: 'integer', min: 301, max: 308, default: 302, doc: 'redirect status' },
                  appendPath: { kind: 'boolean', default: false, doc: 'append the request path and query to location' },
                },
              },
              kafka: {
                kind: 'object',
                doc: 'produce the request body to Kafka (raw, NDJSON lines or JSON array elements)',
                required: ['topic'],
                properties: {
                  topic: { kind: 'string', pattern: TOPIC, patternDoc: 'a Kafka topic name', doc: 'topic' },
                  format: { kind: 'string', enum: ['raw', 'ndjson', 'json-array'], default: 'raw', doc: 'raw = one record; ndjson = one per line; json-array = one per element' },
                  key: {
                    kind: 'object',
                    oneOf: ['header', 'pathParam', 'jsonField'],
                    doc: 'record key source (none = no key)',
                    properties: {
                      header: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'request header' },
                      pathParam: { kind: 'string', pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternDoc: 'a named group of match.path.regex', doc: 'named group of the route path regex' },
                      jsonField: { kind: 'string', pattern: /^[^.\s]+(\.[^.\s]+)*$/, patternDoc: 'a dotted field path', doc: 'field of each JSON record (a.b.c)' },
                    },
                  },
                  partitioner: { kind: 'string', enum: ['hash', 'default'], default: 'hash', doc: 'hash = consistent hash of the key over the partitions; default = librdkafka’s partitioner' },
                  headers: {
                    kind: 'array',
                    doc: 'request headers copied into Kafka headers (the request id always is)',
                    items: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
                  },
                  allowSensitiveHeaders: { kind: 'boolean', default: false, doc: 'allow Authorization/Cookie in headers' },
                  mode: { kind: 'string', enum: ['sync', 'async'], default: 'sync', doc: 'sync = 200 after the broker acknowledged; async = 202 once queued (Prefer: respond-async selects async per request)' },
                  maxRecordBytes: { kind: 'integer', min: 1, max: 64 * 1024 * 1024, default: 1024 * 1024, doc: 'largest record value; larger gets 413' },
                  deliveryTimeoutMs: ms('sync mode: longest wait for the acknowledgement; past it 504', 10000, undefined, 1),
                  transactional: { kind: 'boolean', default: false, doc: 'produce each request’s records in one transaction (all or nothing); needs kafka.transactions' },
                },
              },
              respond: {
                kind: 'object',
                doc: 'direct response',
                properties: {
                  status: { kind: 'integer', min: 200, max: 599, default: 200, doc: 'status' },
                  body: { kind: 'string', default: '', doc: 'body' },
                  contentType: { kind: 'string', default: 'text/plain; charset=utf-8', doc: 'content type' },
                  headers: headerMap,
                },
              },
            },
          },
          timeouts: {
            kind: 'object',
            doc: 'route timeout overrides',
            properties: {
              ...upstreamTimeoutProps(false),
              totalMs: ms('whole request deadline (0 = none)', undefined),
            },
          },
          maxBodyBytes: { kind: 'integer', min: 0, max: 2 ** 50, doc: 'request body limit for this route' },
          acl: aclSchema('who may use this route'),
          retry: {
            kind: 'object',
            doc: 'retries to another host (absent = none beyond the reused-connection retry)',
            properties: {
              attempts: { kind: 'integer', min: 0, max: 10, default: 2, doc: 'retries after the first attempt' },
              on: {
                kind: 'array',
                minItems: 1,
                default: ['connect', 'reset', '502', '503', '504'],
                doc: 'what is retried: connect (nothing was sent), timeout, reset (or malformed response), and upstream statuses',
                items: { kind: 'string', enum: ['connect', 'timeout', 'reset', '502', '503', '504', '5xx'], doc: 'a retry condition' },
              },
              idempotencyKey: { kind: 'boolean', default: false, doc: 'also retry POST/PATCH requests that carry an Idempotency-Key header' },
              backoffBaseMs: ms('full-jitter exponential back-off: base', 25),
              backoffMaxMs: ms('full-jitter exponential back-off: cap', 250),
              maxRetryAfterMs: ms('an upstream Retry-After up to this long is waited for; longer: the response goes to the client', 1000),
              budgetPercent: { kind: 'integer', min: 0, max: 100, default: 20, doc: 'retries in flight at most this share of the active requests (per worker and group)' },
              budgetMin: { kind: 'integer', min: 0, max: 100000, default: 3, doc: 'retries in flight always allowed regardless of budgetPercent' },
            },
          },
          rateLimit: {
            kind: 'object',
            doc: 'token bucket for the whole instance (all workers), per key',
            required: ['rate'],
            properties: {
              key: {
                kind: 'string',
                default: 'client_ip',
                pattern: RATE_KEY,
                patternDoc: 'parts joined by +: client_ip, route, header:NAME',
                doc: 'bucket key; requests whose key is empty (header absent) are not limited, as in nginx',
              },
              rate: { kind: 'number', min: 0.001, max: 1000000, doc: 'tokens per second (0.5 = one every two seconds)' },
              burst: { kind: 'integer', min: 1, max: 1000000, doc: 'bucket size (default: the rate rounded up)' },
              zone: { kind: 'string', pattern: NAME, patternDoc: 'letters, digits, _ . -, up to 64', doc: 'routes naming the same zone share buckets (default: the route alone)' },
              headers: {
                kind: 'string',
                enum: ['rejected', 'always'],
                default: 'rejected',
                doc: 'send the RateLimit and RateLimit-Policy fields on 429 only, or on every response of the route',
              },
            },
          },
        },
      },
    },
  },
};

/** Whether anything in `cfg` produces to Kafka (then the producer process runs). */
export function usesKafka(cfg: SluiceConfig): boolean {
  return cfg.events.enabled || cfg.routes.some((r) => r.action.type === 'kafka');
}

// ---------------------------------------------------------------- loading

export class ConfigError extends SluiceError {
  readonly issues: readonly SchemaIssue[];
  constructor(issues: readonly SchemaIssue[], source: string) {
    super('SLUICE_ERR_CONFIG', `${source}:\n${issues.map((i) => `  ${i.path} ${i.message}`).join('\n')}`);
    this.issues = issues;
  }
}

/** What the listener front does for a listener (src/workers/http/downstream/front.ts). */
export interface FrontSettings {
  /** PROXY protocol versions read at connection start; null: none. */
  readonly proxyProtocol: 'v1' | 'v2' | 'any' | null;
  /** Client certificates asked for (HTTPS only); null: none. */
  readonly clientAuth: { readonly required: boolean } | null;
}

/**
 * Whether a listener runs through the listener front, and with what: for PROXY v1 (or v1/v2
 * detected) and for client certificates, which uWS 20.30 cannot do. null: uWS takes the
 * connections itself (proxyProtocol off, or v2 parsed by uWS).
 */
export function frontOf(proxyProtocol: ProxyProtocolSetting, clientAuth?: { readonly required: boolean }): FrontSettings | null {
  if (clientAuth === undefined) return proxyProtocol === 'v1' || proxyProtocol === 'any' ? { proxyProtocol, clientAuth: null } : null;
  // With the front in the way, it must read a v2 header too: uWS would take the front's own.
  return { proxyProtocol: proxyProtocol === 'off' ? null : proxyProtocol, clientAuth: { required: clientAuth.required } };
}

export const ENV_VARS = envVars(CONFIG_SCHEMA);

/** Reads a YAML or JSON file (by extension; YAML is a superset of JSON anyway). */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '(file)', message: `cannot be read: ${(e as Error).message}` }], path);
  }
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError([{ path: '(file)', message: `is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}` }], path);
  }
}

/** Applies `SLUICE_*` overrides onto a raw (unvalidated) config object, in place. */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, issues: SchemaIssue[]): void {
  for (const v of ENV_VARS) {
    const text = env[v.name];
    if (text === undefined || text === '') continue;
    let value: unknown;
    try {
      value = parseEnvValue(v, text);
    } catch (e) {
      issues.push({ path: v.path.join('.'), message: `(from ${v.name}) ${(e as Error).message}` });
      continue;
    }
    let node = raw;
    for (const key of v.path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[v.path[v.path.length - 1] as string] = value;
  }
}

/** Validates a raw config (already merged with env), runs semantic checks, deep-freezes. */
export function buildConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = {}): SluiceConfig {
  const issues: SchemaIssue[] = [];
  const base = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : raw;
  if (typeof base === 'object' && base !== null && !Array.isArray(base)) applyEnv(base as Record<string, unknown>, env, issues);
  const cfg = validate(CONFIG_SCHEMA, base, '', issues) as SluiceConfig | undefined;
  if (issues.length === 0 && cfg !== undefined) semanticChecks(cfg, issues);
  if (issues.length > 0 || cfg === undefined) throw new ConfigError(issues, source);
  const resolved: SluiceConfig = cfg.workers === 0 ? { ...cfg, workers: Math.max(1, cpus().length) } : cfg;
  return deepFreeze(resolved);
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  return buildConfig(readConfigFile(path), path, env);
}

function checkRegex(src: string, path: string, issues: SchemaIssue[]): void {
  try {
    new RegExp(src);
  } catch (e) {
    issues.push({ path, message: `is not a valid regular expression: ${(e as Error).message}` });
  }
}

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

function semanticChecks(cfg: SluiceConfig, issues: SchemaIssue[]): void {
  const names = new Set<string>();
  const zones = new Map<string, { rate: number; burst: number; at: string }>();
  const ups = cfg.upstreams;
  const refCheck = (name: string, path: string): void => {
    if (!Object.prototype.hasOwnProperty.call(ups, name)) {
      const known = Object.keys(ups);
      issues.push({ path, message: `names an unknown upstream ${JSON.stringify(name)} (defined: ${known.length ? known.join(', ') : 'none'})` });
    }
  };
  cfg.routes.forEach((r, i) => {
    const p = `routes[${i}]`;
    if (names.has(r.name)) issues.push({ path: `${p}.name`, message: `duplicates the route name ${JSON.stringify(r.name)}` });
    names.add(r.name);
    if (r.match.path?.regex !== undefined) checkRegex(r.match.path.regex, `${p}.match.path.regex`, issues);
    r.match.headers?.forEach((h, j) => {
      if (h.regex !== undefined) checkRegex(h.regex, `${p}.match.headers[${j}].regex`, issues);
    });
    if (r.retry !== undefined && r.retry.backoffMaxMs < r.retry.backoffBaseMs) {
      issues.push({ path: `${p}.retry.backoffMaxMs`, message: `must be >= backoffBaseMs (${r.retry.backoffBaseMs}), got ${r.retry.backoffMaxMs}` });
    }
    if (r.retry !== undefined && r.action.type !== 'proxy' && r.action.type !== 'split') {
      issues.push({ path: `${p}.retry`, message: `only applies to proxy and split routes (this one is ${r.action.type})` });
    }
    if (r.rateLimit !== undefined) {
      const zone = r.rateLimit.zone;
      const burst = r.rateLimit.burst ?? Math.ceil(r.rateLimit.rate);
      if (zone !== undefined) {
        const first = zones.get(zone);
        if (first === undefined) zones.set(zone, { rate: r.rateLimit.rate, burst, at: `${p}.rateLimit` });
        else if (first.rate !== r.rateLimit.rate || first.burst !== burst) {
          issues.push({ path: `${p}.rateLimit.zone`, message: `${zone} is shared with ${first.at}, which sets another rate or burst (a zone has one policy)` });
        }
      }
      const problem = policyProblem(r.rateLimit.rate, r.rateLimit.burst ?? Math.ceil(r.rateLimit.rate));
      if (problem !== null) issues.push({ path: `${p}.rateLimit`, message: problem });
    }
    if (r.rewrite !== undefined && r.match.path?.prefix === undefined) {
      issues.push({ path: `${p}.rewrite`, message: 'needs match.path.prefix (the prefix it replaces)' });
    }
    const a = r.action;
    switch (a.type) {
      case 'proxy':
        refCheck(a.upstream, `${p}.action.upstream`);
        break;
      case 'split':
        a.targets.forEach((t, j) => refCheck(t.upstream, `${p}.action.targets[${j}].upstream`));
        if (a.targets.every((t) => t.weight === 0)) issues.push({ path: `${p}.action.targets`, message: 'must have a target with weight > 0' });
        break;
      case 'redirect':
        if (![301, 302, 303, 307, 308].includes(a.status)) {
          issues.push({ path: `${p}.action.status`, message: `must be one of 301, 302, 303, 307, 308, got ${a.status}` });
        }
        break;
      case 'kafka': {
        if (a.key?.pathParam !== undefined) {
          const re = r.match.path?.regex;
          if (re === undefined || !re.includes(`(?<${a.key.pathParam}>`)) {
            issues.push({ path: `${p}.action.key.pathParam`, message: `needs match.path.regex with a named group (?<${a.key.pathParam}>...)` });
          }
        }
        if (a.key?.jsonField !== undefined && a.format === 'raw') {
          issues.push({ path: `${p}.action.key.jsonField`, message: 'needs format ndjson or json-array (raw bodies are not parsed)' });
        }
        if (a.transactional && !cfg.kafka.transactions) {
          issues.push({ path: `${p}.action.transactional`, message: 'needs kafka.transactions: true (the transactional producer)' });
        }
        (a.headers ?? []).forEach((h, j) => {
          if (!a.allowSensitiveHeaders && SENSITIVE_HEADERS.includes(h.toLowerCase())) {
            issues.push({ path: `${p}.action.headers[${j}]`, message: `${h} is sensitive; set allowSensitiveHeaders: true to copy it` });
          }
        });
        break;
      }
      case 'respond':
        break;
    }
  });
  (cfg.events.headers ?? []).forEach((h, j) => {
    if (!cfg.events.allowSensitiveHeaders && SENSITIVE_HEADERS.includes(h.toLowerCase())) {
      issues.push({ path: `events.headers[${j}]`, message: `${h} is sensitive; set allowSensitiveHeaders: true to copy it` });
    }
  });
  kafkaSemanticChecks(cfg.kafka, issues);
  let hostEntries = 0;
  for (const [name, u] of Object.entries(ups)) {
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
  const aclCheck = (rules: readonly AclRule[] | undefined, path: string): void => {
    rules?.forEach((r, i) => {
      const text = r.allow ?? r.deny ?? '';
      const parsed = parseCidr(text);
      if (typeof parsed === 'string') issues.push({ path: `${path}[${i}].${r.allow !== undefined ? 'allow' : 'deny'}`, message: parsed });
    });
  };
  aclCheck(cfg.listen.acl, 'listen.acl');
  aclCheck(cfg.tls?.acl, 'tls.acl');
  listenerTlsChecks(cfg.tls, issues);
  cfg.routes.forEach((r, i) => aclCheck(r.acl, `routes[${i}].acl`));
  for (const [name, u] of Object.entries(ups)) {
    const t = u.tls;
    if (t !== undefined && (t.certFile === undefined) !== (t.keyFile === undefined)) {
      issues.push({ path: `upstreams.${name}.tls.${t.certFile === undefined ? 'certFile' : 'keyFile'}`, message: 'is needed too: a client certificate takes certFile and keyFile' });
    } else if (t !== undefined) upstreamTlsFileChecks(t, `upstreams.${name}.tls`, issues);
  }
  // Opened once here (created if missing, as nginx -t does) so that a path the workers
  // cannot append to fails the start or the reload, not every request. Only when the access
  // log is on: the file is not touched otherwise.
  if (cfg.log.access && cfg.log.accessFile !== '') {
    try {
      closeSync(openSync(cfg.log.accessFile, 'a'));
    } catch (e) {
      issues.push({ path: 'log.accessFile', message: `cannot be opened for appending: ${(e as Error).message}` });
    }
  }
  const ports: [string, string, number][] = [['listen.port', cfg.listen.host, cfg.listen.port]];
  if (cfg.tls !== undefined) ports.push(['tls.port', cfg.tls.host ?? cfg.listen.host, cfg.tls.port]);
  if (cfg.admin.enabled) ports.push(['admin.port', cfg.admin.host, cfg.admin.port]);
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      const [pa, , a] = ports[i] as [string, string, number];
      const [pb, , b] = ports[j] as [string, string, number];
      if (a !== 0 && a === b) issues.push({ path: pa, message: `${a} is also ${pb}` });
    }
  }
  const size = cfg.rateLimit.tableSize;
  if ((size & (size - 1)) !== 0) issues.push({ path: 'rateLimit.tableSize', message: `must be a power of two, got ${size}` });
}

/** Upstream host entries (group × address) the shared host-state table holds. */
export const MAX_HOST_ENTRIES = 4096;

/** Identity of a host entry: pools, host-state slots and health checks are keyed by it. */
export function hostKey(group: string, address: string): string {
  return `${group}|${address}`;
}
