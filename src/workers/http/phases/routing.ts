/**
 * Route matching (with the split pick and the prefix rewrite), then the load-balancer pick
 * within the chosen group.
 */
import { sluiceError } from '../../../shared/errors';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import { pickSplit, rewritePath, type Router } from '../router';
import type { Peer, Session } from '../session';
import type { Upstreams } from '../upstream/upstreams';

/**
 * Route matching (with the split pick and the prefix rewrite), then the load-balancer pick
 * within the chosen group. The route's own answers (redirect, respond, Kafka) come later,
 * from RouteActionPhase, so that phases in between (rate limiting) see the route first.
 */
export class RoutingPhase implements ProxyPhases<RequestCtx> {
  constructor(
    private readonly router: Router,
    private readonly upstreams: Upstreams,
  ) {}

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = this.router.match(s.method, ctx.hostName, s.path, s.headers);
    if (route === null) throw sluiceError('SLUICE_ERR_NO_ROUTE', `${s.method} ${ctx.hostName}${s.path}`);
    ctx.route = route;
    s.routeName = route.name;
    const a = route.action;
    if (a.type === 'proxy') ctx.group = this.upstreams.groups.get(a.upstream) ?? null;
    else if (a.type === 'split') ctx.group = this.upstreams.groups.get(pickSplit(route, Math.random())) ?? null;
    else return false;
    if (route.rewriteFrom !== '') s.path = rewritePath(s.path, route.rewriteFrom, route.rewriteTo);
    return false;
  }

  upstreamPeer(s: Session, tried: readonly string[], ctx: RequestCtx): Peer | null {
    const g = ctx.group;
    if (g === null) return null;
    const h = g.pick(tried, s, ctx);
    if (h === null) throw sluiceError('SLUICE_ERR_NO_HEALTHY_UPSTREAM', g.name);
    ctx.groupHost = h;
    return h.peer;
  }
}
