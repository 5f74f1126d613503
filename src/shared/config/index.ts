/**
 * Sluice's configuration: the loader (file + environment → validated, semantically checked,
 * deep-frozen value) and the one schema, composed from one file per section (./listeners.ts,
 * ./routes.ts, ...). Every type is derived from the schema with `Static<>`; nothing here
 * declares a config shape by hand. The primary thread loads it once per start or reload and
 * hands the frozen value to the workers; nothing else parses configuration. docs/configuration.md.
 */
import { cpus } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { readFileSync } from 'node:fs';
import { SluiceError } from '../errors';
import { KAFKA_SCHEMA, kafkaSemanticChecks } from '../kafka-config';
import { deepFreeze, envVars, parseEnvValue, typedObject, validate, type ObjectSchema, type SchemaIssue, type Static } from '../schema';
import { listenerTlsChecks } from '../tls-certs';
import type { Check } from './common';
import { EVENTS_SCHEMA, eventsChecks } from './events';
import { LIMITS_SCHEMA, PROXY_SCHEMA } from './limits';
import { ADMIN_SCHEMA, LISTEN_SCHEMA, listenerAclChecks, portChecks, TLS_SCHEMA } from './listeners';
import { POOL_SCHEMA } from './pool';
import { LOG_SCHEMA, logChecks, RATE_LIMIT_TABLE_SCHEMA, rateLimitTableChecks, SHUTDOWN_SCHEMA, WORKERS_SCHEMA } from './process';
import { routeAclChecks, routeChecks, ROUTES_SCHEMA } from './routes';
import { TIMEOUTS_SCHEMA } from './timeouts';
import { upstreamChecks, UPSTREAMS_SCHEMA, upstreamTlsChecks } from './upstreams';

export type { AclRule } from './common';
export { SENSITIVE_HEADERS, type EventsConfig } from './events';
export type { LimitsConfig, ProxyConfig } from './limits';
export { frontOf, type AdminConfig, type CertPair, type FrontSettings, type ListenConfig, type ProxyProtocolSetting, type SniCertificate, type TlsListenerConfig } from './listeners';
export type { PoolConfig } from './pool';
export type { LogConfig, LogLevel, RateLimitTableConfig, ShutdownConfig } from './process';
export type {
  HeaderEdits,
  HeaderMatch,
  KafkaKeySource,
  KafkaRouteAction,
  PathMatch,
  RateLimitConfig,
  RetryConfig,
  RetryOn,
  RouteAction,
  RouteConfig,
  RouteMatch,
  RouteTimeouts,
} from './routes';
export type { TimeoutsConfig, UpstreamTimeouts } from './timeouts';
export {
  hostKey,
  MAX_HOST_ENTRIES,
  type Balance,
  type BreakerConfig,
  type FailureKind,
  type HealthCheckConfig,
  type HostConfig,
  type OutlierConfig,
  type UpstreamConfig,
  type UpstreamTlsConfig,
} from './upstreams';

// The order of the properties is the order of validation messages and of the README's table.
export const CONFIG_SCHEMA = typedObject({
  kind: 'object',
  doc: 'Sluice configuration',
  required: ['routes'],
  properties: {
    workers: WORKERS_SCHEMA,
    listen: LISTEN_SCHEMA,
    tls: TLS_SCHEMA,
    admin: ADMIN_SCHEMA,
    limits: LIMITS_SCHEMA,
    timeouts: TIMEOUTS_SCHEMA,
    pool: POOL_SCHEMA,
    proxy: PROXY_SCHEMA,
    log: LOG_SCHEMA,
    shutdown: SHUTDOWN_SCHEMA,
    rateLimit: RATE_LIMIT_TABLE_SCHEMA,
    kafka: KAFKA_SCHEMA,
    events: EVENTS_SCHEMA,
    upstreams: UPSTREAMS_SCHEMA,
    routes: ROUTES_SCHEMA,
  },
} as const satisfies ObjectSchema);

export type SluiceConfig = Static<typeof CONFIG_SCHEMA>;

/**
 * The checks the schema cannot express, run in this order once the schema found nothing
 * wrong (the order is the order of the messages; all of them run, so one run reports every
 * problem).
 */
const SECTION_CHECKS: readonly Check<SluiceConfig>[] = [
  routeChecks,
  eventsChecks,
  (cfg, issues) => kafkaSemanticChecks(cfg.kafka, issues),
  upstreamChecks,
  listenerAclChecks,
  (cfg, issues) => listenerTlsChecks(cfg.tls, issues),
  routeAclChecks,
  upstreamTlsChecks,
  logChecks,
  portChecks,
  rateLimitTableChecks,
];

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
  if (issues.length === 0 && cfg !== undefined) for (const check of SECTION_CHECKS) check(cfg, issues);
  if (issues.length > 0 || cfg === undefined) throw new ConfigError(issues, source);
  const resolved: SluiceConfig = cfg.workers === 0 ? { ...cfg, workers: Math.max(1, cpus().length) } : cfg;
  return deepFreeze(resolved);
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  return buildConfig(readConfigFile(path), path, env);
}
