/**
 * Rate limiting (requestFilter, after routing and before the route's action). The buckets
 * live in a SharedArrayBuffer (src/shared/rate-limit.ts), so every worker of the instance
 * enforces the same numbers.
 */
import type { RateLimitConfig, RouteConfig } from '../../../shared/config';
import { sluiceError } from '../../../shared/errors';
import { monoOfPerf } from '../../../shared/mono';
import { compilePolicy, namespaceOf, retryAfterSeconds, type CompiledPolicy, type Namespace, type RateLimitTable } from '../../../shared/rate-limit';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import type { ResponseHead, Session } from '../session';

type KeyPart = (s: Session, route: string) => string;

function headerOf(s: Session, name: string): string {
  const hs = s.headers;
  for (let i = 0; i < hs.length; i += 2) if (hs[i] === name) return hs[i + 1] as string;
  return '';
}

/**
 * Compiles `client_ip+header:x-api-key+route` once. The key is empty (not limited, as nginx
 * does for an empty limit_req key) only when every part is empty, so leaving out a header
 * does not escape a combined key.
 */
export function compileRateKey(expr: string): (s: Session, route: string) => string {
  const parts: KeyPart[] = expr.split('+').map((p): KeyPart => {
    if (p === 'client_ip') return (s) => s.clientAddress;
    if (p === 'route') return (_s, route) => route;
    const name = p.slice('header:'.length).toLowerCase();
    return (s) => headerOf(s, name);
  });
  if (parts.length === 1) return parts[0] as KeyPart;
  return (s, route) => {
    let k = '';
    let any = false;
    for (const f of parts) {
      const v = f(s, route);
      if (v !== '') any = true;
      k += `${v}\n`;
    }
    return any ? k : '';
  };
}

interface RoutePolicy {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly keyOf: (s: Session, route: string) => string;
  /** Bucket namespace: the zone shared by routes, or the route. */
  readonly ns: Namespace;
  readonly always: boolean;
  /** `RateLimit-Policy` value, fixed per policy. */
  readonly policyField: string;
  /** Seconds for a full bucket to refill from empty. */
  readonly windowS: number;
}

function compileRoutePolicy(route: RouteConfig, rl: RateLimitConfig): RoutePolicy {
  const burst = rl.burst ?? Math.ceil(rl.rate);
  const name = rl.zone ?? route.name;
  const windowS = Math.max(1, Math.ceil(burst / rl.rate));
  return {
    name,
    policy: compilePolicy(rl.rate, burst),
    keyOf: compileRateKey(rl.key),
    ns: namespaceOf(rl.zone === undefined ? `route:${route.name}` : `zone:${rl.zone}`),
    always: rl.headers === 'always',
    policyField: `"${name}";q=${burst};w=${windowS}`,
    windowS,
  };
}

/**
 * Token-bucket rate limiting per route (IETF draft-ietf-httpapi-ratelimit-headers): a request
 * whose bucket is empty gets 429 with `Retry-After`, `RateLimit` (remaining r=0, t = seconds
 * until a token) and `RateLimit-Policy` (q = burst, w = seconds to refill it). With
 * `headers: always`, proxied responses carry both fields too (r = tokens left, t = seconds
 * until the bucket is full again).
 *
 * Runs in requestFilter after routing (the policy belongs to the route) and before the
 * route's action, so it covers proxy, redirect, respond and Kafka routes alike.
 */
export class RateLimitPhase implements ProxyPhases<RequestCtx> {
  /** By route index; undefined = the route has no limit. */
  private readonly byRoute: (RoutePolicy | undefined)[];

  /**
   * `nowOf`: the request's time in monoMs; by default its start (`startedAt`, read when its
   * head arrived), which saves the table a clock read per request.
   */
  constructor(
    routes: readonly RouteConfig[],
    private readonly table: RateLimitTable,
    private readonly nowOf: (s: Session) => number = (s) => monoOfPerf(s.startedAt),
  ) {
    this.byRoute = routes.map((r) => (r.rateLimit === undefined ? undefined : compileRoutePolicy(r, r.rateLimit)));
  }

  /** Whether any route limits (the worker leaves the phase out otherwise). */
  get active(): boolean {
    return this.byRoute.some((p) => p !== undefined);
  }

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = ctx.route;
    if (route === null) return false;
    const p = this.byRoute[route.index];
    if (p === undefined) return false;
    const key = p.keyOf(s, route.name);
    if (key === '') return false;
    const r = this.table.take(key, p.policy, p.ns, this.nowOf(s));
    if (r >= 0) {
      if (p.always) ctx.rateLimitRemaining = r;
      return false;
    }
    s.flags.push('RL');
    const wait = String(retryAfterSeconds(r));
    const e = sluiceError('SLUICE_ERR_RATE_LIMITED', `${p.name}: ${p.policy.rate}/s, burst ${p.policy.burst}`);
    e.headers = ['retry-after', wait, 'ratelimit-policy', p.policyField, 'ratelimit', `"${p.name}";r=0;t=${wait}`];
    throw e;
  }

  responseFilter(_s: Session, head: ResponseHead, ctx: RequestCtx): void {
    const left = ctx.rateLimitRemaining;
    if (left < 0 || ctx.route === null) return;
    const p = this.byRoute[ctx.route.index];
    if (p === undefined) return;
    const t = Math.ceil(((p.policy.burst - left) / p.policy.burst) * p.windowS);
    head.append('ratelimit-policy', p.policyField);
    head.append('ratelimit', `"${p.name}";r=${left};t=${t}`);
  }
}
