/**
 * Upstream timeouts: the top-level `timeouts` section (defaults, `SLUICE_*` variables) and the
 * same options as overrides, without defaults, for upstream groups and routes.
 */
import type { IntegerSchema, ObjectSchema, Static } from '../schema';
import { ms, type Defaulted } from './common';

type UpstreamTimeoutProps = Readonly<Record<'connectMs' | 'headerMs' | 'idleMs', IntegerSchema>>;

export function upstreamTimeoutProps(withDefaults: true): Defaulted<UpstreamTimeoutProps>;
export function upstreamTimeoutProps(withDefaults: false): UpstreamTimeoutProps;
export function upstreamTimeoutProps(withDefaults: boolean): UpstreamTimeoutProps {
  return {
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
  };
}

export const TIMEOUTS_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'upstream timeouts (route and upstream settings override them)',
  properties: {
    ...upstreamTimeoutProps(true),
    totalMs: ms('whole request deadline from arrival to the last response byte (0 = none)', 0, 'SLUICE_TOTAL_TIMEOUT_MS'),
  },
} as const satisfies ObjectSchema;

export type TimeoutsConfig = Static<typeof TIMEOUTS_SCHEMA>;
export type UpstreamTimeouts = Omit<TimeoutsConfig, 'totalMs'>;
