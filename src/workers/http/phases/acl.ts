/**
 * Who may use Sluice: the CIDR allow/deny lists of listeners and routes, judged on the client
 * address (client-address.ts). docs/edge.md describes the behaviour and the choices behind it.
 *
 * - ListenerAclPhase (`accept`): the listener's list, before anything else runs.
 * - RouteAclPhase (`requestFilter`, right after routing): the matched route's list, before
 *   rate limiting and route actions, so a denied request costs no tokens and no upstream.
 *
 * Both answer 403 SLUICE_ERR_FORBIDDEN. They read the address bytes the handler and
 * ClientAddressPhase already parsed (ctx.clientBytes): no parsing, no allocation per request.
 */
import type { AclRule, SluiceConfig } from '../../../shared/config';
import { compileAclRules, type CompiledAcl } from '../../../shared/cidr';
import { sluiceError } from '../../../shared/errors';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';
import type { RequestCtx } from '../context';

function compile(rules: readonly AclRule[] | undefined): CompiledAcl | null {
  return rules === undefined || rules.length === 0 ? null : compileAclRules(rules);
}

/** The listener's ACL (listen.acl for HTTP, tls.acl for HTTPS), checked in `accept`. */
export class ListenerAclPhase implements ProxyPhases<RequestCtx> {
  private readonly http: CompiledAcl | null;
  private readonly https: CompiledAcl | null;

  constructor(cfg: SluiceConfig) {
    this.http = compile(cfg.listen.acl);
    this.https = compile(cfg.tls?.acl);
  }

  get active(): boolean {
    return this.http !== null || this.https !== null;
  }

  accept(s: Session, ctx: RequestCtx): boolean {
    const acl = ctx.listener === 'https' ? this.https : this.http;
    if (acl !== null && !acl.allows(ctx.clientBytes)) {
      throw sluiceError('SLUICE_ERR_FORBIDDEN', `${s.clientAddress} (${ctx.listener === 'https' ? 'tls.acl' : 'listen.acl'})`);
    }
    return true;
  }
}

/** routes[].acl, checked right after routing. */
export class RouteAclPhase implements ProxyPhases<RequestCtx> {
  /** By route index; null where the route has no ACL. */
  private readonly byRoute: readonly (CompiledAcl | null)[];

  constructor(cfg: SluiceConfig) {
    this.byRoute = cfg.routes.map((r) => compile(r.acl));
  }

  get active(): boolean {
    return this.byRoute.some((a) => a !== null);
  }

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = ctx.route;
    if (route === null) return false;
    const acl = this.byRoute[route.index];
    if (acl != null && !acl.allows(ctx.clientBytes)) {
      throw sluiceError('SLUICE_ERR_FORBIDDEN', `${s.clientAddress} (routes[${route.index}].acl, route ${route.name})`);
    }
    return false;
  }
}

/** The ACL phases the config asks for: 0, 1 or 2 (listener first, then route). */
export function aclPhases(cfg: SluiceConfig): ProxyPhases<RequestCtx>[] {
  const out: ProxyPhases<RequestCtx>[] = [];
  const listener = new ListenerAclPhase(cfg);
  if (listener.active) out.push(listener);
  const route = new RouteAclPhase(cfg);
  if (route.active) out.push(route);
  return out;
}
