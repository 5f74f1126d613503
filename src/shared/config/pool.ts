/**
 * Upstream connection pools: the top-level `pool` section (defaults, `SLUICE_*` variables)
 * and the same options as per-group overrides, without defaults.
 */
import type { IntegerSchema, ObjectSchema, Static } from '../schema';
import { ms, type Defaulted } from './common';

type PoolProps = Readonly<Record<'maxIdlePerHost' | 'idleTimeoutMs' | 'maxConnectionsPerHost', IntegerSchema>>;

export function poolProps(withDefaults: true): Defaulted<PoolProps>;
export function poolProps(withDefaults: false): PoolProps;
export function poolProps(withDefaults: boolean): PoolProps {
  return {
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
  };
}

export const POOL_SCHEMA = { kind: 'object', defaultEmpty: true, doc: 'upstream connection pools', properties: poolProps(true) } as const satisfies ObjectSchema;

export type PoolConfig = Static<typeof POOL_SCHEMA>;
