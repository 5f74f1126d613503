/**
 * Upstream groups of one worker: hosts with their pools, balancer and effective timeouts.
 * Built once per config and swapped whole on reload; pools survive a reload when their
 * group and address stay, so warm keep-alive connections are not thrown away.
 */
import type { Balance, PoolConfig, SluiceConfig, UpstreamTimeouts } from '../shared/config';
import { buildSelector, type BalancedHost, type Selector } from './balancer';
import { HostPool } from './pool';

export interface GroupHost extends BalancedHost {
  readonly address: string;
  readonly pool: HostPool;
}

export class UpstreamGroup {
  private readonly selector: Selector;

  constructor(
    readonly name: string,
    readonly balance: Balance,
    readonly hosts: readonly GroupHost[],
    readonly timeouts: UpstreamTimeouts,
  ) {
    this.selector = buildSelector(balance, hosts);
  }

  /** A host not in `tried`, or null when every host was tried. */
  pick(tried: readonly string[]): GroupHost | null {
    const hs = this.hosts;
    const i =
      tried.length === 0
        ? this.selector.pick(null)
        : this.selector.pick((k) => !tried.includes((hs[k] as GroupHost).address));
    return i === -1 ? null : (hs[i] as GroupHost);
  }
}

export class Upstreams {
  readonly groups: ReadonlyMap<string, UpstreamGroup>;

  private constructor(
    groups: Map<string, UpstreamGroup>,
    private readonly pools: Map<string, HostPool>,
  ) {
    this.groups = groups;
  }

  /** Builds groups for `cfg`, reusing pools of `previous` with the same group and address. */
  static build(cfg: SluiceConfig, previous: Upstreams | null): Upstreams {
    const pools = new Map<string, HostPool>();
    const groups = new Map<string, UpstreamGroup>();
    for (const [name, u] of Object.entries(cfg.upstreams)) {
      const settings: PoolConfig = { ...cfg.pool, ...u.pool };
      const timeouts: UpstreamTimeouts = {
        connectMs: u.timeouts?.connectMs ?? cfg.timeouts.connectMs,
        headerMs: u.timeouts?.headerMs ?? cfg.timeouts.headerMs,
        idleMs: u.timeouts?.idleMs ?? cfg.timeouts.idleMs,
      };
      const hosts: GroupHost[] = [];
      for (const h of u.hosts) {
        const key = `${name}|${h.address}`;
        let pool = pools.get(key) ?? previous?.pools.get(key);
        if (pool === undefined || pool.closed) pool = new HostPool(h.address, settings);
        else pool.settings = settings;
        pools.set(key, pool);
        // Hosts listed twice in one group share the pool but count as separate entries.
        hosts.push({ address: h.address, weight: h.weight, active: 0, pool });
      }
      groups.set(name, new UpstreamGroup(name, u.balance, hosts, timeouts));
    }
    if (previous !== null) {
      for (const [key, pool] of previous.pools) if (!pools.has(key)) pool.close();
    }
    return new Upstreams(groups, pools);
  }

  closeAll(): void {
    for (const p of this.pools.values()) p.close();
  }

  poolStats(): { address: string; open: number; idle: number }[] {
    return [...this.pools.entries()].map(([key, p]) => ({ address: key, open: p.open, idle: p.idleCount }));
  }
}
