/**
 * A coarse shared clock for timeouts (after undici's lib/util/timers.js and
 * pingora-timeout): one interval per thread advances `coarseNow` and sweeps the registered
 * deadline holders, instead of one setTimeout per request.
 *
 * Accuracy trade-off: a deadline fires between 0 and TICK_MS late (100 ms). Timeouts below
 * a second are therefore approximate; none of Sluice's defaults is.
 *
 * Never allocate in `sweep`; holders are kept in a Set so adding and removing is O(1).
 */

export const TICK_MS = 100;

export interface DeadlineHolder {
  /** coarse time (ms) at which `onDeadline` must run; 0 = none armed. */
  deadline: number;
  onDeadline(now: number): void;
}

let coarse = Math.floor(performance.now());
const holders = new Set<DeadlineHolder>();
let timer: NodeJS.Timeout | undefined;

function sweep(): void {
  coarse = Math.floor(performance.now());
  for (const h of holders) {
    if (h.deadline !== 0 && h.deadline <= coarse) {
      h.deadline = 0;
      holders.delete(h);
      h.onDeadline(coarse);
    }
  }
}

/**
 * Milliseconds on the monotonic clock, updated every tick (and on `refreshNow`). Before the
 * first holder starts the tick, nothing advances `coarse`, so it is read fresh: a deadline
 * armed by a thread's first request would otherwise start from the thread's start time and
 * fire early.
 */
export function coarseNow(): number {
  if (timer === undefined) coarse = Math.floor(performance.now());
  return coarse;
}

export function refreshNow(): number {
  coarse = Math.floor(performance.now());
  return coarse;
}

export function track(h: DeadlineHolder): void {
  holders.add(h);
  if (timer === undefined) {
    timer = setInterval(sweep, TICK_MS);
    timer.unref();
  }
}

export function untrack(h: DeadlineHolder): void {
  holders.delete(h);
}

/** Number of armed holders; for tests and metrics. */
export function trackedCount(): number {
  return holders.size;
}
