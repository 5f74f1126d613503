/**
 * The top-level `kafka` configuration section: its schema (in the format of ./schema.ts, with
 * environment variables, e.g. SLUICE_KAFKA_BROKERS), the `KafkaConfig` type derived from it, the semantic checks that run
 * after the schema, and `librdkafkaConfig()`, the one place that turns a KafkaConfig into
 * librdkafka producer properties (profile, then explicit overrides, then security, then
 * `extra`). docs/kafka.md documents every setting this produces.
 *
 * Must never: import the Kafka client (this module is loaded by HTTP worker threads, where the
 * client aborts the process), read the environment or the file system, or import anything
 * outside src/shared.
 */
import { deepFreeze, envVars, parseEnvValue, typedObject, validate, type IntegerSchema, type ObjectSchema, type SchemaIssue, type Static, type StringSchema } from './schema';

// ---------------------------------------------------------------- types

/** What the section's schema produces (KAFKA_SCHEMA's `doc` strings describe each option). */
export type KafkaConfig = Static<typeof KAFKA_SCHEMA>;
export type KafkaSecurityConfig = KafkaConfig['security'];
export type KafkaProfile = KafkaConfig['profile'];
export type KafkaCompression = NonNullable<KafkaConfig['compression']>;
/** Strings, so that YAML and the environment spell them the same way (`acks: "1"`). */
export type KafkaAcks = KafkaConfig['acks'];
export type KafkaSecurityProtocol = KafkaSecurityConfig['protocol'];
export type KafkaSaslMechanism = KafkaSecurityConfig['saslMechanism'];

/** librdkafka producer properties, as `new Producer(...)` takes them. */
export type LibrdkafkaConfig = Record<string, string | number | boolean>;

// ---------------------------------------------------------------- profiles

/**
 * The two producer profiles (docs/kafka.md, "Profiles"). They set batching and compression
 * only; durability (acks, idempotence) is a separate, explicit choice. The guide's
 * high-throughput example pairs `acks=1` with `enable.idempotence=true`, which librdkafka
 * refuses, so Sluice does not copy it.
 */
export const KAFKA_PROFILES: Readonly<Record<KafkaProfile, Readonly<LibrdkafkaConfig>>> = Object.freeze({
  throughput: Object.freeze({
    'linger.ms': 20,
    'batch.num.messages': 10000,
    'batch.size': 1048576,
    'compression.type': 'zstd',
  }),
  latency: Object.freeze({
    'linger.ms': 1,
    'batch.num.messages': 1000,
    'batch.size': 65536,
    'compression.type': 'lz4',
  }),
});

/** librdkafka's ceiling for max.in.flight with enable.idempotence (ordering guarantee). */
export const IDEMPOTENT_MAX_IN_FLIGHT = 5;

/** Properties that Sluice manages itself and `extra` may not set. */
export const KAFKA_RESERVED_PROPERTIES: readonly string[] = [
  'transactional.id',
  'dr_cb',
  'dr_msg_cb',
  // Sluice sets it on its fire-and-forget producers only; on the main one it would silence
  // every sync route's report.
  'delivery.report.only.error',
  'event_cb',
  'rebalance_cb',
  'offset_commit_cb',
  'group.id',
];

// ---------------------------------------------------------------- schema

const INT32_MAX = 2147483647;
const BROKERS = /^\s*[^\s,]+:\d{1,5}\s*(,\s*[^\s,]+:\d{1,5}\s*)*$/;
const PROPERTY = /^[a-z][a-z0-9._-]*$/;

function int(doc: string, min: number, max: number, def: number, env?: string): IntegerSchema & { readonly default: number };
function int(doc: string, min: number, max: number, def?: undefined, env?: string): IntegerSchema;
function int(doc: string, min: number, max: number, def?: number, env?: string): IntegerSchema {
  return {
    kind: 'integer',
    min,
    max,
    doc,
    ...(def === undefined ? {} : { default: def }),
    ...(env === undefined ? {} : { env }),
  };
}

const path = (doc: string, env: string): StringSchema => ({ kind: 'string', minLength: 1, env, doc });

export const KAFKA_SCHEMA = typedObject({
  kind: 'object',
  defaultEmpty: true,
  doc: 'Kafka delivery: the producer process and the per-worker links to it (docs/kafka.md)',
  properties: {
    brokers: {
      kind: 'string',
      default: '127.0.0.1:19092',
      pattern: BROKERS,
      patternDoc: 'a comma-separated list of host:port',
      env: 'SLUICE_KAFKA_BROKERS',
      doc: 'bootstrap brokers, comma-separated host:port (bootstrap.servers)',
    },
    clientId: {
      kind: 'string',
      default: 'sluice',
      minLength: 1,
      env: 'SLUICE_KAFKA_CLIENT_ID',
      doc: 'client.id sent to the brokers (quotas, broker logs)',
    },
    instanceId: {
      kind: 'string',
      default: '',
      pattern: /^[A-Za-z0-9._-]{0,200}$/,
      patternDoc: 'letters, digits, . _ - (up to 200)',
      env: 'SLUICE_KAFKA_INSTANCE_ID',
      doc: 'names this instance in transactional.id = sluice-<instanceId>-txn; must be unique per running instance ("" = host name)',
    },
    profile: {
      kind: 'string',
      enum: ['throughput', 'latency'],
      default: 'throughput',
      env: 'SLUICE_KAFKA_PROFILE',
      doc: 'producer profile: throughput (linger 20 ms, 1 MiB batches, zstd) or latency (linger 1 ms, 64 KiB batches, lz4)',
    },
    compression: {
      kind: 'string',
      enum: ['zstd', 'lz4', 'snappy', 'gzip', 'none'],
      env: 'SLUICE_KAFKA_COMPRESSION',
      doc: "compression.type; overrides the profile's",
    },
    lingerMs: int("linger.ms: how long a batch waits to fill; overrides the profile's", 0, 900000, undefined, 'SLUICE_KAFKA_LINGER_MS'),
    batchBytes: int("batch.size: largest batch per partition in bytes; overrides the profile's", 1, INT32_MAX, undefined, 'SLUICE_KAFKA_BATCH_BYTES'),
    batchMessages: int(
      "batch.num.messages: most records per batch; overrides the profile's",
      1,
      1000000,
      undefined,
      'SLUICE_KAFKA_BATCH_MESSAGES',
    ),
    acks: {
      kind: 'string',
      enum: ['all', '1', '0'],
      default: 'all',
      env: 'SLUICE_KAFKA_ACKS',
      doc: 'acks: all (every in-sync replica), 1 (leader only) or 0 (none); quote 1 and 0 in YAML; idempotence needs all',
    },
    idempotence: {
      kind: 'boolean',
      default: true,
      env: 'SLUICE_KAFKA_IDEMPOTENCE',
      doc: 'enable.idempotence: no duplicates or reordering on retries (forces acks=all, max.in.flight <= 5)',
    },
    queueMaxMessages: int(
      "queue.buffering.max.messages: records the producer holds before produce() reports queue full",
      1,
      INT32_MAX,
      100000,
      'SLUICE_KAFKA_QUEUE_MAX_MESSAGES',
    ),
    queueMaxKBytes: int(
      'queue.buffering.max.kbytes: KiB of records the producer holds before produce() reports queue full',
      1,
      INT32_MAX,
      65536,
      'SLUICE_KAFKA_QUEUE_MAX_KBYTES',
    ),
    messageTimeoutMs: int(
      'message.timeout.ms: a record not acknowledged within this fails (counted); also bounds waiting for a broker that is down',
      100,
      INT32_MAX,
      30000,
      'SLUICE_KAFKA_MESSAGE_TIMEOUT_MS',
    ),
    statisticsIntervalMs: int(
      'statistics.interval.ms: librdkafka statistics for /metrics (0 = off)',
      0,
      86400000,
      5000,
      'SLUICE_KAFKA_STATISTICS_INTERVAL_MS',
    ),
    transactions: {
      kind: 'boolean',
      default: false,
      env: 'SLUICE_KAFKA_TRANSACTIONS',
      doc: 'start the transactional producer (all-or-nothing batches)',
    },
    transactionTimeoutMs: int(
      'transaction.timeout.ms of the transactional producer (at most the broker transaction.max.timeout.ms)',
      1000,
      INT32_MAX,
      60000,
      'SLUICE_KAFKA_TRANSACTION_TIMEOUT_MS',
    ),
    security: {
      kind: 'object',
      defaultEmpty: true,
      doc: 'TLS and SASL, passed through to librdkafka',
      properties: {
        protocol: {
          kind: 'string',
          enum: ['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'],
          default: 'plaintext',
          env: 'SLUICE_KAFKA_SECURITY_PROTOCOL',
          doc: 'security.protocol',
        },
        saslMechanism: {
          kind: 'string',
          enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'],
          default: 'PLAIN',
          env: 'SLUICE_KAFKA_SASL_MECHANISM',
          doc: 'sasl.mechanisms (with protocol sasl_plaintext or sasl_ssl)',
        },
        username: { kind: 'string', minLength: 1, env: 'SLUICE_KAFKA_SASL_USERNAME', doc: 'sasl.username' },
        password: { kind: 'string', minLength: 1, env: 'SLUICE_KAFKA_SASL_PASSWORD', doc: 'sasl.password (prefer the variable to the file)' },
        caFile: path('ssl.ca.location: PEM file of the CA certificates that sign the brokers', 'SLUICE_KAFKA_SSL_CA_FILE'),
        certFile: path('ssl.certificate.location: client certificate (PEM) for mutual TLS', 'SLUICE_KAFKA_SSL_CERT_FILE'),
        keyFile: path('ssl.key.location: client private key (PEM) for mutual TLS', 'SLUICE_KAFKA_SSL_KEY_FILE'),
        keyPassword: { kind: 'string', minLength: 1, env: 'SLUICE_KAFKA_SSL_KEY_PASSWORD', doc: 'ssl.key.password' },
        verifyHostname: {
          kind: 'boolean',
          default: true,
          env: 'SLUICE_KAFKA_SSL_VERIFY_HOSTNAME',
          doc: "check the broker certificate's host name (ssl.endpoint.identification.algorithm https | none)",
        },
      },
    },
    extra: {
      kind: 'map',
      defaultEmpty: true,
      keyPattern: PROPERTY,
      keyDoc: 'a librdkafka property name',
      values: { kind: 'string', doc: 'property value' },
      doc: 'raw librdkafka producer properties, applied last (see docs/kafka.md for the ones Sluice manages)',
    },
    socketBufferBytes: int(
      'per HTTP worker: bytes of records encoded for the producer but not yet taken by the kernel; past it produce() refuses (503 or counted drop)',
      65536,
      1073741824,
      8388608,
      'SLUICE_KAFKA_SOCKET_BUFFER_BYTES',
    ),
    flushTimeoutMs: int(
      'graceful shutdown: how long the producer may take to deliver what it accepted (the rest is counted as undelivered)',
      0,
      3600000,
      10000,
      'SLUICE_KAFKA_FLUSH_TIMEOUT_MS',
    ),
    nativeFireAndForget: {
      kind: 'boolean',
      default: true,
      env: 'SLUICE_KAFKA_NATIVE_FIRE_AND_FORGET',
      doc: "fire-and-forget records (request events, records of async-only Kafka routes) go from the link straight into librdkafka through the native addon; false = events through the Kafka client's two fire-and-forget clients, async route records through its main client",
    },
    fireAndForgetLingerMs: int(
      "linger.ms of the clients that send fire-and-forget records (request events, records of async-only Kafka routes): nobody waits for them, so they fill bigger batches than the profile's linger.ms (fewer requests to the broker, less CPU per record)",
      0,
      900000,
      100,
      'SLUICE_KAFKA_FIRE_AND_FORGET_LINGER_MS',
    ),
    linkLingerMs: int(
      'per HTTP worker: how long fire-and-forget records (request events, records of async-only Kafka routes) wait for more before one write hands them to the producer process; a record with a callback, or 512 KiB waiting, sends them at once (0 = at the end of the event-loop turn)',
      0,
      10000,
      100,
      'SLUICE_KAFKA_LINK_LINGER_MS',
    ),
    socketDir: {
      kind: 'string',
      default: '',
      // The socket file adds ~30 characters; Unix socket paths end at 107 bytes.
      pattern: /^(\/.{0,69})?$/,
      patternDoc: 'an absolute path of at most 70 characters (Unix socket paths are short), or "" for the OS temp dir',
      env: 'SLUICE_KAFKA_SOCKET_DIR',
      doc: 'directory of the producer\'s Unix socket ("" = the OS temp dir)',
    },
  },
} as const satisfies ObjectSchema);

// ---------------------------------------------------------------- librdkafka properties

/**
 * The producer's librdkafka properties: profile, then the explicit overrides, then durability,
 * limits and security, then `extra` verbatim. Not included (the producer process adds them):
 * `dr_cb`, and for the transactional producer `transactional.id`.
 */
export function librdkafkaConfig(cfg: KafkaConfig): LibrdkafkaConfig {
  const out: LibrdkafkaConfig = {
    'bootstrap.servers': cfg.brokers.replace(/\s+/g, ''),
    'client.id': cfg.clientId,
    ...KAFKA_PROFILES[cfg.profile],
  };
  if (cfg.compression !== undefined) out['compression.type'] = cfg.compression;
  if (cfg.lingerMs !== undefined) out['linger.ms'] = cfg.lingerMs;
  if (cfg.batchBytes !== undefined) out['batch.size'] = cfg.batchBytes;
  if (cfg.batchMessages !== undefined) out['batch.num.messages'] = cfg.batchMessages;
  out['acks'] = cfg.acks;
  out['enable.idempotence'] = cfg.idempotence;
  if (cfg.idempotence) {
    // librdkafka would force these too; set them so that what we log is what runs.
    out['acks'] = 'all';
    out['max.in.flight.requests.per.connection'] = IDEMPOTENT_MAX_IN_FLIGHT;
  }
  out['queue.buffering.max.messages'] = cfg.queueMaxMessages;
  out['queue.buffering.max.kbytes'] = cfg.queueMaxKBytes;
  out['message.timeout.ms'] = cfg.messageTimeoutMs;
  out['statistics.interval.ms'] = cfg.statisticsIntervalMs;
  out['socket.keepalive.enable'] = true;

  const sec = cfg.security;
  out['security.protocol'] = sec.protocol;
  if (sec.protocol === 'sasl_plaintext' || sec.protocol === 'sasl_ssl') {
    out['sasl.mechanisms'] = sec.saslMechanism;
    if (sec.username !== undefined) out['sasl.username'] = sec.username;
    if (sec.password !== undefined) out['sasl.password'] = sec.password;
  }
  if (sec.protocol === 'ssl' || sec.protocol === 'sasl_ssl') {
    if (sec.caFile !== undefined) out['ssl.ca.location'] = sec.caFile;
    if (sec.certFile !== undefined) out['ssl.certificate.location'] = sec.certFile;
    if (sec.keyFile !== undefined) out['ssl.key.location'] = sec.keyFile;
    if (sec.keyPassword !== undefined) out['ssl.key.password'] = sec.keyPassword;
    out['ssl.endpoint.identification.algorithm'] = sec.verifyHostname ? 'https' : 'none';
  }
  for (const [k, v] of Object.entries(cfg.extra)) out[k] = v;
  return out;
}

/**
 * How long a main client may deliver nothing, with the broker answering and its records
 * timing out, before the producer replaces it (docs/kafka.md, "Restarts and shutdown"):
 * twice message.timeout.ms, at least 10 s, doubled after each replacement that did not help,
 * at most 5 min.
 */
export function wedgedAfterMs(messageTimeoutMs: number, replacementsWithoutDelivery: number): number {
  return Math.min(300000, Math.max(10000, 2 * messageTimeoutMs) * 2 ** replacementsWithoutDelivery);
}

/** The same properties with secrets replaced, for logs. */
export function redactedLibrdkafkaConfig(conf: LibrdkafkaConfig): LibrdkafkaConfig {
  const out: LibrdkafkaConfig = {};
  for (const [k, v] of Object.entries(conf)) out[k] = /password|secret|sasl\.oauthbearer\.config/.test(k) ? '***' : v;
  return out;
}

function truthy(v: string | number | boolean | undefined): boolean {
  return v === true || v === 'true' || v === 1 || v === '1';
}

/**
 * Checks that the schema cannot express (SchemaIssue paths start with `base`): the
 * idempotence/acks contradiction (in the merged properties, so `extra` cannot sneak one in),
 * reserved properties in `extra`, SASL without credentials, TLS files without TLS, a
 * certificate without its key, and linger/transaction timeouts that librdkafka would refuse.
 */
export function kafkaSemanticChecks(cfg: KafkaConfig, issues: SchemaIssue[], base = 'kafka'): void {
  const at = (p: string): string => (base === '' ? p : `${base}.${p}`);
  for (const k of Object.keys(cfg.extra)) {
    if (KAFKA_RESERVED_PROPERTIES.includes(k)) issues.push({ path: at(`extra.${k}`), message: 'is managed by Sluice and cannot be set here' });
  }
  const conf = librdkafkaConfig(cfg);
  const idem = truthy(conf['enable.idempotence']);
  // librdkafkaConfig() writes acks=all under idempotence, so look at what was asked for.
  const extraAcks = cfg.extra['acks'] ?? cfg.extra['request.required.acks'];
  const asked = extraAcks ?? cfg.acks;
  if (idem && asked !== 'all' && asked !== '-1') {
    const where = extraAcks !== undefined ? 'extra.acks' : cfg.idempotence ? 'acks' : 'extra.enable.idempotence';
    issues.push({
      path: at(where),
      message:
        where === 'extra.enable.idempotence'
          ? `turns idempotence on, which needs acks all (got ${asked})`
          : `must be all when idempotence is on (got ${asked}); set idempotence: false to use acks ${asked}`,
    });
  }
  const inflight = Number(conf['max.in.flight.requests.per.connection'] ?? conf['max.in.flight'] ?? IDEMPOTENT_MAX_IN_FLIGHT);
  if (idem && inflight > IDEMPOTENT_MAX_IN_FLIGHT) {
    issues.push({ path: at('extra.max.in.flight.requests.per.connection'), message: `must be <= ${IDEMPOTENT_MAX_IN_FLIGHT} when idempotence is on` });
  }
  const sec = cfg.security;
  const sasl = sec.protocol === 'sasl_plaintext' || sec.protocol === 'sasl_ssl';
  const tls = sec.protocol === 'ssl' || sec.protocol === 'sasl_ssl';
  if (sasl) {
    if (sec.username === undefined) issues.push({ path: at('security.username'), message: `is required with protocol ${sec.protocol}` });
    if (sec.password === undefined) issues.push({ path: at('security.password'), message: `is required with protocol ${sec.protocol}` });
  } else if (sec.username !== undefined || sec.password !== undefined) {
    issues.push({ path: at('security.username'), message: `is only used with protocol sasl_plaintext or sasl_ssl (got ${sec.protocol})` });
  }
  if (!tls) {
    for (const k of ['caFile', 'certFile', 'keyFile', 'keyPassword'] as const) {
      if (sec[k] !== undefined) issues.push({ path: at(`security.${k}`), message: `is only used with protocol ssl or sasl_ssl (got ${sec.protocol})` });
    }
  }
  if ((sec.certFile === undefined) !== (sec.keyFile === undefined)) {
    issues.push({ path: at(sec.certFile === undefined ? 'security.certFile' : 'security.keyFile'), message: 'certFile and keyFile go together (mutual TLS)' });
  }
  const linger = Number(conf['linger.ms'] ?? 0);
  if (linger >= cfg.messageTimeoutMs) {
    issues.push({ path: at('messageTimeoutMs'), message: `must be greater than linger.ms (${linger})` });
  }
  if (cfg.fireAndForgetLingerMs >= cfg.messageTimeoutMs) {
    issues.push({ path: at('fireAndForgetLingerMs'), message: `must be less than messageTimeoutMs (${cfg.messageTimeoutMs})` });
  }
  if (cfg.transactions && cfg.messageTimeoutMs > cfg.transactionTimeoutMs) {
    issues.push({ path: at('messageTimeoutMs'), message: `must not exceed transactionTimeoutMs (${cfg.transactionTimeoutMs}) when transactions are on` });
  }
}

/** `transactional.id` of this instance's transactional producer. */
export function transactionalId(cfg: KafkaConfig, hostName: string): string {
  const inst = cfg.instanceId === '' ? hostName.replace(/[^A-Za-z0-9._-]/g, '_') : cfg.instanceId;
  return `sluice-${inst}-txn`;
}

/** The section's environment variables, with paths relative to the `kafka` section. */
export const KAFKA_ENV_VARS = envVars(KAFKA_SCHEMA);

/**
 * Validates a raw `kafka` section on its own (for the producer process, tools and tests; the
 * primary validates it as part of the whole config): environment overrides from `env`,
 * schema, semantic checks, deep freeze. Returns the issues instead of throwing.
 */
export function buildKafkaConfig(
  raw: unknown,
  env: NodeJS.ProcessEnv = {},
  base = 'kafka',
): { readonly config: KafkaConfig | undefined; readonly issues: readonly SchemaIssue[] } {
  const issues: SchemaIssue[] = [];
  const at = (p: string): string => (base === '' ? p : `${base}.${p}`);
  let value: unknown = raw;
  if (raw === undefined || (typeof raw === 'object' && raw !== null && !Array.isArray(raw))) {
    const copy = raw === undefined ? {} : (structuredClone(raw) as Record<string, unknown>);
    for (const v of KAFKA_ENV_VARS) {
      const text = env[v.name];
      if (text === undefined || text === '') continue;
      try {
        const parsed = parseEnvValue(v, text);
        let node = copy;
        for (const key of v.path.slice(0, -1)) {
          const next = node[key];
          if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
          node = node[key] as Record<string, unknown>;
        }
        node[v.path[v.path.length - 1] as string] = parsed;
      } catch (e) {
        issues.push({ path: at(v.path.join('.')), message: `(from ${v.name}) ${(e as Error).message}` });
      }
    }
    value = copy;
  }
  const cfg = validate(KAFKA_SCHEMA, value, base, issues) as KafkaConfig | undefined;
  if (issues.length === 0 && cfg !== undefined) kafkaSemanticChecks(cfg, issues, base);
  return { config: issues.length === 0 && cfg !== undefined ? deepFreeze(cfg) : undefined, issues };
}
