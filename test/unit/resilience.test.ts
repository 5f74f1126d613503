/**
 * The pure parts of the resilience phases (src/workers/http/phases/rate-limit.ts,
 * host-judge.ts, retry.ts) and the primary's host slots (src/main/host-slots.ts): rate-limit keys, outcome classification, retry
 * conditions, back-off, Retry-After, budget, idempotency; slot assignment across reloads.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HostSlots } from '../../src/main/host-slots';
import { buildConfig, type RetryConfig } from '../../src/shared/config';
import { sluiceError } from '../../src/shared/errors';
import type { Session } from '../../src/workers/http/session';
import { allocRateLimitTable, RateLimitTable } from '../../src/shared/rate-limit';
import type { RequestCtx } from '../../src/workers/http/context';
import { makeSession } from '../helpers';
import { failureKind } from '../../src/workers/http/phases/host-judge';
import { compileRateKey, RateLimitPhase } from '../../src/workers/http/phases/rate-limit';
import { backoffMs, mayRetryRequest, parseRetryAfter, retryCondition, withinBudget } from '../../src/workers/http/phases/retry';

const session = (headers: string[], clientAddress = '10.0.0.1'): Session => makeSession({ headers, clientAddress });

const RETRY: RetryConfig = {
  attempts: 2,
  on: ['connect', 'reset', '502', '503', '504'],
  idempotencyKey: false,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  maxRetryAfterMs: 1000,
  budgetPercent: 20,
  budgetMin: 3,
};

describe('rate-limit keys', () => {
  test('single parts', () => {
    assert.equal(compileRateKey('client_ip')(session([]), 'r'), '10.0.0.1');
    assert.equal(compileRateKey('route')(session([]), 'r1'), 'r1');
    assert.equal(compileRateKey('header:X-Api-Key')(session(['x-api-key', 'k1']), 'r'), 'k1');
    assert.equal(compileRateKey('header:x-api-key')(session([]), 'r'), '', 'absent header: empty key, not limited');
  });

  test('combined: empty only when every part is empty', () => {
    const f = compileRateKey('header:x-a+header:x-b');
    assert.equal(f(session([]), 'r'), '');
    assert.equal(f(session(['x-b', '2']), 'r'), '\n2\n');
    assert.notEqual(f(session(['x-a', '1', 'x-b', '2']), 'r'), f(session(['x-a', '12']), 'r'), 'parts cannot run into each other');
    assert.equal(compileRateKey('client_ip+route')(session([]), 'r'), '10.0.0.1\nr\n');
  });
});

describe('failure classification', () => {
  test('statuses and error codes', () => {
    assert.equal(failureKind(200, null), null);
    assert.equal(failureKind(404, null), null);
    assert.equal(failureKind(503, null), '5xx');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_UPSTREAM_CONNECT')), 'connect');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT')), 'connect');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT')), 'timeout');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_UPSTREAM_RESET')), 'reset');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE')), 'reset');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_CLIENT_ABORTED')), null, 'says nothing about the host');
    assert.equal(failureKind(0, sluiceError('SLUICE_ERR_BODY_TOO_LARGE')), null);
  });
});

describe('retry policy', () => {
  test('conditions', () => {
    assert.ok(retryCondition(RETRY.on, 'connect', 0));
    assert.ok(!retryCondition(RETRY.on, 'timeout', 0), 'timeouts only when listed');
    assert.ok(retryCondition(['timeout'], 'timeout', 0));
    assert.ok(retryCondition(RETRY.on, null, 503));
    assert.ok(!retryCondition(RETRY.on, null, 500));
    assert.ok(retryCondition(['5xx'], null, 500));
    assert.ok(!retryCondition(['5xx'], null, 429));
    assert.ok(!retryCondition(RETRY.on, null, 200));
  });

  test('idempotent methods; Idempotency-Key only where the route allows it', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) assert.ok(mayRetryRequest(RETRY, m, []), m);
    assert.ok(!mayRetryRequest(RETRY, 'POST', ['idempotency-key', 'k']));
    const keyed = { ...RETRY, idempotencyKey: true };
    assert.ok(mayRetryRequest(keyed, 'POST', ['idempotency-key', 'k']));
    assert.ok(!mayRetryRequest(keyed, 'POST', []));
    assert.ok(!mayRetryRequest(keyed, 'PATCH', ['idempotency-key', '']));
  });

  test('full-jitter back-off stays within [0, min(cap, base·2ⁿ))', () => {
    assert.equal(backoffMs(RETRY, 0, () => 0), 0);
    assert.equal(backoffMs(RETRY, 0, () => 0.999), 24);
    assert.equal(backoffMs(RETRY, 1, () => 0.999), 49);
    assert.equal(backoffMs(RETRY, 3, () => 0.999), 199);
    assert.equal(backoffMs(RETRY, 4, () => 0.999), 249, 'capped');
    assert.equal(backoffMs(RETRY, 60, () => 0.5), 125, 'no overflow for large n');
  });

  test('Retry-After: delta-seconds and HTTP-date', () => {
    assert.equal(parseRetryAfter('0'), 0);
    assert.equal(parseRetryAfter(' 2 '), 2000);
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:03 GMT', now), 3000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now), 0, 'a date in the past: now');
    assert.equal(parseRetryAfter('soon'), -1);
    assert.equal(parseRetryAfter('-5'), -1);
  });

  test('budget: budgetMin always, else budgetPercent of requests in flight', () => {
    assert.ok(withinBudget(RETRY, 0, 1));
    assert.ok(withinBudget(RETRY, 2, 1));
    assert.ok(!withinBudget(RETRY, 3, 1), 'min 3');
    assert.ok(withinBudget(RETRY, 19, 100));
    assert.ok(!withinBudget(RETRY, 20, 100), '20 % of 100');
    assert.ok(!withinBudget({ ...RETRY, budgetMin: 0, budgetPercent: 0 }, 0, 1000));
  });
});

describe('host slots', () => {
  const cfg = (groups: Record<string, string[]>): ReturnType<typeof buildConfig> =>
    buildConfig({
      upstreams: Object.fromEntries(Object.entries(groups).map(([g, hs]) => [g, { hosts: hs.map((address) => ({ address })) }])),
      routes: [{ name: 'r', action: { type: 'respond' } }],
    });

  test('stable across reloads; freed slots are reset and reused', () => {
    const slots = new HostSlots();
    const reset: number[] = [];
    const a = slots.assign(cfg({ g: ['a:1', 'b:1'], h: ['a:1'] }), (s) => reset.push(s));
    assert.deepEqual(a, { 'g|a:1': 0, 'g|b:1': 1, 'h|a:1': 2 }, 'one slot per group and address');
    assert.deepEqual(reset, [0, 1, 2]);
    reset.length = 0;
    const b = slots.assign(cfg({ g: ['a:1', 'c:1'] }), (s) => reset.push(s));
    assert.equal(b['g|a:1'], 0, 'a host that stays keeps its slot (and its state)');
    assert.ok(b['g|c:1'] === 1 || b['g|c:1'] === 2, 'a new host takes a freed slot');
    assert.deepEqual(reset, [b['g|c:1']], 'only the slot that changed hands is reset');
    assert.equal(Object.keys(b).length, 2);
  });

  test('a host listed twice in a group has one slot', () => {
    const slots = new HostSlots();
    assert.deepEqual(slots.assign(cfg({ g: ['a:1', 'a:1'] }), () => undefined), { 'g|a:1': 0 });
  });
});

describe('RateLimitPhase buckets', () => {
  test('routes of one zone share buckets; other routes and zones do not; 429 carries the fields', () => {
    const cfg = buildConfig({
      routes: [
        { name: 'a', match: { path: { prefix: '/a' } }, action: { type: 'respond' }, rateLimit: { key: 'client_ip', rate: 0.001, burst: 2, zone: 'z' } },
        { name: 'b', match: { path: { prefix: '/b' } }, action: { type: 'respond' }, rateLimit: { key: 'client_ip', rate: 0.001, burst: 2, zone: 'z' } },
        { name: 'c', match: { path: { prefix: '/c' } }, action: { type: 'respond' }, rateLimit: { key: 'client_ip', rate: 0.001, burst: 2 } },
        { name: 'd', action: { type: 'respond' }, rateLimit: { key: 'client_ip', rate: 0.001, burst: 2, zone: 'y' } },
      ],
    });
    let now = 1000;
    const phase = new RateLimitPhase(cfg.routes, new RateLimitTable(allocRateLimitTable(1024)), () => now);
    const take = (index: number, ip = '10.0.0.1'): string => {
      const ctx = { route: { index, name: String(index) }, rateLimitRemaining: -1 } as unknown as RequestCtx;
      try {
        phase.requestFilter(session([], ip), ctx);
        return 'ok';
      } catch (e) {
        const err = e as { code: string; headers: string[] };
        assert.equal(err.code, 'SLUICE_ERR_RATE_LIMITED');
        assert.deepEqual(err.headers.filter((_, i) => i % 2 === 0), ['retry-after', 'ratelimit-policy', 'ratelimit']);
        return '429';
      }
    };
    assert.deepEqual([take(0), take(1), take(0)], ['ok', 'ok', '429'], 'zone z: a and b drain one bucket');
    assert.deepEqual([take(2), take(2), take(2)], ['ok', 'ok', '429'], 'route c has its own');
    assert.deepEqual([take(3), take(3), take(3)], ['ok', 'ok', '429'], 'zone y has its own');
    assert.equal(take(0, '10.0.0.2'), 'ok', 'another client, another bucket');
    now += 1000000;
    assert.equal(take(1), 'ok', 'refilled after 1000 s at 0.001/s');
  });
});
