/**
 * One monotonic clock for every thread of the process, for state kept in SharedArrayBuffers
 * (rate-limit buckets, breakers, ejections, health). `performance.now()` counts from each
 * thread's own time origin, so values from two threads cannot be compared; this module
 * rebases it once per thread onto CLOCK_MONOTONIC (`process.hrtime`), which all threads
 * share, and afterwards costs one `performance.now()` per call.
 *
 * Values are milliseconds since an unspecified point (the machine's boot), as a float with
 * sub-millisecond resolution. They never go backwards and never jump with wall-clock changes.
 */
import { performance } from 'node:perf_hooks';

const OFFSET_MS = Number(process.hrtime.bigint()) / 1e6 - performance.now();

export function monoMs(): number {
  return performance.now() + OFFSET_MS;
}

/** monoMs for a `performance.now()` reading this thread already took (saves a clock read). */
export function monoOfPerf(perfNow: number): number {
  return perfNow + OFFSET_MS;
}
