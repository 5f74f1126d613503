/**
 * Slots of the shared host-state table (src/shared/host-state.ts): one per upstream host
 * entry, keyed `group|address`. The primary assigns them and hands the map to every worker
 * with the config. A host that stays across a reload keeps its slot, so its breaker, health
 * and ejection state carry over; a slot freed by a reload is reset before it is reused.
 */
import { hostKey, MAX_HOST_ENTRIES, type SluiceConfig } from '../shared/config';

export class HostSlots {
  private readonly slots = new Map<string, number>();
  private readonly free: number[] = [];
  private next = 0;

  /** Slots ever handed out: every slot from here on is still all zero (never assigned). */
  get used(): number {
    return this.next;
  }

  /**
   * Slots for `cfg`; `reset(slot)` is called for every slot that changes hands (a new host,
   * or one freed by the previous assignment and now reused).
   */
  assign(cfg: SluiceConfig, reset: (slot: number) => void): Readonly<Record<string, number>> {
    const wanted = new Set<string>();
    for (const [group, u] of Object.entries(cfg.upstreams)) for (const h of u.hosts) wanted.add(hostKey(group, h.address));
    for (const [key, slot] of this.slots) {
      if (!wanted.has(key)) {
        this.slots.delete(key);
        this.free.push(slot);
      }
    }
    for (const key of wanted) {
      if (this.slots.has(key)) continue;
      const slot = this.free.pop() ?? this.next++;
      if (slot >= MAX_HOST_ENTRIES) throw new Error(`more than ${MAX_HOST_ENTRIES} upstream hosts`);
      reset(slot);
      this.slots.set(key, slot);
    }
    return Object.freeze(Object.fromEntries(this.slots));
  }
}
