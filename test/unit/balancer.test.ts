/**
 * Selection within an upstream group (src/workers/http/upstream/balancer.ts): the exact smooth weighted
 * round-robin sequence, the bounded fallback walk with the caller's accept predicate, and
 * the random selectors driven by a seeded generator so every run sees the same draws.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LeastRequestP2C, SmoothRoundRobin, WeightedRandom, buildSelector, type Accept, type BalancedHost, type Selector } from '../../src/workers/http/upstream/balancer';

function hosts(...weights: number[]): BalancedHost[] {
  return weights.map((weight) => ({ weight, active: 0 }));
}

/** Numerical Recipes LCG on 32 bits: deterministic uniform draws in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A random function returning the given values in turn (and failing when they run out). */
function scripted(...values: number[]): () => number {
  let i = 0;
  return () => {
    const v = values[i++];
    assert.ok(v !== undefined, 'random() called more often than scripted');
    return v;
  };
}

function picks(sel: Selector, n: number, accept: Accept | null = null): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(sel.pick(accept));
  return out;
}

function counts(seq: readonly number[], n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of seq) c[i] = (c[i] ?? 0) + 1;
  return c;
}

/** An accept predicate that records its calls. */
function recorder(accepted: ReadonlySet<number>): { accept: Accept; calls: number[] } {
  const calls: number[] = [];
  return { calls, accept: (i) => (calls.push(i), accepted.has(i)) };
}

describe('SmoothRoundRobin', () => {
  test('weights 5,1,1 give nginx’s a a b a c a a, cycle after cycle', () => {
    const rr = new SmoothRoundRobin(hosts(5, 1, 1));
    const letters = (seq: number[]) => seq.map((i) => 'abc'[i]).join(' ');
    assert.equal(letters(picks(rr, 7)), 'a a b a c a a');
    assert.equal(letters(picks(rr, 7)), 'a a b a c a a');
    assert.equal(letters(picks(rr, 14)), 'a a b a c a a a a b a c a a');
  });

  test('equal weights rotate in order', () => {
    assert.deepEqual(picks(new SmoothRoundRobin(hosts(1, 1, 1)), 7), [0, 1, 2, 0, 1, 2, 0]);
    assert.deepEqual(picks(new SmoothRoundRobin(hosts(2, 2)), 4), [0, 1, 0, 1]);
  });

  test('weights 2,1 interleave', () => {
    assert.deepEqual(picks(new SmoothRoundRobin(hosts(2, 1)), 6), [0, 1, 0, 0, 1, 0]);
  });

  test('each cycle of totalWeight picks hits every host exactly its weight', () => {
    for (const ws of [[5, 1, 1], [3, 1], [7, 3, 2, 1], [1], [10, 10, 1], [4, 6]]) {
      const rr = new SmoothRoundRobin(hosts(...ws));
      const total = ws.reduce((a, b) => a + b, 0);
      assert.equal(rr.totalWeight, total);
      for (let cycle = 0; cycle < 5; cycle++) {
        assert.deepEqual(counts(picks(rr, total), ws.length), ws, `weights ${ws.join(',')} cycle ${cycle}`);
      }
    }
  });

  test('the heavy host is spread, not bunched: longest run of a is 4 with 5,1,1', () => {
    // Within a cycle the longest run of a is 2; runs join only across cycle borders
    // (… c a a | a a b …) → 4. Plain weighted round robin (a a a a a b c) gives 5.
    const seq = picks(new SmoothRoundRobin(hosts(5, 1, 1)), 70);
    let longest = 0;
    let run = 0;
    for (const i of seq) {
      run = i === 0 ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    assert.equal(longest, 4);
  });

  test('single host, and no hosts', () => {
    assert.deepEqual(picks(new SmoothRoundRobin(hosts(3)), 3), [0, 0, 0]);
    assert.equal(new SmoothRoundRobin([]).pick(null), -1);
    assert.equal(new SmoothRoundRobin([]).pick(() => true), -1);
  });

  test('accept true everywhere changes nothing', () => {
    const a = picks(new SmoothRoundRobin(hosts(5, 1, 1)), 21);
    const b = picks(new SmoothRoundRobin(hosts(5, 1, 1)), 21, () => true);
    assert.deepEqual(b, a);
  });

  test('fallback walk skips a refused host', () => {
    const rr = new SmoothRoundRobin(hosts(1, 1, 1));
    const r = recorder(new Set([1, 2]));
    for (let k = 0; k < 30; k++) {
      r.calls.length = 0;
      const got = rr.pick(r.accept);
      assert.ok(got === 1 || got === 2, `picked ${got}`);
      assert.ok(r.calls.length <= 2, `accept called ${r.calls.length} times`);
      assert.equal(r.calls.filter((i) => i === 0).length <= 1, true, 'refused host asked twice in one pick');
    }
  });

  test('fallback: the refused host never comes back within one pick, others still share', () => {
    const rr = new SmoothRoundRobin(hosts(5, 1, 1));
    const seq = picks(rr, 60, (i) => i !== 0);
    assert.ok(!seq.includes(0));
    const c = counts(seq, 3);
    assert.equal((c[1] ?? 0) + (c[2] ?? 0), 60);
    assert.ok(Math.abs((c[1] ?? 0) - (c[2] ?? 0)) <= 2, `1 and 2 not shared evenly: ${c.join(',')}`);
  });

  test('nothing accepted: -1 after asking each host exactly once', () => {
    for (const n of [1, 2, 3, 5, 8]) {
      const rr = new SmoothRoundRobin(hosts(...Array.from({ length: n }, (_, i) => i + 1)));
      for (let k = 0; k < 3; k++) {
        const r = recorder(new Set());
        assert.equal(rr.pick(r.accept), -1);
        assert.equal(r.calls.length, n, `n=${n}: accept called ${r.calls.length} times`);
        assert.deepEqual([...r.calls].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), `n=${n}: not each host once`);
      }
    }
  });

  test('only the last candidate accepted: found within N calls', () => {
    const rr = new SmoothRoundRobin(hosts(5, 1, 1, 1));
    for (let k = 0; k < 10; k++) {
      const r = recorder(new Set([3]));
      assert.equal(rr.pick(r.accept), 3);
      assert.ok(r.calls.length <= 4, `accept called ${r.calls.length} times`);
    }
  });
});

describe('WeightedRandom', () => {
  test('maps a uniform draw over cumulative weights', () => {
    // weights 1,3,1: [0,1) → 0, [1,4) → 1, [4,5) → 2 on the scale of total 5
    const draws = [0, 0.19, 0.2, 0.5, 0.79, 0.8, 0.999];
    const wr = new WeightedRandom(hosts(1, 3, 1), scripted(...draws));
    assert.deepEqual(picks(wr, draws.length), [0, 0, 1, 1, 1, 2, 2]);
  });

  test('refused host: the walk continues round the list', () => {
    const wr = new WeightedRandom(hosts(1, 1, 1), scripted(0.9, 0.9, 0.1));
    const r = recorder(new Set([0]));
    assert.equal(wr.pick(r.accept), 0);
    assert.deepEqual(r.calls, [2, 0], 'starts at 2, wraps to 0');
    r.calls.length = 0;
    assert.equal(wr.pick((i) => (r.calls.push(i), i === 1)), 1);
    assert.deepEqual(r.calls, [2, 0, 1]);
    r.calls.length = 0;
    assert.equal(wr.pick(r.accept), 0);
    assert.deepEqual(r.calls, [0]);
  });

  test('nothing accepted: -1 after exactly N calls', () => {
    const wr = new WeightedRandom(hosts(1, 2, 3, 4), lcg(7));
    for (let k = 0; k < 20; k++) {
      const r = recorder(new Set());
      assert.equal(wr.pick(r.accept), -1);
      assert.equal(r.calls.length, 4);
      assert.deepEqual([...r.calls].sort(), [0, 1, 2, 3]);
    }
  });

  test('no hosts: -1', () => {
    assert.equal(new WeightedRandom([], lcg(1)).pick(null), -1);
  });

  test('weights respected over a large seeded sample', () => {
    const ws = [1, 2, 3, 4];
    const n = 100_000;
    const c = counts(picks(new WeightedRandom(hosts(...ws), lcg(12345)), n), ws.length);
    ws.forEach((w, i) => {
      const expected = (n * w) / 10;
      assert.ok(Math.abs((c[i] ?? 0) - expected) < expected * 0.05, `host ${i}: ${c[i]} vs ${expected}`);
    });
  });

  test('the same seed gives the same sequence', () => {
    const a = picks(new WeightedRandom(hosts(1, 2, 3), lcg(99)), 50);
    const b = picks(new WeightedRandom(hosts(1, 2, 3), lcg(99)), 50);
    assert.deepEqual(a, b);
    assert.ok(new Set(a).size === 3);
  });
});

describe('LeastRequestP2C', () => {
  test('of two distinct draws, the one with fewer active requests wins', () => {
    const hs = hosts(1, 1);
    hs[0]!.active = 5;
    // 0.1 → host 0, 0.9 → host 1: the second draw wins
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9)).pick(null), 1);
    // reversed draw order, same winner
    assert.equal(new LeastRequestP2C(hs, scripted(0.9, 0.1)).pick(null), 1);
    hs[0]!.active = 0;
    hs[1]!.active = 1;
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9)).pick(null), 0);
  });

  test('active requests are compared relative to weight', () => {
    const hs = hosts(4, 1);
    hs[0]!.active = 3; // 3/4 < 1/1
    hs[1]!.active = 1;
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9)).pick(null), 0);
    hs[0]!.active = 5; // 5/4 > 1/1
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9)).pick(null), 1);
  });

  test('a tie is broken by one more draw', () => {
    const hs = hosts(1, 1);
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9, 0.2)).pick(null), 0);
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.9, 0.7)).pick(null), 1);
  });

  test('both draws on the same host: that host, with no extra draw', () => {
    const hs = hosts(1, 1);
    hs[0]!.active = 100;
    assert.equal(new LeastRequestP2C(hs, scripted(0.1, 0.2)).pick(null), 0);
  });

  test('single host: one draw', () => {
    assert.equal(new LeastRequestP2C(hosts(1), scripted(0.5)).pick(null), 0);
  });

  test('prefers idle hosts over a large seeded sample', () => {
    const hs = hosts(1, 1, 1);
    hs[0]!.active = 10;
    hs[1]!.active = 5;
    const c = counts(picks(new LeastRequestP2C(hs, lcg(42)), 30_000), 3);
    // host 0 only when both draws land on it (1/9); host 2 whenever drawn (5/9)
    assert.ok((c[2] ?? 0) > (c[1] ?? 0) && (c[1] ?? 0) > (c[0] ?? 0), c.join(','));
    assert.ok(Math.abs((c[0] ?? 0) - 30_000 / 9) < 30_000 * 0.02, `host 0: ${c[0]}`);
    assert.ok(Math.abs((c[2] ?? 0) - (30_000 * 5) / 9) < 30_000 * 0.02, `host 2: ${c[2]}`);
  });

  test('with equal load, weights are respected', () => {
    const ws = [1, 3];
    const n = 40_000;
    const c = counts(picks(new LeastRequestP2C(hosts(...ws), lcg(2024)), n), 2);
    assert.ok(Math.abs((c[1] ?? 0) / n - 0.75) < 0.03, `host 1 share ${(c[1] ?? 0) / n}`);
  });

  test('refused hosts are never returned; -1 when none accepted', () => {
    const p = new LeastRequestP2C(hosts(1, 1, 1), lcg(5));
    const seq = picks(p, 200, (i) => i !== 1);
    assert.ok(!seq.includes(1));
    assert.ok(seq.includes(0) && seq.includes(2));
    assert.equal(p.pick(() => false), -1);
  });

  test('nothing accepted: accept called at most N times', () => {
    const p = new LeastRequestP2C(hosts(1, 1, 1, 1), lcg(9));
    const r = recorder(new Set());
    assert.equal(p.pick(r.accept), -1);
    assert.equal(r.calls.length, 4);
  });
});

describe('buildSelector', () => {
  test('maps each balance kind to its class', () => {
    assert.ok(buildSelector('round_robin', hosts(1)) instanceof SmoothRoundRobin);
    assert.ok(buildSelector('least_request', hosts(1)) instanceof LeastRequestP2C);
    assert.ok(buildSelector('random', hosts(1)) instanceof WeightedRandom);
  });

  test('built selectors pick valid indexes', () => {
    for (const kind of ['round_robin', 'least_request', 'random'] as const) {
      const s = buildSelector(kind, hosts(2, 1, 1));
      for (const i of picks(s, 50)) assert.ok(i >= 0 && i < 3, `${kind} picked ${i}`);
    }
  });
});
