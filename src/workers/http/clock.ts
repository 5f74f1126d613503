/**
 * A coarse shared clock for timeouts (after undici's lib/util/timers.js and
 * pingora-timeout): one interval per thread advances `coarseNow` and sweeps the registered
 * deadline holders, instead of one setTimeout per request.
 *
 * Accuracy trade-off: a deadline fires between 0 and TICK_MS late (100 ms). Timeouts below
 * a second are therefore approximate; none of Sluice's defaults is.
 *
 * Never allocate in `sweep`. Holders are kept in an array and know their own slot in it
 * (`trackSlot`), so adding and removing are O(1) without the hash-table upkeep of a Set
 * (rehashing a Set that gains and loses two holders per request showed in profiles).
 */
import { performance } from 'node:perf_hooks';

export const TICK_MS = 100;

export interface DeadlineHolder {
  /** coarse time (ms) at which `onDeadline` must run; 0 = none armed. */
  deadline: number;
  /** The holder's slot in the clock's list while tracked, -1 when not: the clock's bookkeeping, start it at -1. */
  trackSlot: number;
  onDeadline(now: number): void;
}

let coarse = Math.floor(performance.now());
const holders: DeadlineHolder[] = [];
let timer: NodeJS.Timeout | undefined;

function sweep(): void {
  coarse = Math.floor(performance.now());
  // Backwards: untrack() fills a slot with the last holder, which this loop has already seen;
  // holders tracked by a callback are appended and not due yet.
  for (let i = holders.length - 1; i >= 0; i--) {
    const h = holders[i];
    if (h === undefined) continue; // callbacks untracked several holders
    if (h.deadline !== 0 && h.deadline <= coarse) {
      h.deadline = 0;
      untrack(h);
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
  if (h.trackSlot !== -1) return;
  h.trackSlot = holders.length;
  holders.push(h);
  if (timer === undefined) {
    timer = setInterval(sweep, TICK_MS);
    timer.unref();
  }
}

export function untrack(h: DeadlineHolder): void {
  const i = h.trackSlot;
  if (i === -1) return;
  h.trackSlot = -1;
  const last = holders.pop() as DeadlineHolder;
  if (last !== h) {
    holders[i] = last;
    last.trackSlot = i;
  }
}

/** Number of armed holders; for tests and metrics. */
export function trackedCount(): number {
  return holders.length;
}
