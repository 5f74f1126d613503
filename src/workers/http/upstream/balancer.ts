/**
 * Load-balancing selection within an upstream group (shape after
 * pingora-load-balancing/src/selection): a selector is built from the hosts once and swapped
 * whole when membership changes; `pick(accept)` walks a bounded fallback sequence and asks
 * the caller's predicate, so "skip the host that just failed" stays outside the algorithm.
 *
 * State is per worker: each worker balances its own share of the traffic, like nginx
 * workers do.
 */
import { HDR_SIZE, jsNative, loadNative } from '../../../shared/native';

export interface BalancedHost {
  readonly weight: number;
  /** Requests in flight from this worker (least_request reads it). */
  active: number;
}

export type Accept = (index: number) => boolean;

export interface Selector {
  /** Index of the chosen host, or -1 when no host is accepted within the walk. */
  pick(accept: Accept | null): number;
}

/**
 * Smooth weighted round robin (nginx's ngx_http_upstream_get_peer): every pick adds each
 * host's weight to its current value, takes the largest, subtracts the total from it.
 * Spreads a 5:1:1 weighting as a a b a c a a rather than a a a a a b c.
 */
export class SmoothRoundRobin implements Selector {
  private readonly current: Float64Array;
  private readonly total: number;

  constructor(private readonly hosts: readonly BalancedHost[]) {
    this.current = new Float64Array(hosts.length);
    this.total = hosts.reduce((a, h) => a + h.weight, 0);
  }

  private next(skip: Uint8Array | null): number {
    const hs = this.hosts;
    const cur = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < hs.length; i++) {
      if (skip !== null && skip[i] === 1) continue;
      const w = (hs[i] as BalancedHost).weight;
      cur[i] = (cur[i] as number) + w;
      total += w;
      if (best === -1 || (cur[i] as number) > (cur[best] as number)) best = i;
    }
    if (best !== -1) cur[best] = (cur[best] as number) - total;
    return best;
  }

  pick(accept: Accept | null): number {
    const first = this.next(null);
    if (accept === null || first === -1 || accept(first)) return first;
    // Fallback walk: rerun the selection without the refused hosts, at most once per host.
    const skip = new Uint8Array(this.hosts.length);
    skip[first] = 1;
    for (let n = 1; n < this.hosts.length; n++) {
      const i = this.next(skip);
      if (i === -1) return -1;
      if (accept(i)) return i;
      skip[i] = 1;
    }
    return -1;
  }

  get totalWeight(): number {
    return this.total;
  }
}

/** Random, weighted: a uniform draw over cumulative weights; the walk continues round the list. */
export class WeightedRandom implements Selector {
  private readonly cumulative: Float64Array;
  private readonly total: number;

  constructor(
    private readonly hosts: readonly BalancedHost[],
    private readonly random: () => number = Math.random,
  ) {
    this.cumulative = new Float64Array(hosts.length);
    let t = 0;
    hosts.forEach((h, i) => {
      t += h.weight;
      this.cumulative[i] = t;
    });
    this.total = t;
  }

  pick(accept: Accept | null): number {
    const n = this.hosts.length;
    const x = this.random() * this.total;
    let start = 0;
    while (start < n - 1 && x >= (this.cumulative[start] as number)) start++;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      if (accept === null || accept(i)) return i;
    }
    return -1;
  }
}

/**
 * Least request with power of two choices (Envoy's LEAST_REQUEST): draw two hosts by weight,
 * keep the one with fewer active requests scaled by weight. O(1) and avoids the herd that a
 * strict least-connections scan causes when all workers see the same minimum.
 */
export class LeastRequestP2C implements Selector {
  private readonly rnd: WeightedRandom;

  constructor(
    private readonly hosts: readonly BalancedHost[],
    private readonly random: () => number = Math.random,
  ) {
    this.rnd = new WeightedRandom(hosts, random);
  }

  pick(accept: Accept | null): number {
    const a = this.rnd.pick(accept);
    if (a === -1 || this.hosts.length === 1) return a;
    const b = this.rnd.pick(accept);
    if (b === -1 || b === a) return a;
    const ha = this.hosts[a] as BalancedHost;
    const hb = this.hosts[b] as BalancedHost;
    // Compare active/weight without division: a.active * b.weight vs b.active * a.weight.
    const la = ha.active * hb.weight;
    const lb = hb.active * ha.weight;
    if (la === lb) return this.random() < 0.5 ? a : b;
    return la < lb ? a : b;
  }
}

/**
 * Consistent hashing (ketama ring or Maglev table, built by the native addon once per
 * membership) with HAProxy's bounded load: with a balance factor f > 0, no host takes more
 * than ⌈f × average in-flight⌉ requests, so hot keys spill to the next host on the ring.
 * The per-request lookup runs in JS on the same table: one N-API call costs more than the
 * whole JS lookup (bench/results/micro-native.md). Requests without a key fall back to
 * smooth round robin, as HAProxy's `balance hdr()` does.
 *
 * Membership: the table is built over every host, and rebuilt over the available ones when
 * health, ejection or breakers change which hosts may take traffic (`setMembership`), as
 * HAProxy takes a down server's points out of its tree. For ketama this gives the same
 * picks as walking past the down host; for Maglev it keeps the load even (walking past a
 * slot would hand a down host's whole share to its table neighbours).
 */
export class ConsistentHash implements Selector {
  private readonly fallback: SmoothRoundRobin;
  private table: Uint32Array;
  /** Table index → host index; null when the table covers every host in order. */
  private members: Int32Array | null = null;
  private eligible: Uint8Array;
  private loads: Int32Array;
  /** How far the walk goes: every ketama point of every host, or every Maglev slot, at most. */
  private maxSteps: number;

  constructor(
    private readonly hosts: readonly BalancedHost[],
    private readonly build: (members: readonly number[]) => Uint32Array,
    private readonly factor: number,
  ) {
    this.fallback = new SmoothRoundRobin(hosts);
    this.table = build(hosts.map((_h, i) => i));
    this.eligible = new Uint8Array(hosts.length);
    this.loads = new Int32Array(hosts.length);
    this.maxSteps = this.table[HDR_SIZE] as number;
  }

  /**
   * Rebuilds the table over `members` (host indices, ascending), or over every host when
   * null. The caller only calls it when membership changed.
   */
  setMembership(members: readonly number[] | null): void {
    const all = members === null || members.length === this.hosts.length;
    const list = all ? this.hosts.map((_h, i) => i) : members;
    this.table = this.build(list);
    this.members = all ? null : Int32Array.from(list);
    this.eligible = new Uint8Array(list.length);
    this.loads = new Int32Array(list.length);
    this.maxSteps = this.table[HDR_SIZE] as number;
  }

  pick(accept: Accept | null): number {
    return this.fallback.pick(accept);
  }

  pickHash(keyHash: number, accept: Accept | null): number {
    const m = this.members;
    const el = this.eligible;
    const n = el.length;
    for (let j = 0; j < n; j++) {
      const i = m === null ? j : (m[j] as number);
      el[j] = accept === null || accept(i) ? 1 : 0;
    }
    let j: number;
    if (this.factor <= 0) j = jsNative.lookupWalk(this.table, keyHash, this.maxSteps, el);
    else {
      const loads = this.loads;
      for (let k = 0; k < n; k++) loads[k] = (this.hosts[m === null ? k : (m[k] as number)] as BalancedHost).active;
      j = jsNative.lookupBounded(this.table, keyHash, this.maxSteps, el, loads, this.factor);
    }
    if (j === -1 || m === null) return j;
    return m[j] as number;
  }
}

export type BalanceKind = 'round_robin' | 'least_request' | 'random' | 'ketama' | 'maglev';

export interface HashOptions {
  /** `host:port` of each host (ketama places points by it, as nginx does). */
  readonly ids: readonly string[];
  readonly factor: number;
}

export function buildSelector(kind: BalanceKind, hosts: readonly BalancedHost[], hash?: HashOptions): Selector {
  switch (kind) {
    case 'ketama':
    case 'maglev': {
      if (hash === undefined) throw new Error(`${kind} needs host ids`);
      // Table builds are where the addon wins (bench/results/micro-native.md).
      const native = loadNative();
      const ids = hash.ids;
      const build = (members: readonly number[]): Uint32Array => {
        const specs = members.map((i) => ({ id: ids[i] as string, weight: (hosts[i] as BalancedHost).weight }));
        return kind === 'ketama' ? native.buildKetama(specs) : native.buildMaglev(specs);
      };
      return new ConsistentHash(hosts, build, hash.factor);
    }
    case 'round_robin':
      return new SmoothRoundRobin(hosts);
    case 'least_request':
      return new LeastRequestP2C(hosts);
    case 'random':
      return new WeightedRandom(hosts);
  }
}
