/**
 * Retries (a route's `retry`): which failures and statuses are retried, for which requests,
 * after what back-off, within the retry budget and the route's deadline. RetryPhase decides
 * (`shouldRetry`) and keeps the budget's counts; the engine only carries a decision out
 * (call.ts: another attempt after the delay, on a host not tried yet). The functions below
 * are the pure policy, testable without sockets.
 *
 * The keep-alive reuse race (a reused connection failing before any response byte) is not
 * a policy: the engine retries it once on a fresh connection, whatever the route says.
 */
import type { FailureKind, RetryConfig, RetryOn } from '../../../shared/config';
import type { SluiceError } from '../../../shared/errors';
import { refreshNow } from '../clock';
import type { RequestCtx } from '../context';
import type { Peer, Session } from '../session';
import type { ProxyPhases } from '../pipeline';
import { failureKind } from './host-judge';

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

/**
 * The route's retry policy as a phase. `upstreamPeer` (ahead of the routing phase, never
 * picking) counts the request among its group's requests in flight; `logging` gives the
 * counts back. Only in the pipeline when some route retries.
 */
export class RetryPhase implements ProxyPhases<RequestCtx> {
  upstreamPeer(_s: Session, _tried: readonly string[], ctx: RequestCtx): Peer | null {
    const g = ctx.group;
    if (g !== null && ctx.budgetGroup === null) {
      ctx.budgetGroup = g;
      g.requests++;
    }
    return null;
  }

  shouldRetry(s: Session, err: SluiceError | null, status: number, retryAfter: string, ctx: RequestCtx): number {
    const retry = ctx.route?.config.retry;
    if (retry === undefined) return -1;
    let afterMs = -1;
    if (err !== null) {
      if (err.code === 'SLUICE_ERR_TOTAL_TIMEOUT' || !retryCondition(retry.on, failureKind(0, err), 0)) return -1;
    } else {
      if (!retryCondition(retry.on, null, status)) return -1;
      if (retryAfter !== '') afterMs = parseRetryAfter(retryAfter);
      // Too long to wait (or unreadable): the upstream's answer goes to the client as it is.
      if (afterMs > retry.maxRetryAfterMs) return -1;
    }
    const g = ctx.group;
    if (g === null || ctx.retries >= retry.attempts) return -1;
    if (!mayRetryRequest(retry, s.method, s.headers)) return -1;
    if (!g.hasOtherHost(ctx.triedHosts, s.upstreamHost)) return -1;
    if (!ctx.budgetRetrying && !withinBudget(retry, g.retrying, g.requests)) {
      s.flags.push('RB');
      return -1;
    }
    let delay = backoffMs(retry, ctx.retries);
    if (afterMs > delay) delay = afterMs;
    if (ctx.totalDeadline !== 0 && refreshNow() + delay >= ctx.totalDeadline) return -1;
    if (!ctx.budgetRetrying) {
      ctx.budgetRetrying = true;
      g.retrying++;
    }
    ctx.retries++;
    s.flags.push('RY');
    return delay;
  }

  logging(_s: Session, _err: SluiceError | null, ctx: RequestCtx): void {
    const g = ctx.budgetGroup;
    if (g === null) return;
    ctx.budgetGroup = null;
    g.requests--;
    if (ctx.budgetRetrying) g.retrying--;
  }
}
