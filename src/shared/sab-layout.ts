/**
 * SharedArrayBuffer layouts shared by the primary and the HTTP workers (after piscina's
 * src/symbols.ts): named offsets, sizes computed from them, no literal offsets anywhere else.
 * The primary allocates each buffer once per process and hands the same buffer to every
 * worker it spawns or respawns, so the values survive worker restarts and reloads.
 */

/** Instance counters, as BigInt64 slots. */
export const COUNTER_EVENT_SEQ = 0; // last request-event sequence number handed out (first event gets 1)
export const COUNTER_SLOTS = 1;

export const COUNTERS_BYTES = COUNTER_SLOTS * BigInt64Array.BYTES_PER_ELEMENT;

export function allocCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer(COUNTERS_BYTES);
}

/**
 * Takes the next request-event sequence number. Atomics.add is a single read-modify-write,
 * so two workers can never take the same number and none is skipped (gap-free unless an
 * event taken is then dropped, which is exactly what a consumer should see as a gap).
 */
export function nextEventSeq(counters: BigInt64Array): number {
  // A number, exact to 2^53 events (centuries at a million a second): its decimal text is
  // written digit by digit, cheaper than BigInt#toString per event.
  return Number(Atomics.add(counters, COUNTER_EVENT_SEQ, 1n)) + 1;
}
