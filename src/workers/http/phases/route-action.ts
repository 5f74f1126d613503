/**
 * The route actions that answer without an upstream: redirect, direct response, and Kafka
 * produce (which takes the request body over).
 */
import type { RequestCtx } from '../context';
import { KafkaRouteCall } from '../kafka/route';
import type { KafkaLink } from '../kafka/link';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';

/** The route actions that answer without an upstream: redirect, direct response, Kafka produce. */
export class RouteActionPhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly kafka: KafkaLink | null) {}

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = ctx.route;
    if (route === null) return false;
    const a = route.action;
    switch (a.type) {
      case 'proxy':
      case 'split':
        return false;
      case 'redirect': {
        const location = a.appendPath ? `${a.location}${s.path}${s.query === '' ? '' : `?${s.query}`}` : a.location;
        ctx.respond(a.status, '', ['location', location]);
        return true;
      }
      case 'kafka':
        // Takes over the request: collects the body, produces, answers.
        new KafkaRouteCall(ctx, route, a, this.kafka).start();
        return true;
      case 'respond': {
        const hs = ['content-type', a.contentType];
        for (const [k, v] of Object.entries(a.headers ?? {})) hs.push(k, v);
        ctx.respond(a.status, a.body, hs);
        return true;
      }
    }
  }
}
