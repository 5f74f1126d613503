/**
 * The shared per-host state table: breaker, concurrency gauges, outlier ejection, health and
 * panic, all with an injected clock (no timing thresholds), then real worker threads racing
 * on one SharedArrayBuffer, where the assertions are exact counts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  ADMIT,
  BREAKER_CLOSED,
  BREAKER_HALF_OPEN,
  BREAKER_OPEN,
  BREAKER_SWITCHING,
  HOST_STATE_LAYOUT as L,
  HostStateTable,
  KIND_ACTIVE,
  KIND_PENDING,
  PROBE,
  REJECT,
  TRANSITION_CLOSED,
  TRANSITION_HALF_OPENED,
  TRANSITION_NONE,
  TRANSITION_OPENED,
  TRANSITION_PROBES_RECLAIMED,
  TRANSITION_REOPENED,
  allocHostState,
  hostStateBytes,
  type BreakerConfig,
  type OutlierConfig,
} from '../../src/shared/host-state';

const MODULE = path.resolve(__dirname, '../../src/shared/host-state.js');

function fakeClock(start = 0): { now: () => number; set: (t: number) => void } {
  let t = start;
  return { now: () => t, set: (v: number) => { t = v; } };
}

function table(capacity = 4, start = 0): { t: HostStateTable; clock: ReturnType<typeof fakeClock>; sab: SharedArrayBuffer } {
  const clock = fakeClock(start);
  const sab = allocHostState(capacity);
  return { t: new HostStateTable(sab, clock.now), clock, sab };
}

const BREAKER: BreakerConfig = {
  consecutiveFailures: 3,
  failureRatio: 0,
  windowMs: 10_000,
  minRequests: 1,
  openMs: 1000,
  halfOpenProbes: 2,
  closeAfter: 2,
};

/** Opens slot 0's breaker at the clock's current time (consecutive failures). */
function trip(t: HostStateTable, cfg: BreakerConfig = BREAKER, slot = 0): void {
  for (let i = 0; i < cfg.consecutiveFailures; i++) t.report(slot, cfg, false, false);
  assert.equal(t.breakerState(slot), BREAKER_OPEN);
}

// ---- layout ---------------------------------------------------------------------------------

test('layout: sizes, capacity, a zeroed buffer is the initial state', () => {
  assert.equal(hostStateBytes(0), 0);
  assert.equal(hostStateBytes(3), 3 * L.SLOT_BYTES);
  assert.equal(L.SLOT_BYTES % 8, 0);
  assert.throws(() => hostStateBytes(-1), RangeError);
  assert.throws(() => new HostStateTable(new SharedArrayBuffer(L.SLOT_BYTES + 4)), RangeError);
  const plain = new HostStateTable(new SharedArrayBuffer(hostStateBytes(5)));
  assert.equal(plain.capacity, 5);
  for (let s = 0; s < 5; s++) {
    const snap = plain.snapshot(s);
    assert.equal(snap.healthy, true);
    assert.equal(snap.available, true);
    assert.equal(snap.breaker.state, 'closed');
    assert.equal(snap.outlier.ejected, false);
    assert.equal(snap.concurrency.active, 0);
  }
  assert.throws(() => plain.snapshot(5), RangeError);
});

test('the default clock is the process monotonic clock', () => {
  const t = new HostStateTable(allocHostState(1));
  trip(t);
  const snap = t.snapshot(0);
  // openUntil = monoMs() + openMs: far from zero (a zero-duration clock bug would leave it near openMs).
  assert.ok(snap.breaker.openUntil > BREAKER.openMs);
  assert.equal(t.admit(0, BREAKER), REJECT);
});

// ---- health ---------------------------------------------------------------------------------

test('health bits: initial healthy, set down/up, isAvailable follows', () => {
  const { t } = table();
  assert.equal(t.isHealthy(1), true);
  t.setHealthy(1, false);
  assert.equal(t.isHealthy(1), false);
  assert.equal(t.isAvailable(1), false);
  assert.equal(t.isHealthy(0), true);
  t.setHealthy(1, true);
  assert.equal(t.isAvailable(1), true);
});

// ---- breaker --------------------------------------------------------------------------------

test('breaker: N consecutive failures open it, a success resets the streak', () => {
  const { t, clock } = table();
  clock.set(500);
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.report(0, BREAKER, true, false), TRANSITION_NONE);
  assert.equal(t.snapshot(0).breaker.consecutiveFailures, 0);
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.admit(0, BREAKER), ADMIT);
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_OPENED);
  assert.equal(t.lastTransition, TRANSITION_OPENED);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.state, 'open');
  assert.equal(snap.breaker.openUntil, 1500);
  assert.equal(snap.breaker.opened, 1);
  assert.equal(snap.breaker.consecutiveFailures, 0);
  assert.equal(t.admit(0, BREAKER), REJECT);
  assert.equal(t.isAvailable(0), false);
  // Outcomes of requests sent before the opening are ignored: no second opening.
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.snapshot(0).breaker.opened, 1);
  // Other slots are independent.
  assert.equal(t.admit(1, BREAKER), ADMIT);
});

test('breaker: cool-down, bounded probes, closes after M successes', () => {
  const { t, clock } = table();
  trip(t);
  clock.set(999);
  assert.equal(t.admit(0, BREAKER), REJECT);
  assert.equal(t.lastTransition, TRANSITION_NONE);
  assert.equal(t.isAvailable(0), false);
  clock.set(1000);
  // Cool-down over: available again, so the balancer sends the traffic that admit() needs.
  assert.equal(t.isAvailable(0), true);
  assert.equal(t.breakerState(0), BREAKER_OPEN);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.lastTransition, TRANSITION_HALF_OPENED);
  assert.equal(t.breakerState(0), BREAKER_HALF_OPEN);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.lastTransition, TRANSITION_NONE);
  assert.equal(t.admit(0, BREAKER), REJECT); // probe N+1
  let snap = t.snapshot(0);
  assert.equal(snap.breaker.probesInFlight, 2);
  assert.equal(snap.breaker.halfOpened, 1);
  assert.equal(snap.breaker.halfOpenSince, 1000);
  assert.equal(snap.available, true);
  // A non-probe outcome in half-open changes nothing.
  assert.equal(t.report(0, BREAKER, false, false), TRANSITION_NONE);
  assert.equal(t.breakerState(0), BREAKER_HALF_OPEN);
  // A probe's report frees its slot.
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_NONE);
  assert.equal(t.snapshot(0).breaker.probesInFlight, 1);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.admit(0, BREAKER), REJECT);
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_CLOSED);
  assert.equal(t.lastTransition, TRANSITION_CLOSED);
  snap = t.snapshot(0, BREAKER);
  assert.equal(snap.breaker.state, 'closed');
  assert.equal(snap.breaker.closed, 1);
  assert.equal(snap.breaker.halfOpenSuccesses, 0);
  assert.equal(snap.breaker.consecutiveFailures, 0);
  assert.equal(snap.breaker.probesInFlight, 1); // the third probe still owes its report
  assert.equal(t.admit(0, BREAKER), ADMIT);
  // That probe reports after the close: it frees its slot and counts as a closed-state outcome.
  assert.equal(t.report(0, BREAKER, false, true), TRANSITION_NONE);
  snap = t.snapshot(0);
  assert.equal(snap.breaker.probesInFlight, 0);
  assert.equal(snap.breaker.consecutiveFailures, 1);
});

test('breaker: a probe failure re-opens for a new cool-down', () => {
  const { t, clock } = table();
  trip(t);
  clock.set(2000);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_NONE);
  clock.set(2100);
  assert.equal(t.report(0, BREAKER, false, true), TRANSITION_REOPENED);
  let snap = t.snapshot(0);
  assert.equal(snap.breaker.state, 'open');
  assert.equal(snap.breaker.openUntil, 3100);
  assert.equal(snap.breaker.opened, 2);
  assert.equal(snap.breaker.halfOpened, 1);
  assert.equal(snap.breaker.closed, 0);
  assert.equal(snap.breaker.probesInFlight, 0);
  assert.equal(t.admit(0, BREAKER), REJECT);
  clock.set(3100);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.lastTransition, TRANSITION_HALF_OPENED);
  // The success count starts again in the new episode: closeAfter = 2 more successes.
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_NONE);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_CLOSED);
  snap = t.snapshot(0);
  assert.equal(snap.breaker.halfOpened, 2);
  assert.equal(snap.breaker.closed, 1);
});

test('breaker: a probe that reports while the breaker is open only frees its slot', () => {
  const { t, clock } = table();
  trip(t);
  clock.set(1000);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.report(0, BREAKER, false, true), TRANSITION_REOPENED);
  assert.equal(t.snapshot(0).breaker.probesInFlight, 1);
  assert.equal(t.report(0, BREAKER, true, true), TRANSITION_NONE);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.probesInFlight, 0);
  assert.equal(snap.breaker.halfOpenSuccesses, 0);
  assert.equal(snap.breaker.state, 'open');
  // Extra reports can never push the probe count below zero.
  t.report(0, BREAKER, true, true);
  assert.equal(t.snapshot(0).breaker.probesInFlight, 0);
});

test('breaker: probes that never report are reclaimed after a whole cool-down', () => {
  const { t, clock } = table();
  trip(t);
  clock.set(1000);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.admit(0, BREAKER), PROBE);
  clock.set(1999);
  assert.equal(t.admit(0, BREAKER), REJECT);
  clock.set(2000);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.lastTransition, TRANSITION_PROBES_RECLAIMED);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.probesReclaimed, 1);
  assert.equal(snap.breaker.probesInFlight, 1);
  assert.equal(snap.breaker.halfOpenSince, 2000);
  assert.equal(snap.breaker.state, 'half-open');
});

test('breaker: failure ratio over the window, only from minRequests on', () => {
  const cfg: BreakerConfig = { ...BREAKER, consecutiveFailures: 0, failureRatio: 0.5, windowMs: 1000, minRequests: 10 };
  const { t, clock } = table();
  clock.set(10_000);
  for (let i = 0; i < 4; i++) assert.equal(t.report(0, cfg, false, false), TRANSITION_NONE); // 100 % but < minRequests
  for (let i = 0; i < 5; i++) assert.equal(t.report(0, cfg, true, false), TRANSITION_NONE);
  let snap = t.snapshot(0, cfg);
  assert.equal(snap.breaker.windowTotal, 9);
  assert.equal(snap.breaker.windowFailures, 4);
  // 10 requests, 5 failures: ratio 0.5 reached.
  assert.equal(t.report(0, cfg, false, false), TRANSITION_OPENED);
  snap = t.snapshot(0, cfg);
  assert.equal(snap.breaker.state, 'open');
  assert.equal(snap.breaker.windowTotal, 0); // reset at the transition

  // Below the ratio: stays closed.
  const { t: t2, clock: c2 } = table();
  c2.set(10_000);
  for (let i = 0; i < 6; i++) t2.report(0, cfg, true, false);
  for (let i = 0; i < 4; i++) assert.equal(t2.report(0, cfg, false, false), TRANSITION_NONE);
  assert.equal(t2.breakerState(0), BREAKER_CLOSED);
  // Consecutive-failure trigger is off (0): 4 in a row did not open either.
  assert.equal(t2.snapshot(0).breaker.opened, 0);
});

test('breaker: old window buckets fall out and are reused', () => {
  const cfg: BreakerConfig = { ...BREAKER, consecutiveFailures: 0, failureRatio: 0.5, windowMs: 1000, minRequests: 4 };
  const { t, clock } = table();
  clock.set(0);
  for (let i = 0; i < 3; i++) t.report(0, cfg, false, false);
  clock.set(950); // same window (bucket width 100 ms, 10 buckets)
  assert.equal(t.snapshot(0, cfg).breaker.windowTotal, 3);
  clock.set(1000); // the bucket of t=0 is now 10 buckets old: out
  let snap = t.snapshot(0, cfg);
  assert.equal(snap.breaker.windowTotal, 0);
  assert.equal(snap.breaker.windowFailures, 0);
  // Had the old failures stayed, this fourth one would open the breaker (4/4).
  assert.equal(t.report(0, cfg, false, false), TRANSITION_NONE);
  snap = t.snapshot(0, cfg);
  assert.equal(snap.breaker.windowTotal, 1); // same bucket index, rotated and zeroed
  assert.equal(snap.breaker.state, 'closed');
  // Spread over several buckets within one window, they all count.
  clock.set(1100);
  t.report(0, cfg, true, false);
  clock.set(1500);
  t.report(0, cfg, false, false);
  clock.set(1999);
  assert.equal(t.report(0, cfg, false, false), TRANSITION_OPENED); // 3 failures / 4 requests
});

// ---- concurrency ----------------------------------------------------------------------------

test('concurrency: acquire up to max, overflow counted, release, never negative', () => {
  const { t } = table();
  assert.equal(t.tryAcquire(0, KIND_ACTIVE, 2), true);
  assert.equal(t.tryAcquire(0, KIND_ACTIVE, 2), true);
  assert.equal(t.tryAcquire(0, KIND_ACTIVE, 2), false);
  assert.equal(t.inFlight(0, KIND_ACTIVE), 2);
  // PENDING is a separate gauge.
  assert.equal(t.tryAcquire(0, KIND_PENDING, 1), true);
  assert.equal(t.tryAcquire(0, KIND_PENDING, 1), false);
  let snap = t.snapshot(0);
  assert.deepEqual(snap.concurrency, { active: 2, pending: 1, activeOverflow: 1, pendingOverflow: 1 });
  t.release(0, KIND_ACTIVE);
  assert.equal(t.tryAcquire(0, KIND_ACTIVE, 2), true);
  t.release(0, KIND_ACTIVE);
  t.release(0, KIND_ACTIVE);
  t.release(0, KIND_ACTIVE); // one too many
  t.release(0, KIND_ACTIVE);
  assert.equal(t.inFlight(0, KIND_ACTIVE), 0);
  // max 0 = unlimited, still counted.
  for (let i = 0; i < 100; i++) assert.equal(t.tryAcquire(1, KIND_ACTIVE, 0), true);
  assert.equal(t.inFlight(1, KIND_ACTIVE), 100);
  // A lowered limit refuses until the gauge drops under it.
  assert.equal(t.tryAcquire(1, KIND_ACTIVE, 50), false);
  for (let i = 0; i < 100; i++) t.release(1, KIND_ACTIVE);
  snap = t.snapshot(1);
  assert.equal(snap.concurrency.active, 0);
  assert.equal(snap.concurrency.activeOverflow, 1);
  t.release(0, KIND_PENDING);
  t.release(0, KIND_PENDING);
  assert.equal(t.inFlight(0, KIND_PENDING), 0);
});

// ---- outlier detection ----------------------------------------------------------------------

const OUTLIER: OutlierConfig = { consecutiveErrors: 3, baseEjectionMs: 1000, maxEjectionMs: 3500, maxEjectionPercent: 50 };
const GROUP = [0, 1, 2, 3];

function ejectNow(t: HostStateTable, slot: number, cfg = OUTLIER, group: readonly number[] = GROUP): boolean {
  let ejected = false;
  for (let i = 0; i < cfg.consecutiveErrors; i++) {
    const r = t.recordOutcome(slot, cfg, true, group);
    if (i < cfg.consecutiveErrors - 1) assert.equal(r, false);
    else ejected = r;
  }
  return ejected;
}

test('outlier: ejection after consecutive errors; a success resets the streak; expiry', () => {
  const { t, clock } = table();
  clock.set(100);
  t.recordOutcome(0, OUTLIER, true, GROUP);
  t.recordOutcome(0, OUTLIER, true, GROUP);
  assert.equal(t.recordOutcome(0, OUTLIER, false, GROUP), false);
  assert.equal(t.snapshot(0).outlier.consecutiveErrors, 0);
  t.recordOutcome(0, OUTLIER, true, GROUP);
  assert.equal(t.recordOutcome(0, OUTLIER, true, GROUP), false);
  assert.equal(t.isEjected(0), false);
  assert.equal(t.recordOutcome(0, OUTLIER, true, GROUP), true);
  assert.equal(t.isEjected(0), true);
  assert.equal(t.isAvailable(0), false);
  let snap = t.snapshot(0);
  assert.equal(snap.outlier.ejectedUntil, 1100);
  assert.equal(snap.outlier.multiplier, 1);
  assert.equal(snap.outlier.ejections, 1);
  assert.equal(snap.outlier.consecutiveErrors, 0);
  // Errors while ejected: ignored, no second ejection, no count.
  for (let i = 0; i < 5; i++) assert.equal(t.recordOutcome(0, OUTLIER, true, GROUP), false);
  assert.equal(t.snapshot(0).outlier.consecutiveErrors, 0);
  clock.set(1099);
  assert.equal(t.isEjected(0), true);
  clock.set(1100);
  assert.equal(t.isEjected(0), false);
  assert.equal(t.isAvailable(0), true);
  snap = t.snapshot(0);
  assert.equal(snap.outlier.ejected, false);
  assert.equal(snap.outlier.ejections, 1);
  // Off when consecutiveErrors is 0.
  const off = { ...OUTLIER, consecutiveErrors: 0 };
  for (let i = 0; i < 10; i++) assert.equal(t.recordOutcome(1, off, true, GROUP), false);
  assert.equal(t.isEjected(1), false);
});

test('outlier: ejection time grows with repeats, is capped, and the count decays', () => {
  const { t, clock } = table();
  let now = 0;
  const lengths: number[] = [];
  for (let k = 0; k < 5; k++) {
    clock.set(now);
    assert.equal(ejectNow(t, 0), true);
    const until = t.snapshot(0).outlier.ejectedUntil;
    lengths.push(until - now);
    now = until; // back in service exactly at expiry, failing again at once
  }
  // base × n, capped at maxEjectionMs (3500).
  assert.deepEqual(lengths, [1000, 2000, 3000, 3500, 3500]);
  // Un-ejected for exactly the cap: no decay yet.
  now += 3500;
  clock.set(now);
  assert.equal(ejectNow(t, 0), true);
  assert.equal(t.snapshot(0).outlier.ejectedUntil - now, 3500);
  // Un-ejected for longer than the cap: the multiplier starts again at 1.
  now = t.snapshot(0).outlier.ejectedUntil + 3501;
  clock.set(now);
  assert.equal(ejectNow(t, 0), true);
  const snap = t.snapshot(0);
  assert.equal(snap.outlier.ejectedUntil - now, 1000);
  assert.equal(snap.outlier.multiplier, 1);
  assert.equal(snap.outlier.ejections, 7);
});

test('outlier: max ejection percent (Envoy semantics), retried when budget frees up', () => {
  const { t, clock } = table(6);
  clock.set(0);
  // 4 hosts at 50 %: eject while fewer than 2 are ejected.
  assert.equal(ejectNow(t, 0), true);
  assert.equal(ejectNow(t, 1), true);
  assert.equal(ejectNow(t, 2), false);
  assert.equal(t.isEjected(2), false);
  assert.equal(t.snapshot(2).outlier.overflow, 1);
  // Every further error retries; still refused.
  assert.equal(t.recordOutcome(2, OUTLIER, true, GROUP), false);
  assert.equal(t.snapshot(2).outlier.overflow, 2);
  // Host 0's ejection expires: budget for one more.
  clock.set(1000);
  assert.equal(t.isEjected(0), false);
  assert.equal(t.recordOutcome(2, OUTLIER, true, GROUP), true);
  assert.equal(t.isEjected(2), true);

  // Tiny group: 3 hosts at 10 % → one host may be ejected (0 % ejected < 10 %), not two.
  const small = { ...OUTLIER, maxEjectionPercent: 10 };
  const { t: t2 } = table(3);
  const g3 = [0, 1, 2];
  assert.equal(ejectNow(t2, 0, small, g3), true);
  assert.equal(ejectNow(t2, 1, small, g3), false);
  // A single-host group: the host can be ejected (then panic mode balances across it anyway).
  const { t: t3 } = table(1);
  assert.equal(ejectNow(t3, 0, small, [0]), true);
  assert.equal(t3.panic([0]), true);
  // 0 % disables ejection.
  const { t: t4 } = table(2);
  assert.equal(ejectNow(t4, 0, { ...OUTLIER, maxEjectionPercent: 0 }, [0, 1]), false);
  assert.equal(t4.isEjected(0), false);
});

// ---- availability and panic -----------------------------------------------------------------

test('isAvailable and panic: health, ejection and breaker combined', () => {
  const { t, clock } = table(4);
  clock.set(0);
  assert.equal(t.panic(GROUP), false);
  t.setHealthy(0, false);
  assert.equal(t.panic(GROUP), false); // 3/4 available
  trip(t, BREAKER, 1); // open until 1000
  assert.equal(t.isAvailable(1), false);
  assert.equal(t.panic(GROUP), false); // 2/4 = 50 %: not below 50
  assert.equal(t.panic(GROUP, 75), true);
  assert.equal(ejectNow(t, 2, { ...OUTLIER, maxEjectionPercent: 100 }), true);
  assert.equal(t.isAvailable(2), false);
  assert.equal(t.panic(GROUP), true); // 1/4
  assert.equal(t.panic(GROUP, 0), false); // 0 disables panic mode
  assert.equal(t.panic([]), false);
  // Half-open counts as available.
  clock.set(1000);
  assert.equal(t.admit(1, BREAKER), PROBE);
  assert.equal(t.isAvailable(1), true);
  assert.equal(t.panic(GROUP), false); // hosts 1 and 3
});

// ---- housekeeping ---------------------------------------------------------------------------

test('housekeeping repairs transients left by a dead thread, only after two ticks', () => {
  const { t, clock, sab } = table(2);
  const raw = new Int32Array(sab, 0, 2 * L.I32_STRIDE);
  clock.set(5000);
  // A breaker left SWITCHING (episode 0), an ejection left EJECTING, a bucket left ROTATING.
  raw[L.I_BR_WORD] = BREAKER_SWITCHING;
  raw[L.I32_STRIDE + L.I_OD_WORD] = L.EJECTION_EJECTING;
  raw[L.I32_STRIDE + L.I_WINDOW + 3 * L.BUCKET_FIELDS + L.BUCKET_EPOCH] = L.BUCKET_ROTATING;
  assert.equal(t.admit(0, BREAKER), REJECT);
  assert.equal(t.isAvailable(0), false);
  assert.equal(t.isEjected(1), true);
  assert.equal(t.housekeeping(), 0); // first sighting: could be a live transition
  assert.equal(t.housekeeping(), 3);
  assert.equal(t.breakerState(0), BREAKER_OPEN);
  assert.equal(t.snapshot(0).breaker.openUntil, 5000);
  assert.equal(t.isAvailable(0), true);
  assert.equal(t.admit(0, BREAKER), PROBE);
  assert.equal(t.isEjected(1), false);
  assert.equal(raw[L.I32_STRIDE + L.I_WINDOW + 3 * L.BUCKET_FIELDS + L.BUCKET_EPOCH], 0);
  assert.equal(t.housekeeping(), 0);
  // A transient seen once, then gone, is left alone.
  raw[L.I32_STRIDE + L.I_OD_WORD] = L.EJECTION_EJECTING;
  assert.equal(t.housekeeping(), 0);
  raw[L.I32_STRIDE + L.I_OD_WORD] = 0;
  assert.equal(t.housekeeping(), 0);
});

test('housekeeping clears expired ejections', () => {
  const { t, clock } = table(4);
  clock.set(0);
  assert.equal(ejectNow(t, 3), true);
  clock.set(1000);
  t.housekeeping();
  const raw = t.snapshot(3);
  assert.equal(raw.outlier.ejected, false);
  assert.equal(raw.available, true);
});

// ---- real worker threads --------------------------------------------------------------------

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const m = require(workerData.mod);
const { scenario, now, iterations } = workerData;
const t = new m.HostStateTable(workerData.sab, () => now);
const gate = new Int32Array(workerData.gate);
Atomics.add(gate, 1, 1);
Atomics.wait(gate, 0, 0); // all threads start together
const out = { probes: 0, rejects: 0, halfOpened: 0, opened: 0, acquired: 0, refused: 0, maxSeen: 0, minSeen: 0, ejected: 0 };
if (scenario === 'probes') {
  for (let i = 0; i < iterations; i++) {
    const r = t.admit(0, workerData.cfg);
    if (r === m.PROBE) out.probes++; else if (r === m.REJECT) out.rejects++;
    if (t.lastTransition === m.TRANSITION_HALF_OPENED) out.halfOpened++;
  }
} else if (scenario === 'probe-churn') {
  // Probes taken and reported all the time (closeAfter is out of reach, so it stays
  // half-open): the number really in flight, tracked apart, must never exceed the bound.
  const real = new Int32Array(workerData.real);
  for (let i = 0; i < iterations; i++) {
    if (t.admit(0, workerData.cfg) !== m.PROBE) { out.rejects++; continue; }
    out.probes++;
    const n = Atomics.add(real, 0, 1) + 1;
    if (n > out.maxSeen) out.maxSeen = n;
    for (let k = 0; k < (i & 7); k++) Atomics.load(real, 0);
    Atomics.sub(real, 0, 1);
    t.report(0, workerData.cfg, true, true);
  }
} else if (scenario === 'acquire') {
  const max = workerData.max;
  for (let i = 0; i < iterations; i++) {
    if (t.tryAcquire(0, m.KIND_ACTIVE, max)) {
      out.acquired++;
      const n = t.inFlight(0, m.KIND_ACTIVE);
      if (n > out.maxSeen) out.maxSeen = n;
      for (let k = 0; k < (i & 15); k++) Atomics.load(gate, 1); // hold it a little
      t.release(0, m.KIND_ACTIVE);
    } else {
      out.refused++;
    }
    const n = t.inFlight(0, m.KIND_ACTIVE);
    if (n < out.minSeen) out.minSeen = n;
    if (n > out.maxSeen) out.maxSeen = n;
    // Unmatched releases on another slot race with each other: the gauge must stay >= 0.
    t.release(1, m.KIND_PENDING);
    if (t.tryAcquire(1, m.KIND_PENDING, 0)) t.release(1, m.KIND_PENDING);
    t.release(1, m.KIND_PENDING);
    const p = t.inFlight(1, m.KIND_PENDING);
    if (p < out.minSeen) out.minSeen = p;
  }
} else if (scenario === 'failures') {
  for (let i = 0; i < iterations; i++) {
    if (t.report(0, workerData.cfg, false, false) === m.TRANSITION_OPENED) out.opened++;
  }
} else if (scenario === 'eject') {
  for (let i = 0; i < iterations; i++) {
    if (t.recordOutcome(workerData.slot, workerData.ocfg, true, workerData.group)) out.ejected++;
  }
}
parentPort.postMessage(out);
`;

interface WorkerOut {
  probes: number;
  rejects: number;
  halfOpened: number;
  opened: number;
  acquired: number;
  refused: number;
  maxSeen: number;
  minSeen: number;
  ejected: number;
}

async function race(sab: SharedArrayBuffer, data: (i: number) => Record<string, unknown>, threads = 4): Promise<WorkerOut[]> {
  const gateSab = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
  const gate = new Int32Array(gateSab);
  const workers = Array.from({ length: threads }, (_, i) =>
    new Worker(WORKER, { eval: true, workerData: { mod: MODULE, sab, gate: gateSab, ...data(i) } }));
  const results = workers.map((w) => new Promise<WorkerOut>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`worker exited with ${code}`)); });
  }));
  // The main thread never blocks: poll until every worker waits at the gate, then open it.
  while (Atomics.load(gate, 1) < threads) await new Promise((r) => setTimeout(r, 1));
  Atomics.store(gate, 0, 1);
  Atomics.notify(gate, 0);
  try {
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

test('threads: half-open with 3 probe slots hands out exactly 3 probes', async () => {
  const cfg: BreakerConfig = { ...BREAKER, halfOpenProbes: 3, closeAfter: 3 };
  const clock = fakeClock(0);
  const sab = allocHostState(1);
  const t = new HostStateTable(sab, clock.now);
  trip(t, cfg); // open until 1000
  const iterations = 20_000;
  const outs = await race(sab, () => ({ scenario: 'probes', now: 1000, iterations, cfg }));
  const sum = (k: keyof WorkerOut): number => outs.reduce((a, o) => a + o[k], 0);
  assert.equal(sum('probes'), 3);
  assert.equal(sum('rejects'), 4 * iterations - 3);
  assert.equal(sum('halfOpened'), 1);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.state, 'half-open');
  assert.equal(snap.breaker.halfOpened, 1);
  assert.equal(snap.breaker.probesInFlight, 3);
  assert.equal(snap.breaker.probesReclaimed, 0);
});

test('threads: probes taken and reported concurrently never exceed the bound', async () => {
  const cfg: BreakerConfig = { ...BREAKER, halfOpenProbes: 3, closeAfter: 1e9 };
  const sab = allocHostState(1);
  const t = new HostStateTable(sab, () => 0);
  trip(t, cfg); // open until 1000
  const real = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  const iterations = 50_000;
  const outs = await race(sab, () => ({ scenario: 'probe-churn', now: 1000, iterations, cfg, real }));
  for (const o of outs) assert.ok(o.maxSeen <= 3, `${o.maxSeen} probes in flight at once`);
  const probes = outs.reduce((a, o) => a + o.probes, 0);
  assert.ok(probes >= 3);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.state, 'half-open');
  assert.equal(snap.breaker.probesInFlight, 0);
  assert.equal(snap.breaker.halfOpenSuccesses, probes);
  assert.equal(snap.breaker.halfOpened, 1);
});

test('threads: concurrent acquire/release never exceeds max, never negative, returns to 0', async () => {
  const sab = allocHostState(2);
  const t = new HostStateTable(sab, () => 0);
  const max = 2;
  const iterations = 20_000;
  const outs = await race(sab, () => ({ scenario: 'acquire', now: 0, iterations, max }));
  for (const o of outs) {
    assert.ok(o.maxSeen <= max, `observed ${o.maxSeen} > ${max}`);
    assert.ok(o.minSeen >= 0, `observed ${o.minSeen} < 0`);
  }
  const acquired = outs.reduce((a, o) => a + o.acquired, 0);
  const refused = outs.reduce((a, o) => a + o.refused, 0);
  assert.equal(acquired + refused, 4 * iterations);
  assert.ok(acquired > 0);
  const snap = t.snapshot(0);
  assert.equal(snap.concurrency.active, 0);
  assert.equal(snap.concurrency.activeOverflow, refused);
  assert.equal(t.inFlight(1, KIND_PENDING), 0);
});

test('threads: concurrent failures open the breaker exactly once', async () => {
  const cfg: BreakerConfig = { ...BREAKER, consecutiveFailures: 50, failureRatio: 0.5, minRequests: 20, windowMs: 10_000 };
  const sab = allocHostState(1);
  const t = new HostStateTable(sab, () => 0);
  const outs = await race(sab, () => ({ scenario: 'failures', now: 123, iterations: 5000, cfg }));
  assert.equal(outs.reduce((a, o) => a + o.opened, 0), 1);
  const snap = t.snapshot(0);
  assert.equal(snap.breaker.opened, 1);
  assert.equal(snap.breaker.state, 'open');
  assert.equal(snap.breaker.openUntil, 123 + cfg.openMs);
});

test('threads: concurrent ejections in one group respect max ejection percent', async () => {
  // 4 hosts at 25 %: eject only while none is ejected, so exactly one of the four racing hosts.
  const ocfg: OutlierConfig = { ...OUTLIER, maxEjectionPercent: 25 };
  const sab = allocHostState(4);
  const t = new HostStateTable(sab, () => 0);
  const outs = await race(sab, (i) => ({ scenario: 'eject', now: 0, iterations: 2000, slot: i, ocfg, group: GROUP }));
  assert.equal(outs.reduce((a, o) => a + o.ejected, 0), 1);
  assert.equal(GROUP.filter((s) => t.isEjected(s)).length, 1);
  assert.equal(GROUP.reduce((a, s) => a + t.snapshot(s).outlier.ejections, 0), 1);
});
