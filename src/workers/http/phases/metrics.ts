/**
 * The metrics phase: one `logging` call per finished request records it in the worker's
 * MetricsRecorder (src/shared/metrics.ts): a status-class counter for (route, upstream
 * group), the response flags, the latency in the route's hdr-layout histogram, and body
 * bytes. The primary asks for a snapshot when /metrics is scraped.
 *
 * Must never allocate per request, block, or build strings: it only reads fields the
 * session already has and bumps typed-array slots.
 */
import { performance } from 'node:perf_hooks';
import type { RouteConfig } from '../../../shared/config';
import type { MetricsRecorder } from '../../../shared/metrics';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';
import type { RequestCtx } from '../context';

export class MetricsPhase implements ProxyPhases<RequestCtx> {
  /** `recorder` lives as long as the worker; `routes` are the config's (series made up front). */
  constructor(
    private readonly recorder: MetricsRecorder,
    routes: readonly RouteConfig[],
  ) {
    recorder.prepare(routes);
  }

  logging(s: Session, _err: unknown, ctx: RequestCtx): void {
    // A request that failed before a host was picked (no healthy host, breaker open) still
    // counts under the group its route chose.
    const upstream = s.upstreamName !== '' ? s.upstreamName : (ctx.group?.name ?? '');
    this.recorder.record(s.routeName, upstream, s.status, s.flags, (performance.now() - s.startedAt) * 1000, s.bytesIn, s.bytesOut);
  }
}
