/**
 * The built-in phases, in pipeline order: the one place that says which phases run and in
 * what order (docs/phases.md draws it). Each phase is only in the list when the
 * configuration gives it work, so that an unused feature costs nothing per request. A
 * plug-in phase goes into this list like the built-ins; the worker builds the hook arrays
 * from it once at start-up and on every reload.
 */
import type { EventsConfig, SluiceConfig } from '../../../shared/config';
import type { Logger } from '../../../shared/log';
import type { MetricsRecorder } from '../../../shared/metrics';
import type { RateLimitTable } from '../../../shared/rate-limit';
import type { RequestCtx } from '../context';
import type { KafkaLink } from '../kafka/link';
import type { ProxyPhases } from '../pipeline';
import type { Router } from '../router';
import type { Upstreams } from '../upstream/upstreams';
import { AccessLogPhase } from './access-log';
import { ListenerAclPhase, RouteAclPhase } from './acl';
import { ClientAddressPhase } from './client-address';
import { EventsPhase, type EventCounters } from './events';
import { ForwardingPhase } from './forwarding';
import { HostJudgePhase } from './host-judge';
import { BodyLimitPhase, LimitsPhase } from './limits';
import { MetricsPhase } from './metrics';
import { RateLimitPhase } from './rate-limit';
import { RetryPhase } from './retry';
import { RouteActionPhase } from './route-action';
import { RoutingPhase } from './routing';

/** What the built-in phases need from their worker (long-lived: kept across reloads). */
export interface PhaseDeps {
  readonly config: SluiceConfig;
  readonly router: Router;
  readonly upstreams: Upstreams;
  readonly log: Logger;
  readonly kafka: KafkaLink | null;
  readonly rateLimits: RateLimitTable;
  readonly metrics: MetricsRecorder;
  /** The access log's writer, or null when `log.access` is off. */
  readonly accessLine: ((line: string) => void) | null;
  /** Request events, when `events.enabled` and Kafka is configured; null otherwise. */
  readonly events: {
    readonly config: EventsConfig;
    readonly counters: BigInt64Array;
    readonly instance: string;
    readonly workerId: number;
    readonly stats: EventCounters;
  } | null;
}

export function builtinPhases(d: PhaseDeps): ProxyPhases<RequestCtx>[] {
  const { config, router, upstreams } = d;
  const phases: ProxyPhases<RequestCtx>[] = [];
  const add = (p: ProxyPhases<RequestCtx> & { readonly active?: boolean }): void => {
    if (p.active !== false) phases.push(p);
  };
  // accept: the limits on the head as read, the client address, the listener's ACL.
  add(new LimitsPhase(config));
  add(new ClientAddressPhase(config));
  add(new ListenerAclPhase(config));
  // requestFilter: request id, route match, the route's ACL, rate limit, the route's action.
  add(new ForwardingPhase(config));
  // Counts requests in flight per group for the retry budget; ahead of routing's upstreamPeer.
  if (config.routes.some((r) => r.retry !== undefined)) add(new RetryPhase());
  add(new RoutingPhase(router, upstreams));
  add(new RouteAclPhase(config));
  add(new RateLimitPhase(config.routes, d.rateLimits));
  add(new RouteActionPhase(d.kafka));
  // The route's body limit: on the declared length once routed, then on every body chunk.
  add(new BodyLimitPhase(config));
  // Host judgement only costs when some group keeps shared state (breaker, ejection, health, limits).
  if ([...upstreams.groups.values()].some((g) => g.state !== null)) add(new HostJudgePhase(d.log));
  // logging: metrics only when the admin listener can serve them (admin.* changes need a restart).
  if (config.admin.enabled) add(new MetricsPhase(d.metrics, config.routes));
  if (d.accessLine !== null) add(new AccessLogPhase(d.accessLine));
  const e = d.events;
  if (e !== null && d.kafka !== null) add(new EventsPhase(e.config, d.kafka, e.counters, e.instance, e.workerId, e.stats));
  return phases;
}
