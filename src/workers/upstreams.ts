/**
 * Upstream groups of one worker: hosts with their pools, balancer and effective timeouts.
 * Built once per config and swapped whole on reload; pools survive a reload when their
 * group and address stay, so warm keep-alive connections are not thrown away.
 */
import type { Balance, PoolConfig, SluiceConfig, UpstreamTimeouts } from '../shared/config';
import { jsNative } from '../shared/native';
import type { Session } from '../shared/phases';
import { buildSelector, ConsistentHash, type BalancedHost, type Selector } from './balancer';
import { HostPool } from './pool';

export interface GroupHost extends BalancedHost {
  readonly address: string;
  readonly pool: HostPool;
}

/** Reads the hash key of a request; '' when the request has none. */
export type KeyExtractor = (s: Session) => string;

function headerOf(s: Session, name: string): string {
  const hs = s.headers;
  for (let i = 0; i < hs.length; i += 2) if (hs[i] === name) return hs[i + 1] as string;
  return '';
}

function cookieOf(s: Session, name: string): string {
  const hs = s.headers;
  for (let i = 0; i < hs.length; i += 2) {
    if (hs[i] !== 'cookie') continue;
    for (const part of (hs[i + 1] as string).split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return '';
}

/** Compiles `header:x-user+cookie:sid+client_ip+path` once per config. */
export function compileHashKey(expr: string): KeyExtractor {
  const parts: KeyExtractor[] = expr.split('+').map((p): KeyExtractor => {
    if (p.startsWith('header:')) {
      const n = p.slice(7).toLowerCase();
      return (s) => headerOf(s, n);
    }
    if (p.startsWith('cookie:')) {
      const n = p.slice(7);
      return (s) => cookieOf(s, n);
    }
    if (p === 'client_ip') return (s) => s.clientAddress;
    return (s) => s.path;
  });
  if (parts.length === 1) return parts[0] as KeyExtractor;
  return (s) => {
    let k = '';
    let any = false;
    for (const f of parts) {
      const v = f(s);
      if (v !== '') any = true;
      k += `${v}\n`;
    }
    return any ? k : '';
  };
}

export class UpstreamGroup {
  private readonly selector: Selector;
  private readonly keyOf: KeyExtractor | null;

  constructor(
    readonly name: string,
    readonly balance: Balance,
    readonly hosts: readonly GroupHost[],
    readonly timeouts: UpstreamTimeouts,
    hashKey?: string,
    hashBalanceFactor = 0,
  ) {
    this.selector = buildSelector(balance, hosts, { ids: hosts.map((h) => h.address), factor: hashBalanceFactor });
    this.keyOf = hashKey === undefined ? null : compileHashKey(hashKey);
  }

  /** A host not in `tried`, or null when every host was tried. */
  pick(tried: readonly string[], session: Session): GroupHost | null {
    const hs = this.hosts;
    const accept = tried.length === 0 ? null : (k: number): boolean => !tried.includes((hs[k] as GroupHost).address);
    let i: number;
    const sel = this.selector;
    const key = this.keyOf === null ? '' : this.keyOf(session);
    if (key !== '' && sel instanceof ConsistentHash) i = sel.pickHash(jsNative.hashKey(key) >>> 0, accept);
    else i = sel.pick(accept);
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
      groups.set(name, new UpstreamGroup(name, u.balance, hosts, timeouts, u.hashKey, u.hashBalanceFactor));
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
