/**
 * The process-wide sections: `workers`, `log`, `shutdown` and `rateLimit` (the shared
 * rate-limit table; the per-route limits are in ./routes.ts).
 */
import { closeSync, openSync } from 'node:fs';
import type { IntegerSchema, ObjectSchema, Static } from '../schema';
import { ms, type Check } from './common';

export const WORKERS_SCHEMA = {
  kind: 'integer',
  min: 0,
  max: 256,
  default: 0,
  env: 'SLUICE_WORKERS',
  doc: 'HTTP worker threads (0 = one per CPU)',
} as const satisfies IntegerSchema;

export const LOG_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'logging',
  properties: {
    level: { kind: 'string', enum: ['debug', 'info', 'warn', 'error'], default: 'info', env: 'SLUICE_LOG_LEVEL', doc: 'structured log level' },
    access: { kind: 'boolean', default: false, env: 'SLUICE_ACCESS_LOG', doc: 'one JSON line per request (docs/access-log.md)' },
    accessFile: { kind: 'string', default: '', env: 'SLUICE_ACCESS_LOG_FILE', doc: 'write the access log to this file (appended; reopened on SIGHUP) instead of stdout' },
  },
} as const satisfies ObjectSchema;

export const SHUTDOWN_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'graceful shutdown',
  properties: {
    drainTimeoutMs: ms('SIGTERM: how long in-flight requests may take before workers are stopped', 30000, 'SLUICE_DRAIN_TIMEOUT_MS'),
  },
} as const satisfies ObjectSchema;

export const RATE_LIMIT_TABLE_SCHEMA = {
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
} as const satisfies ObjectSchema;

export type LogConfig = Static<typeof LOG_SCHEMA>;
export type LogLevel = LogConfig['level'];
export type ShutdownConfig = Static<typeof SHUTDOWN_SCHEMA>;
export type RateLimitTableConfig = Static<typeof RATE_LIMIT_TABLE_SCHEMA>;

export const logChecks: Check<{ readonly log: LogConfig }> = (cfg, issues) => {
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
};

export const rateLimitTableChecks: Check<{ readonly rateLimit: RateLimitTableConfig }> = (cfg, issues) => {
  const size = cfg.rateLimit.tableSize;
  if ((size & (size - 1)) !== 0) issues.push({ path: 'rateLimit.tableSize', message: `must be a power of two, got ${size}` });
};
