/**
 * Who may use Sluice: the client address (peer, PROXY protocol, trusted X-Forwarded-For
 * hops) and the CIDR allow/deny lists of listeners and routes. docs/edge.md describes the
 * behaviour and the choices behind it.
 *
 * - ListenerAclPhase (`accept`): the listener's list, before anything else runs.
 * - RouteAclPhase (`requestFilter`, right after routing): the matched route's list, before
 *   rate limiting and route actions, so a denied request costs no tokens and no upstream.
 *
 * Both answer 403 SLUICE_ERR_FORBIDDEN. They read the address bytes makeHandler already
 * parsed (ctx.clientBytes): no parsing, no allocation per request.
 */
import type { AclRule, SluiceConfig } from '../../../shared/config';
import { compileAclRules, parseAddress, type CompiledAcl } from '../../../shared/cidr';
import { sluiceError } from '../../../shared/errors';
import type { ProxyPhases, Session } from '../pipeline';
import type { RequestCtx } from '../call';

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

/**
 * One X-Forwarded-For entry as an address: `1.2.3.4`, `2001:db8::1`, and the forms some load
 * balancers write with a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`, `[2001:db8::1]`).
 * Anything else (`unknown`, obfuscated identifiers, garbage) is null.
 */
export function parseForwardedEntry(entry: string): Uint8Array | null {
  let e = entry.trim();
  if (e.length === 0 || e.length > 64) return null;
  if (e[0] === '[') {
    const close = e.indexOf(']');
    if (close === -1) return null;
    const after = e.slice(close + 1);
    if (after !== '' && !/^:\d{1,5}$/.test(after)) return null;
    e = e.slice(1, close);
    if (!e.includes(':')) return null;
  } else {
    const colon = e.indexOf(':');
    // Exactly one colon after a dotted quad: IPv4 with a port. More colons: IPv6.
    if (colon !== -1 && colon === e.lastIndexOf(':') && e.includes('.')) {
      if (!/^\d{1,5}$/.test(e.slice(colon + 1))) return null;
      e = e.slice(0, colon);
    }
  }
  if (e.includes('%')) return null;
  return parseAddress(e);
}

/**
 * The client behind `hops` trusted proxies (Envoy's xff_num_trusted_hops): the entry `hops`
 * positions from the right of the X-Forwarded-For chain (`xff`: all the request's
 * X-Forwarded-For lines joined with ','), the leftmost when the chain is shorter. null when
 * there is no chain or that entry is not an address: the caller keeps the peer address.
 * Walks back from the right without splitting the header.
 */
export function forwardedClient(xff: string, hops: number): Uint8Array | null {
  if (hops <= 0 || xff.length === 0) return null;
  // [start, end) is the entry k positions from the right; start 0 = the leftmost entry.
  let end = xff.length;
  let start = xff.lastIndexOf(',', end - 1) + 1;
  for (let k = 1; k < hops && start > 0; k++) {
    end = start - 1;
    start = end === 0 ? 0 : xff.lastIndexOf(',', end - 1) + 1;
  }
  return parseForwardedEntry(xff.slice(start, end));
}
