/**
 * The coarse clock's holder list (src/workers/http/clock.ts): O(1) track/untrack by slot, and a
 * sweep that fires every due holder exactly once even when callbacks untrack or track others.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refreshNow, TICK_MS, track, trackedCount, untrack, type DeadlineHolder } from '../../src/workers/http/clock';
import { sleep } from '../helpers';

class Holder implements DeadlineHolder {
  deadline = 0;
  trackSlot = -1;
  fired = 0;
  constructor(private readonly then: (h: Holder) => void = () => undefined) {}
  onDeadline(): void {
    this.fired++;
    this.then(this);
  }
}

function arm(h: Holder, inMs: number): void {
  h.deadline = refreshNow() + inMs;
  track(h);
}

test('track and untrack are idempotent and keep every slot right', () => {
  const base = trackedCount();
  const hs = Array.from({ length: 10 }, () => new Holder());
  for (const h of hs) arm(h, 60_000);
  track(hs[3] as Holder); // already tracked: no second slot
  assert.equal(trackedCount(), base + 10);
  for (const i of [0, 9, 4, 4]) untrack(hs[i] as Holder); // the second untrack of 4 is a no-op
  assert.equal(trackedCount(), base + 7);
  for (const h of hs) assert.equal(h.trackSlot === -1, [0, 4, 9].includes(hs.indexOf(h)));
  for (const h of hs) untrack(h);
  assert.equal(trackedCount(), base);
});

test('a sweep fires each due holder once, also when callbacks untrack and track others', async () => {
  const base = trackedCount();
  const later = Array.from({ length: 5 }, () => new Holder());
  for (const h of later) arm(h, 60_000);
  const added: Holder[] = [];
  const due: Holder[] = [];
  for (let i = 0; i < 30; i++) {
    due.push(
      new Holder(() => {
        // Callbacks change the list while the sweep walks it.
        if (i % 3 === 0) untrack(due[(i + 7) % due.length] as Holder);
        if (i % 5 === 0) {
          const h = new Holder();
          arm(h, 60_000);
          added.push(h);
        }
      }),
    );
  }
  for (const h of due) arm(h, 1);
  await sleep(3 * TICK_MS);
  const fired = due.filter((h) => h.fired > 0);
  assert.ok(due.every((h) => h.fired <= 1), 'no holder fires twice');
  // None is left behind: each fired or was untracked by another's callback before its turn.
  assert.ok(due.every((h) => h.trackSlot === -1));
  assert.ok(fired.length >= 20, `${fired.length} of 30 fired`);
  assert.ok(later.every((h) => h.fired === 0 && h.trackSlot !== -1), 'holders not due stay tracked');
  assert.equal(trackedCount(), base + later.length + added.length);
  for (const h of [...later, ...added]) untrack(h);
  assert.equal(trackedCount(), base);
});
