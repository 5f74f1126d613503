/**
 * Other people's work on the machine: the bench cannot stop it, but it can wait for it to
 * pass before a run, measure it during a run, and say so in the report.
 */
import { performance } from 'node:perf_hooks';
import { cpuBusyPercent, readCpuTimes, sleep } from './proc';

/** A CPU busier than this (%, over half a second) means "not quiet" for --quiet-wait. */
export const QUIET_PCT = 15;

/** Other processes' CPU during a run (% of one CPU) above which the run is called noisy. */
export const NOISY_OTHER_PCT = 10;

/**
 * Wait until every CPU is under QUIET_PCT busy over half a second, for at most `maxSec`.
 * Between runs the bench's own processes idle, so what is busy then is someone else.
 * Returns the seconds waited, or -1 when the machine never went quiet.
 */
export async function waitQuiet(maxSec: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const a = readCpuTimes();
    await sleep(500);
    const busy = Object.values(cpuBusyPercent(a, readCpuTimes()));
    const waited = (performance.now() - t0) / 1000;
    if (busy.every((b) => b < QUIET_PCT)) return waited;
    if (waited >= maxSec) return -1;
  }
}

