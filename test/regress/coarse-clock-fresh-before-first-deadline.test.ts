/**
 * Regression: the coarse clock only advanced once a deadline holder started its
 * tick, so a worker's first deadline was computed from the time the module loaded and fired
 * early (a 400 ms head timeout answered 504 after 178 ms on a worker that had been idle).
 * `coarseNow()` must be fresh while no tick runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coarseNow, track, untrack, type DeadlineHolder } from '../../src/workers/http/clock';

test('coarseNow is fresh before the first holder starts the tick', async () => {
  await new Promise((r) => setTimeout(r, 250));
  const before = Math.floor(performance.now());
  const now = coarseNow();
  assert.ok(now >= before, `coarseNow ${now} lags performance.now ${before}: a deadline armed now would fire early`);
  // After the tick has started, the value is advanced by it (and may lag by at most a tick).
  const h: DeadlineHolder = { deadline: 0, trackSlot: -1, onDeadline: () => undefined };
  h.deadline = coarseNow() + 60000;
  track(h);
  untrack(h);
});
