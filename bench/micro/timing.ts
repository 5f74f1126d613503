/**
 * Timing helpers of the micro-benchmarks: CPU time (not wall time), calibrated iteration
 * counts, interleaved contenders, fastest of N runs (on a shared machine interference only
 * ever adds time). Results feed `sink` so that V8 cannot drop the work.
 */
export const state = { sink: 0 };

/** CPU time of this process so far, in ns (process-wide: the JS thread plus any GC helpers). */
export function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** Iterations of `fn` that take about `targetMs` of CPU (after warming it up). */
export function calibrate(fn: () => number, targetMs: number): number {
  let iters = 1;
  for (;;) {
    const t0 = cpuNs();
    for (let i = 0; i < iters; i++) state.sink += fn();
    const ms = (cpuNs() - t0) / 1e6;
    if (ms > targetMs / 4) return Math.max(1, Math.round((iters * targetMs) / ms));
    iters *= 2;
  }
}

/**
 * ns per call of each of `fns` (each runs `inner` calls per invocation), in CPU time rather
 * than wall time. The contenders' timed runs are interleaved (A B C A B C ...) so that they
 * see the same conditions, and each reports its fastest run.
 */
export function measure(fns: (() => number)[], inner: number, quick: boolean, targetMs = quick ? 10 : 60): number[] {
  const iters = fns.map((fn) => calibrate(fn, targetMs));
  const best = fns.map(() => Infinity);
  for (let r = 0; r < (quick ? 3 : 15); r++) {
    fns.forEach((fn, k) => {
      const n = iters[k] as number;
      const t0 = cpuNs();
      for (let i = 0; i < n; i++) state.sink += fn();
      best[k] = Math.min(best[k] as number, (cpuNs() - t0) / (n * inner));
    });
  }
  return best;
}
