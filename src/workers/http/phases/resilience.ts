/**
 * The resilience phases: rate limiting (requestFilter, before the route's action runs) and
 * host judgement (attemptDone: circuit breakers and passive outlier detection). Both keep
 * their state in SharedArrayBuffers (src/shared/rate-limit.ts, src/shared/host-state.ts),
 * so every worker of the instance sees and enforces the same numbers.
 *
 * Also the pure retry policy the proxy consults (which failures are retried, back-off,
 * Retry-After), kept here so that it is testable without sockets.
 */
import type { FailureKind, RateLimitConfig, RetryConfig, RetryOn, RouteConfig } from '../../../shared/config';
import { sluiceError, type SluiceError } from '../../../shared/errors';
import { TRANSITION_CLOSED, TRANSITION_OPENED, TRANSITION_REOPENED } from '../../../shared/host-state';
import type { Logger } from '../../../shared/log';
import { monoOfPerf } from '../../../shared/mono';
import type { Peer, ProxyPhases, ResponseHead, Session } from '../pipeline';
import { compilePolicy, namespaceOf, retryAfterSeconds, type CompiledPolicy, type Namespace, type RateLimitTable } from '../../../shared/rate-limit';
import type { RequestCtx } from '../call';

// ------------------------------------------------------------------ rate limiting

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

// ------------------------------------------------------------------ host judgement

/** What an attempt's outcome counts as: null = success (the host answered below 500). */
export function failureKind(status: number, err: SluiceError | null): FailureKind | null {
  if (err === null) return status >= 500 ? '5xx' : null;
  switch (err.code) {
    case 'SLUICE_ERR_UPSTREAM_CONNECT':
    case 'SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT':
    case 'SLUICE_ERR_UPSTREAM_TLS':
      return 'connect';
    case 'SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT':
    case 'SLUICE_ERR_UPSTREAM_READ_TIMEOUT':
    case 'SLUICE_ERR_TOTAL_TIMEOUT':
      return 'timeout';
    case 'SLUICE_ERR_UPSTREAM_CLOSED':
    case 'SLUICE_ERR_UPSTREAM_RESET':
    case 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE':
    case 'SLUICE_ERR_UPSTREAM_HEAD_TOO_LARGE':
      return 'reset';
    default:
      // The attempt ended for a reason that says nothing about the host (client gone, body
      // over the limit): neither a success nor a failure.
      return null;
  }
}

/** Errors that end an attempt without judging the host (see failureKind's default). */
function isNeutral(err: SluiceError | null): boolean {
  return err !== null && failureKind(0, err) === null;
}

/**
 * Circuit breakers and passive outlier detection, fed by every upstream attempt's outcome.
 * The state and its transitions live in the shared host-state table; this phase only
 * classifies outcomes, flags the request and logs the transitions it caused.
 */
export class HostJudgePhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly log: Logger) {}

  attemptDone(s: Session, peer: Peer, status: number, err: SluiceError | null, ctx: RequestCtx): void {
    const g = ctx.group;
    const gh = ctx.groupHost;
    if (g === null || gh === null || g.state === null) return;
    const probe = ctx.breakerProbe;
    ctx.breakerProbe = false;
    if (isNeutral(err)) {
      if (probe) g.state.abandonProbe(gh.slot);
      return;
    }
    const kind = failureKind(status, err);
    const st = g.state;
    const b = g.breaker;
    if (b !== null) {
      const failed = kind !== null && b.failOn.includes(kind);
      const change = st.report(gh.slot, b, !failed, probe);
      if (change === TRANSITION_OPENED) {
        s.flags.push('CO');
        this.log.warn('circuit breaker opened', { group: peer.group, host: peer.host, after: kind ?? 'failure', openMs: b.openMs });
      } else if (change === TRANSITION_REOPENED) {
        s.flags.push('CO');
        this.log.warn('circuit breaker re-opened: a half-open probe failed', { group: peer.group, host: peer.host, after: kind ?? 'failure' });
      } else if (change === TRANSITION_CLOSED) {
        this.log.info('circuit breaker closed', { group: peer.group, host: peer.host });
      }
    }
    const o = g.outlier;
    if (o !== null && st.recordOutcome(gh.slot, o, kind !== null, g.slots)) {
      s.flags.push('EJ');
      this.log.warn('host ejected (outlier detection)', { group: peer.group, host: peer.host, after: kind ?? 'error', consecutiveErrors: o.consecutiveErrors });
    }
  }
}

// ------------------------------------------------------------------ retry policy

/** RFC 9110 §9.2.2 idempotent methods. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether the route may retry this request at all (method, Idempotency-Key). */
export function mayRetryRequest(retry: RetryConfig, method: string, headers: readonly string[]): boolean {
  if (IDEMPOTENT.has(method)) return true;
  if (!retry.idempotencyKey) return false;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'idempotency-key' && headers[i + 1] !== '') return true;
  return false;
}

/** Whether a failure (kind) or an upstream status is in the route's `retry.on`. */
export function retryCondition(on: readonly RetryOn[], kind: FailureKind | null, status: number): boolean {
  if (status > 0) {
    if (status < 500) return false;
    return on.includes('5xx') || on.includes(String(status) as RetryOn);
  }
  if (kind === null || kind === '5xx') return false;
  return on.includes(kind);
}

/**
 * Full-jitter exponential back-off (AWS architecture blog, Envoy's retry back-off):
 * uniform in [0, min(cap, base × 2^n)] for the n-th retry (n from 0).
 */
export function backoffMs(retry: RetryConfig, n: number, random: () => number = Math.random): number {
  const ceiling = Math.min(retry.backoffMaxMs, retry.backoffBaseMs * 2 ** Math.min(n, 30));
  return Math.floor(random() * ceiling);
}

/**
 * An upstream `Retry-After` in milliseconds: delta-seconds or an HTTP-date (RFC 9110
 * §10.2.3); -1 when absent or unreadable.
 */
export function parseRetryAfter(value: string, nowMs: number = Date.now()): number {
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  // HTTP-date forms all start with a day name; Date.parse alone accepts "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(v)) return -1;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return -1;
  return Math.max(0, t - nowMs);
}

/**
 * The retry budget (Envoy's retry_budget): retries in flight stay below budgetPercent of the
 * requests in flight, but budgetMin are always allowed. Counted per worker and group.
 */
export function withinBudget(retry: RetryConfig, retriesInFlight: number, requestsInFlight: number): boolean {
  const allowed = Math.max(retry.budgetMin, Math.floor((retry.budgetPercent * requestsInFlight) / 100));
  return retriesInFlight < allowed;
}
