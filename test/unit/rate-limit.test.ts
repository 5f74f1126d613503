/**
 * The shared rate-limit table: token-bucket arithmetic on an injected clock (exact counts, no
 * timing thresholds), takeover, sweep, abandoned-slot recovery, and real worker threads
 * hammering one SharedArrayBuffer under a frozen clock they read from a second SAB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import {
  E_CAP,
  E_FULL_MS,
  E_KEY_HI,
  E_KEY_LO,
  E_STAMP,
  E_STATE,
  E_TOKENS,
  ENTRY_INTS,
  HDR_CAPACITY,
  HDR_INTS,
  MAX_PROBE,
  RateLimitTable,
  ST_EMPTY,
  ST_INIT,
  ST_LIVE,
  ST_MASK,
  ST_PENDING,
  STUCK_MS,
  allocRateLimitTable,
  compilePolicy,
  policyProblem,
  rateLimitTableBytes,
  retryAfterSeconds,
} from '../../src/shared/rate-limit';

const MODULE = path.resolve(__dirname, '../../src/shared/rate-limit.js');
const DAY_MS = 86_400_000;

/** A table on a hand-driven clock. */
function makeTable(capacity = 1024): { table: RateLimitTable; sab: SharedArrayBuffer; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const sab = allocRateLimitTable(capacity);
  return { table: new RateLimitTable(sab, () => clock.now), sab, clock };
}

/** The (hi, lo) identity a table over `sab` stores for a key. */
function identity(sab: SharedArrayBuffer, key: string): [number, number] {
  const { hi, lo } = new RateLimitTable(sab).identity(key);
  return [hi, lo];
}

/** How many slots hold `key` in the given state (LIVE by default). */
function slotsHolding(sab: SharedArrayBuffer, key: string, state = ST_LIVE): number {
  const i32 = new Int32Array(sab);
  const [hi, lo] = identity(sab, key);
  const capacity = i32[HDR_CAPACITY] as number;
  let n = 0;
  for (let s = 0; s < capacity; s++) {
    const b = HDR_INTS + s * ENTRY_INTS;
    if ((Atomics.load(i32, b + E_STATE) & ST_MASK) === state && i32[b + E_KEY_HI] === hi && i32[b + E_KEY_LO] === lo) n++;
  }
  return n;
}

function takeN(table: RateLimitTable, key: string, policy: ReturnType<typeof compilePolicy>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(table.take(key, policy));
  return out;
}

// ---- policies -------------------------------------------------------------------------------

test('policyProblem accepts representable policies and names what is wrong with the others', () => {
  for (const [rate, burst] of [
    [100, 200],
    [0.5, 1],
    [30 / 60, 30],
    [1, 3600],
    [1000 / 86_400, 1000], // 1000 a day
    [1000, 1],
    [1e6, 1000],
    [1000, 1_000_000],
  ] as const) {
    assert.equal(policyProblem(rate, burst), null, `${rate}/${burst}`);
  }
  for (const rate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) assert.match(policyProblem(rate, 10) ?? '', /^rate must be/);
  for (const burst of [0, 1.5, -3, 2 ** 31]) assert.match(policyProblem(10, burst) ?? '', /^burst must be an integer/);
  // Refilling an empty bucket must take at most about 12 days (2^30 ms).
  assert.match(policyProblem(1 / (30 * 86_400), 1) ?? '', /burst \/ rate is 2592000 s.*at most 1073741 s/);
  assert.match(policyProblem(1, 2_000_000) ?? '', /burst \/ rate/);
  // A token of too few units would put the rate off by over 0.1 %.
  assert.match(policyProblem(2000, 2_000_000) ?? '', /burst 2000000 is too large.*0\.1 %/);
  // More than a bucketful per millisecond.
  assert.match(policyProblem(5000, 1) ?? '', /burst must be at least 5/);
  assert.throws(() => compilePolicy(0, 1), RangeError);
  assert.throws(() => compilePolicy(5000, 1), /burst must be at least 5/);
});

test('compilePolicy precomputes the fixed-point constants; a token is a whole number of ms of refill when the rate allows', () => {
  const p = compilePolicy(10, 5);
  assert.equal(p.rate, 10);
  assert.equal(p.burst, 5);
  assert.equal(p.unitsPerMs, Math.floor((10 * Math.floor(2 ** 30 / 5)) / 1000));
  assert.equal(p.unit, p.unitsPerMs * 100); // exactly 100 ms of refill
  assert.ok(p.unit <= Math.floor(2 ** 30 / 5));
  assert.equal(p.capUnits, 5 * p.unit);
  assert.equal(p.fullMs, 500);
  assert.ok(Object.isFrozen(p));
  for (const [rate, burst, msPerToken] of [
    [0.5, 1, 2000],
    [0.5, 30, 2000],
    [2.5, 3, 400],
    [1000, 1, 1],
    [1000 / 86_400, 1000, 86_400],
  ] as const) {
    const q = compilePolicy(rate, burst);
    assert.equal(q.unit / q.unitsPerMs, msPerToken, `${rate}/${burst}`);
    assert.equal(q.fullMs, msPerToken * burst, `${rate}/${burst}`);
  }
  // Where it cannot be whole, the rate is still within 1/unit.
  const third = compilePolicy(1 / 3, 7);
  assert.ok(Math.abs((third.unitsPerMs * 1000) / third.unit / (1 / 3) - 1) < 1 / third.unit);
});

test('retryAfterSeconds rounds a rejection up to whole seconds, at least 1', () => {
  assert.equal(retryAfterSeconds(-1), 1);
  assert.equal(retryAfterSeconds(-999), 1);
  assert.equal(retryAfterSeconds(-1000), 1);
  assert.equal(retryAfterSeconds(-1001), 2);
  assert.equal(retryAfterSeconds(-60_000), 60);
  assert.throws(() => retryAfterSeconds(0), RangeError);
  assert.throws(() => retryAfterSeconds(3), RangeError);
});

test('capacity must be a power of two >= 16; the table checks the buffer it is given', () => {
  assert.equal(rateLimitTableBytes(16), (HDR_INTS + 16 * ENTRY_INTS) * 4);
  for (const bad of [0, 8, 15, 17, 1000, 1.5]) assert.throws(() => allocRateLimitTable(bad), RangeError);
  assert.throws(() => new RateLimitTable(new SharedArrayBuffer(64)), RangeError);
  const wrongSize = new SharedArrayBuffer(rateLimitTableBytes(16) + 32);
  new Int32Array(wrongSize)[HDR_CAPACITY] = 16;
  assert.throws(() => new RateLimitTable(wrongSize), RangeError);
  // Default clock (monoMs) works without injection.
  const t = new RateLimitTable(allocRateLimitTable(16));
  assert.equal(t.take('k', compilePolicy(1, 2)), 1);
});

// ---- bucket arithmetic ----------------------------------------------------------------------

test('burst is admitted, then rejection with the exact wait', () => {
  const { table } = makeTable();
  const p = compilePolicy(10, 5);
  assert.deepEqual(takeN(table, 'ip:1', p, 5), [4, 3, 2, 1, 0]);
  assert.equal(table.take('ip:1', p), -100);
  assert.equal(table.take('ip:1', p), -100);
});

test('refill over injected time, capped at burst', () => {
  const { table, clock } = makeTable();
  const p = compilePolicy(10, 5);
  takeN(table, 'k', p, 5);
  clock.now += 99;
  assert.equal(table.take('k', p), -1);
  clock.now += 1;
  assert.equal(table.take('k', p), 0);
  assert.equal(table.take('k', p), -100);
  clock.now += 50;
  assert.equal(table.take('k', p), -50);
  clock.now += 250; // 300 ms since the bucket was empty: 3 tokens
  assert.deepEqual(takeN(table, 'k', p, 4), [2, 1, 0, -100]);
  clock.now += 60_000; // far more than a bucketful: capped at burst
  assert.deepEqual(takeN(table, 'k', p, 6), [4, 3, 2, 1, 0, -100]);
  // Refill accrues across many 1 ms steps with nothing rounded away: a token every 100 ms.
  let admitted = 0;
  for (let ms = 1; ms <= 10_000; ms++) {
    clock.now += 1;
    if (table.take('k', p) >= 0) {
      admitted++;
      assert.equal(ms % 100, 0, `admitted at ${ms} ms`);
    }
  }
  assert.equal(admitted, 100);
});

test('fractional rates: 0.5/s and 30/min', () => {
  const { table, clock } = makeTable();
  const half = compilePolicy(0.5, 1);
  assert.equal(table.take('a', half), 0);
  assert.equal(table.take('a', half), -2000);
  clock.now += 1999;
  assert.equal(table.take('a', half), -1);
  clock.now += 1;
  assert.equal(table.take('a', half), 0);

  const perMinute = compilePolicy(30 / 60, 30);
  const first = takeN(table, 'b', perMinute, 31);
  assert.deepEqual(first.slice(0, 30), Array.from({ length: 30 }, (_, i) => 29 - i));
  assert.equal(first[30], -2000);
  clock.now += 20_000;
  assert.deepEqual(takeN(table, 'b', perMinute, 11), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -2000]);
  clock.now += 60_000;
  assert.equal(takeN(table, 'b', perMinute, 31).filter((r) => r >= 0).length, 30);

  const odd = compilePolicy(2.5, 3);
  takeN(table, 'c', odd, 3);
  assert.equal(table.take('c', odd), -400);
  clock.now += 400;
  assert.equal(table.take('c', odd), 0);
});

test('the wait includes a STAMP set ahead by a thread whose clock read later', () => {
  const sab = allocRateLimitTable(64);
  let nowA = 5000;
  const a = new RateLimitTable(sab, () => nowA);
  const b = new RateLimitTable(sab, () => 4990); // same table, an earlier clock reading
  const p = compilePolicy(10, 1);
  assert.equal(a.take('k', p), 0);
  nowA += 100; // STAMP moves to 5100 on this refill
  assert.equal(a.take('k', p), 0);
  assert.equal(b.take('k', p), -(110 + 100));
  assert.equal(slotsHolding(sab, 'k'), 1);
});

test('distinct keys are independent', () => {
  const { table } = makeTable();
  const p = compilePolicy(1, 3);
  assert.deepEqual(takeN(table, 'route:a|ip:1', p, 4), [2, 1, 0, -1000]);
  assert.deepEqual(takeN(table, 'route:a|ip:2', p, 2), [2, 1]);
  assert.deepEqual(takeN(table, 'route:b|ip:1', p, 1), [2]);
  assert.equal(table.take('route:a|ip:2', p), 0);
  const s = table.stats();
  assert.deepEqual(s, { capacity: 1024, live: 3, inserts: 3, evictions: 0, reclaims: 0 });
});

test('the key hash: shared by every view of one table, seeded per table, namespaced, spread over the slots', () => {
  const { sab } = makeTable();
  const a = new RateLimitTable(sab);
  const b = new RateLimitTable(sab); // another worker's view of the same buffer
  const other = new RateLimitTable(allocRateLimitTable(1024));
  const ns = { hi: 0x1234, lo: 0x5678 };
  let sameAcrossTables = 0;
  for (let i = 0; i < 1000; i++) {
    const k = `user-${i}`;
    assert.deepEqual(a.identity(k), b.identity(k));
    const id = a.identity(k);
    assert.ok(id.hi >= 0 && id.hi <= 0x1fffff && (id.hi !== 0 || id.lo !== 0), k);
    assert.notDeepEqual(a.identity(k, ns), id, `${k}: another namespace, another identity`);
    if (other.identity(k).lo === id.lo) sameAcrossTables++;
  }
  assert.ok(sameAcrossTables < 5, `another table's seed gives other identities (${sameAcrossTables} of 1000 alike)`);
  // Sequential keys at a quarter load: every one finds a slot in its window, as with a random
  // hash (which overflows a window here about once in 10^5 tables, by simulation); a hash that
  // clustered similar keys would overflow windows and evict.
  const { table } = makeTable(1024);
  const p = compilePolicy(1, 1);
  for (let i = 0; i < 256; i++) assert.equal(table.take(`k${i}`, p), 0);
  assert.deepEqual(table.stats(), { capacity: 1024, live: 256, inserts: 256, evictions: 0, reclaims: 0 });
});

// ---- takeover -------------------------------------------------------------------------------

test('a full window takes over its least-recently-used entry', () => {
  const { table, sab, clock } = makeTable(16); // one window = the whole table
  const p = compilePolicy(1, 10);
  for (let i = 0; i < 16; i++) {
    assert.equal(table.take(`k${i}`, p), 9);
    clock.now += 1;
  }
  assert.deepEqual(table.stats(), { capacity: 16, live: 16, inserts: 16, evictions: 0, reclaims: 0 });
  assert.equal(table.take('k16', p), 9); // evicts k0, the oldest
  assert.deepEqual(table.stats(), { capacity: 16, live: 16, inserts: 17, evictions: 1, reclaims: 0 });
  assert.equal(slotsHolding(sab, 'k0'), 0);
  clock.now += 1;
  for (let i = 1; i < 16; i++) assert.equal(table.take(`k${i}`, p), 8, `k${i} kept its bucket`);
  clock.now += 1;
  assert.equal(table.take('k0', p), 9); // a fresh bucket; k16 is now the oldest and goes
  assert.equal(slotsHolding(sab, 'k16'), 0);
  assert.equal(table.stats().evictions, 2);
  for (let i = 0; i < 16; i++) assert.equal(slotsHolding(sab, `k${i}`), 1);
});

test('a full bucket is taken over before an older partial one (no state lost)', () => {
  const { table, sab, clock } = makeTable(16);
  const slow = compilePolicy(1, 10);
  const fast = compilePolicy(1000, 1); // full again 2 ms after use
  for (let i = 0; i < 15; i++) {
    table.take(`s${i}`, slow);
    clock.now += 1;
  }
  assert.equal(table.take('fast', fast), 0);
  clock.now += 5;
  assert.equal(table.take('new', slow), 9);
  assert.equal(slotsHolding(sab, 'fast'), 0);
  assert.equal(slotsHolding(sab, 's0'), 1);
  assert.equal(table.take('s0', slow), 8);
});

// ---- sweep ----------------------------------------------------------------------------------

test('sweep refills only buckets idle past idleMs and past a full refill; lookups stay correct', () => {
  const { table, sab, clock } = makeTable(16);
  const p = compilePolicy(10, 5); // full 500 ms after empty
  for (let i = 0; i < 16; i++) takeN(table, `k${i}`, p, 5); // 16 keys fill the table; all empty
  clock.now += 200;
  assert.equal(table.sweep(100), 0); // idle 200 > 100, but not yet full: untouched
  clock.now += 400;
  assert.equal(table.sweep(1000), 0); // idle 600 <= 1000
  assert.equal(table.sweep(100), 16);
  assert.equal(table.sweep(100), 0); // STAMPs are now fresh
  for (let i = 0; i < 16; i++) assert.equal(table.take(`k${i}`, p), 4, `k${i}`);
  assert.deepEqual(table.stats(), { capacity: 16, live: 16, inserts: 16, evictions: 0, reclaims: 0 });
  for (let i = 0; i < 16; i++) assert.equal(slotsHolding(sab, `k${i}`), 1);
  // A partly used bucket is left exactly as it was.
  clock.now += 101;
  assert.deepEqual(takeN(table, 'k0', p, 6), [4, 3, 2, 1, 0, -100]); // 4 + 1.01 capped at 5
  clock.now += 400;
  assert.equal(table.sweep(100), 15); // all but k0 (refilled 400 ms ago: not yet full)
  assert.deepEqual(takeN(table, 'k0', p, 5), [3, 2, 1, 0, -100]);
});

test('sweep keeps STAMPs from reaching the int32 wrap over a month', () => {
  const { table, clock } = makeTable(64);
  const p = compilePolicy(10, 5);
  takeN(table, 'idle', p, 5);
  for (let d = 0; d < 40; d++) {
    clock.now += DAY_MS;
    table.sweep(3_600_000);
  }
  assert.deepEqual(takeN(table, 'idle', p, 6), [4, 3, 2, 1, 0, -100]);
  // Without a sweep, an idle time past 2^31 ms still reads as elapsed (wrap guard).
  clock.now += 2 ** 31 + 5000;
  assert.equal(table.take('idle', p), 4);
});

test('slots abandoned mid-insert: fail open while the window is blocked, reclaimed by sweep', () => {
  const { table, sab, clock } = makeTable(16);
  const i32 = new Int32Array(sab);
  const p = compilePolicy(10, 5);
  // A dead thread left every slot of the (only) window claimed, generation 1.
  for (let s = 0; s < 16; s++) i32[HDR_INTS + s * ENTRY_INTS + E_STATE] = 4 | ST_INIT;
  assert.equal(table.take('x', p), 0); // admitted: no slot to decide with
  assert.equal(table.stats().live, 0);
  assert.equal(table.sweep(60_000), 0); // first sighting
  clock.now += STUCK_MS - 1;
  assert.equal(table.sweep(60_000), 0);
  clock.now += 1;
  assert.equal(table.sweep(60_000), 16);
  assert.equal(table.stats().reclaims, 16);
  assert.deepEqual(takeN(table, 'x', p, 6), [4, 3, 2, 1, 0, -100]);
  assert.deepEqual(table.stats(), { capacity: 16, live: 1, inserts: 1, evictions: 0, reclaims: 16 });
});

test('a claim of the same key left PENDING is aborted by the next taker; one bucket results', () => {
  const { table, sab } = makeTable(64);
  const i32 = new Int32Array(sab);
  const p = compilePolicy(10, 5);
  const [hi, lo] = identity(sab, 'y');
  const b = HDR_INTS + (lo & 63) * ENTRY_INTS;
  i32[b + E_KEY_HI] = hi;
  i32[b + E_KEY_LO] = lo;
  i32[b + E_STAMP] = 0;
  i32[b + E_TOKENS] = p.capUnits;
  i32[b + E_CAP] = p.capUnits;
  i32[b + E_FULL_MS] = p.fullMs;
  i32[b + E_STATE] = 4 | ST_PENDING;
  assert.equal(table.take('y', p), 4);
  assert.equal(table.take('y', p), 3);
  assert.equal(slotsHolding(sab, 'y'), 1);
  assert.equal(slotsHolding(sab, 'y', ST_PENDING), 0);
  assert.equal(table.stats().inserts, 1);
});

// ---- real threads ---------------------------------------------------------------------------

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const { RateLimitTable, compilePolicy } = require(workerData.mod);
const clock = new Int32Array(workerData.clock);
const ctl = new Int32Array(workerData.ctl);
const n = workerData.threads;
const tables = new Map();
parentPort.on('message', (m) => {
  let table = tables.get(m.table);
  if (!table) tables.set(m.table, (table = new RateLimitTable(m.table, () => Atomics.load(clock, 0))));
  const policy = compilePolicy(m.rate, m.burst);
  // Barrier: start every thread's loop together, for the most contention.
  const arrived = Atomics.add(ctl, 0, 1) + 1;
  const target = m.phase * n;
  if (arrived === target) Atomics.notify(ctl, 0);
  for (let a = arrived; a < target; a = Atomics.load(ctl, 0)) Atomics.wait(ctl, 0, a, 10);
  const admitted = new Array(m.keys.length).fill(0);
  const stride = m.stride ? 1 + 2 * workerData.index : 1;
  const sweeper = m.sweepEvery && workerData.index === 0;
  let touched = 0;
  for (let i = 0; i < m.iterations; i++) {
    const k = (i * stride) % m.keys.length;
    if (sweeper && i % m.sweepEvery === 0) touched += table.sweep(0);
    if (table.take(m.keys[k], policy) >= 0) admitted[k]++;
  }
  parentPort.postMessage({ admitted, touched });
});
`;

interface Phase {
  table: SharedArrayBuffer;
  keys: string[];
  rate: number;
  burst: number;
  iterations: number;
  stride?: boolean;
  /** Thread 0 also calls sweep(0) every this many takes. */
  sweepEvery?: number;
}

test('worker threads hammering one table: no lost updates, one bucket per key', async (t) => {
  const THREADS = 4;
  const clockSab = new SharedArrayBuffer(4);
  const clock = new Int32Array(clockSab);
  Atomics.store(clock, 0, 1_000_000);
  const ctl = new SharedArrayBuffer(4);
  const workers = Array.from(
    { length: THREADS },
    (_, index) => new Worker(WORKER, { eval: true, workerData: { mod: MODULE, clock: clockSab, ctl, threads: THREADS, index } }),
  );
  const failed = new Promise<never>((_, reject) => {
    for (const w of workers) w.once('error', reject);
  });
  let phase = 0;
  let swept = 0;
  /** Runs one phase on every thread; returns admitted per key, summed over threads. */
  const run = async (p: Phase): Promise<number[]> => {
    phase++;
    const replies = workers.map((w) => new Promise<{ admitted: number[]; touched: number }>((resolve) => w.once('message', resolve)));
    for (const w of workers) w.postMessage({ ...p, phase });
    const all = await Promise.race([Promise.all(replies), failed]);
    swept = all.reduce((sum, r) => sum + r.touched, 0);
    return p.keys.map((_, k) => all.reduce((sum, r) => sum + (r.admitted[k] as number), 0));
  };
  const observer = (sab: SharedArrayBuffer): RateLimitTable => new RateLimitTable(sab, () => Atomics.load(clock, 0));

  try {
    // Same few keys from every thread; the first takes also race to insert them.
    const hot = allocRateLimitTable(1024);
    const keys = ['h0', 'h1', 'h2', 'h3'];
    const burst = 1000;
    const rate = 2000; // 500 tokens per 250 ms, exactly
    const base = { table: hot, keys, rate, burst, iterations: 20_000 };
    assert.deepEqual(await run(base), [burst, burst, burst, burst], 'frozen clock: exactly burst per key');
    for (const k of keys) assert.equal(slotsHolding(hot, k), 1, `one bucket for ${k}`);
    assert.deepEqual(observer(hot).stats(), { capacity: 1024, live: 4, inserts: 4, evictions: 0, reclaims: 0 });

    Atomics.add(clock, 0, 250);
    assert.deepEqual(await run(base), [500, 500, 500, 500], 'refill of 250 ms added exactly once');

    Atomics.add(clock, 0, 100_000);
    assert.deepEqual(await run(base), [burst, burst, burst, burst], 'a long idle refills to burst, not beyond');

    // The same with one thread sweeping as it goes (a small table, so that a sweep is as quick
    // as a take): sweep and takers race for the one refill, whoever wins it.
    const small = { ...base, table: allocRateLimitTable(16) };
    assert.deepEqual(await run(small), [burst, burst, burst, burst]);
    let sweepWon = 0;
    for (let round = 0; round < 4; round++) {
      Atomics.add(clock, 0, 100_000);
      assert.deepEqual(await run({ ...small, sweepEvery: 16 }), [burst, burst, burst, burst], 'one refill per bucket');
      assert.ok(swept <= keys.length);
      sweepWon += swept;
    }
    assert.deepEqual(observer(small.table).stats(), { capacity: 16, live: 4, inserts: 4, evictions: 0, reclaims: 0 });
    t.diagnostic(`sweep won ${sweepWon} of 16 refills (varies with scheduling; the counts may not)`);

    // Fresh keys, every thread taking each once in the same order: insert races on each.
    const fresh = allocRateLimitTable(4096);
    const freshKeys = Array.from({ length: 300 }, (_, i) => `fresh:${i}`);
    const got = await run({ table: fresh, keys: freshKeys, rate: 1, burst: 10, iterations: freshKeys.length });
    assert.deepEqual(got, freshKeys.map(() => THREADS));
    for (const k of freshKeys) assert.equal(slotsHolding(fresh, k), 1, `one bucket for ${k}`);
    const seen = observer(fresh);
    assert.deepEqual(seen.stats(), { capacity: 4096, live: 300, inserts: 300, evictions: 0, reclaims: 0 });
    // Every thread's token came out of that one bucket: 10 - 4 - 1 left.
    const p = compilePolicy(1, 10);
    for (const k of freshKeys) assert.equal(seen.take(k, p), 10 - THREADS - 1, k);

    // Far more keys than slots, with takeovers racing inserts and takes: never two live
    // buckets for one key, and the counters add up.
    const tiny = allocRateLimitTable(16);
    const many = Array.from({ length: 64 }, (_, i) => `churn:${i}`);
    await run({ table: tiny, keys: many, rate: 1, burst: 5, iterations: 5000, stride: true });
    for (const k of many) assert.ok(slotsHolding(tiny, k) <= 1, `at most one bucket for ${k}`);
    const st = observer(tiny).stats();
    assert.ok(st.evictions > 0);
    // A slot turns LIVE only by an insert and stops being LIVE only by a takeover.
    assert.equal(st.inserts - st.evictions, st.live);
    // Every claim ended, published or given back: nothing is left INIT or PENDING.
    const i32 = new Int32Array(tiny);
    for (let s = 0; s < MAX_PROBE; s++) {
      const w = Atomics.load(i32, HDR_INTS + s * ENTRY_INTS + E_STATE) & ST_MASK;
      assert.ok(w === ST_LIVE || w === ST_EMPTY, `slot ${s} settled (state ${w})`);
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
});
