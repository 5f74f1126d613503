/**
 * Upstream groups of one worker: hosts with their pools, balancer and effective timeouts.
 * Built once per config and swapped whole on reload; pools survive a reload when their
 * group, address and TLS identity stay, so warm keep-alive connections are not thrown away
 * (and never shared across different TLS settings).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { hostKey, type Balance, type BreakerConfig, type OutlierConfig, type PoolConfig, type SluiceConfig, type UpstreamConfig, type UpstreamTimeouts, type UpstreamTlsConfig } from '../../../shared/config';
import { sluiceError } from '../../../shared/errors';
import { ADMIT, KIND_ACTIVE, PROBE, REJECT, inPanic, type HostStateTable } from '../../../shared/host-state';
import { jsNative } from '../../../shared/native';
import type { Peer, Session } from '../session';
import { buildSelector, ConsistentHash, type Accept, type BalancedHost, type Selector } from './balancer';
import { HostPool, type PoolTls } from './pool';

export interface GroupHost extends BalancedHost {
  readonly address: string;
  readonly pool: HostPool;
  /** Slot in the shared host-state table (-1 when the group keeps no shared state). */
  readonly slot: number;
  /** The phases' Peer for this host of this group, made once with the config (not per pick). */
  readonly peer: Peer;
}

/** What a pick tells the attempt besides the host. */
export interface PickState {
  /** The breaker admitted this attempt as a half-open probe: its outcome must be reported. */
  breakerProbe: boolean;
  /** The attempt holds one of the host's maxActivePerHost places (released when it ends). */
  holdsActive: boolean;
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

/**
 * Whether a hash key expression reads a cookie or the Authorization/Cookie header: such a
 * key is secret material and leaves the worker (events) only as its hash.
 */
export function hashKeyIsSensitive(expr: string): boolean {
  return expr.split('+').some((p) => p.startsWith('cookie:') || p.toLowerCase() === 'header:authorization' || p.toLowerCase() === 'header:cookie');
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
  private readonly keySensitive: boolean;
  /** Shared host state when the group uses health checks, ejection, breakers or limits; else null. */
  readonly state: HostStateTable | null;
  readonly breaker: BreakerConfig | null;
  readonly outlier: OutlierConfig | null;
  readonly maxActive: number;
  readonly maxPending: number;
  private readonly panicPercent: number;
  /** Host-state slots of the hosts, in host order. */
  readonly slots: readonly number[];
  // State of the running pick's walk, read by acceptShared.
  private walkTried: readonly string[] = [];
  private walkRefused: number[] | null = null;
  private walkPanic = false;
  private walkBreakerSkips = false;
  /** Availability of each host read once for this pick (panic threshold on), else null: read per candidate. */
  private walkAvailable: Uint8Array | null = null;
  private readonly available: Uint8Array;
  /** The walk's predicate with shared state: not tried, not refused by its breaker, available (unless panic). */
  private readonly acceptShared = (k: number): boolean => {
    const h = this.hosts[k] as GroupHost;
    const tried = this.walkTried;
    if (tried.length !== 0 && tried.includes(h.address)) return false;
    if (this.walkRefused !== null && this.walkRefused.includes(k)) return false;
    if (this.walkPanic) return true;
    const st = this.state as HostStateTable;
    const known = this.walkAvailable;
    if (known !== null ? known[k] === 1 : st.isAvailable(h.slot)) return true;
    if (st.isBreakerOpen(h.slot)) this.walkBreakerSkips = true;
    return false;
  };
  /** Hashed groups with shared state: which hosts the table was last built over (1 = in). */
  private readonly builtFor: Uint8Array;
  /** Requests in flight to this group from this worker, and those among them retrying (retry budget). */
  requests = 0;
  retrying = 0;

  constructor(
    readonly name: string,
    readonly balance: Balance,
    readonly hosts: readonly GroupHost[],
    readonly timeouts: UpstreamTimeouts,
    hashKey?: string,
    hashBalanceFactor = 0,
    cfg: UpstreamConfig | null = null,
    state: HostStateTable | null = null,
  ) {
    this.selector = buildSelector(balance, hosts, { ids: hosts.map((h) => h.address), factor: hashBalanceFactor });
    this.keyOf = hashKey === undefined ? null : compileHashKey(hashKey);
    this.keySensitive = hashKey !== undefined && hashKeyIsSensitive(hashKey);
    this.breaker = cfg?.breaker ?? null;
    this.outlier = cfg?.outlierDetection ?? null;
    this.maxActive = cfg?.maxActivePerHost ?? 0;
    this.maxPending = cfg?.maxPendingPerHost ?? 0;
    this.panicPercent = cfg?.panicThresholdPercent ?? 0;
    const shared =
      cfg !== null && (cfg.healthCheck !== undefined || this.breaker !== null || this.outlier !== null || this.maxActive > 0 || this.maxPending > 0);
    this.state = shared && hosts.every((h) => h.slot >= 0) ? state : null;
    this.slots = hosts.map((h) => h.slot);
    this.builtFor = new Uint8Array(hosts.length).fill(1);
    this.available = new Uint8Array(hosts.length);
  }

  /**
   * Consistent hashing: rebuilds the table over the available hosts when that set changed
   * since the last build (all hosts in panic, or when none is available). Costs one
   * availability read per host per pick; a rebuild (ketama 100 hosts ≈ 1.4 ms, Maglev ≈ 5 ms)
   * happens once per change per worker.
   */
  private syncMembership(sel: ConsistentHash, st: HostStateTable, panic: boolean, known: Uint8Array | null): void {
    const hs = this.hosts;
    const mask = this.builtFor;
    let changed = false;
    let count = 0;
    for (let i = 0; i < hs.length; i++) {
      const a = panic ? 1 : known !== null ? (known[i] as number) : st.isAvailable((hs[i] as GroupHost).slot) ? 1 : 0;
      if (mask[i] !== a) {
        mask[i] = a;
        changed = true;
      }
      count += a;
    }
    if (!changed) return;
    const members: number[] = [];
    for (let i = 0; i < hs.length; i++) if (mask[i] === 1) members.push(i);
    sel.setMembership(count === 0 || count === hs.length ? null : members);
  }

  private select(accept: Accept | null, session: Session): number {
    const sel = this.selector;
    const key = this.keyOf === null ? '' : this.keyOf(session);
    if (key !== '' && sel instanceof ConsistentHash) {
      const hash = jsNative.hashKey(key);
      session.lbKey = this.keySensitive ? `xxh3:${hash.toString(16)}` : key;
      return sel.pickHash(hash >>> 0, accept);
    }
    session.lbKey = '';
    return sel.pick(accept);
  }

  /** Whether a retry could go anywhere: a host other than `current` and the tried ones that is available. */
  hasOtherHost(tried: readonly string[], current: string): boolean {
    const st = this.state;
    const panic = st !== null && this.panicPercent > 0 && st.panic(this.slots, this.panicPercent);
    for (const h of this.hosts) {
      if (h.address === current || tried.includes(h.address)) continue;
      if (st === null || panic || st.isAvailable(h.slot)) return true;
    }
    return false;
  }

  /**
   * A host not in `tried`, or null when no host is left. With shared state: hosts that are
   * down (health check), ejected or behind an open breaker are skipped unless the group is
   * in panic (too few available: all hosts are used, flag PN); the chosen host's place under
   * maxActivePerHost is taken (full: SLUICE_ERR_UPSTREAM_OVERFLOW) and its breaker admits the
   * attempt (a breaker that refuses sends the walk on to the next host; when none admits,
   * SLUICE_ERR_BREAKER_OPEN).
   */
  pick(tried: readonly string[], session: Session, out: PickState): GroupHost | null {
    const hs = this.hosts;
    const st = this.state;
    if (st === null) {
      const accept = tried.length === 0 ? null : (k: number): boolean => !tried.includes((hs[k] as GroupHost).address);
      const i = this.select(accept, session);
      return i === -1 ? null : (hs[i] as GroupHost);
    }
    // With a panic threshold every host's availability is needed for the count: read each
    // once, and let the walk reuse the answers.
    let known: Uint8Array | null = null;
    let panic = false;
    if (this.panicPercent > 0) {
      known = this.available;
      panic = inPanic(st.availability(this.slots, known), hs.length, this.panicPercent);
    }
    if (panic) session.flags.push('PN');
    if (this.selector instanceof ConsistentHash) this.syncMembership(this.selector, st, panic, known);
    // The walk's predicate reads these fields (one bound function per group, not a closure
    // per request; picks never interleave within a worker).
    this.walkTried = tried;
    this.walkRefused = null;
    this.walkPanic = panic;
    this.walkAvailable = known;
    this.walkBreakerSkips = false;
    const accept = this.acceptShared;
    for (let round = 0; round < hs.length; round++) {
      const i = this.select(accept, session);
      if (i === -1) break;
      const h = hs[i] as GroupHost;
      if (this.maxActive > 0) {
        if (!st.tryAcquire(h.slot, KIND_ACTIVE, this.maxActive)) {
          session.flags.push('UO');
          throw sluiceError('SLUICE_ERR_UPSTREAM_OVERFLOW', `${h.address}: ${this.maxActive} requests in flight (maxActivePerHost)`);
        }
      }
      const b = this.breaker;
      const verdict = b === null ? ADMIT : st.admit(h.slot, b);
      if (verdict !== REJECT) {
        out.breakerProbe = verdict === PROBE;
        out.holdsActive = this.maxActive > 0;
        return h;
      }
      if (this.maxActive > 0) st.release(h.slot, KIND_ACTIVE);
      (this.walkRefused ??= []).push(i);
    }
    if (this.walkRefused !== null || this.walkBreakerSkips) {
      session.flags.push('BO');
      throw sluiceError('SLUICE_ERR_BREAKER_OPEN', this.name);
    }
    return null;
  }
}

/**
 * A group's TLS settings with its files read and parsed once per config build. The identity
 * digest covers everything that decides whom a connection may talk to and as whom (SNI /
 * expected name, verification, the CA bundle's and client certificate's contents), so a
 * reload that changes any of it, or rotates a file's contents, gets fresh pools.
 */
export function buildPoolTls(t: UpstreamTlsConfig, cache?: Map<string, PoolTls>): PoolTls {
  const ca = t.caFile === undefined ? undefined : readFileSync(t.caFile);
  const cert = t.certFile === undefined ? undefined : readFileSync(t.certFile);
  const key = t.keyFile === undefined ? undefined : readFileSync(t.keyFile);
  const h = createHash('sha256');
  for (const part of [t.serverName ?? '', t.verify ? '1' : '0', ca, cert, key]) {
    h.update(part ?? '-');
    h.update('\0');
  }
  const id = h.digest('hex').slice(0, 16);
  const known = cache?.get(id);
  if (known !== undefined) return known;
  // Without caFile the context trusts Node's bundled root store; with it, only caFile.
  const secureContext = createSecureContext({
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(t.passphrase === undefined ? {} : { passphrase: t.passphrase }),
  });
  const built: PoolTls = { id, secureContext, serverName: t.serverName, verify: t.verify };
  cache?.set(id, built);
  return built;
}

/** The pool map key: the host's key plus the TLS identity, if any. */
function poolKey(key: string, tls: PoolTls | null): string {
  return tls === null ? key : `${key}|tls:${tls.id}`;
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
  static build(
    cfg: SluiceConfig,
    previous: Upstreams | null,
    state: HostStateTable | null = null,
    slots: Readonly<Record<string, number>> = {},
  ): Upstreams {
    const pools = new Map<string, HostPool>();
    const groups = new Map<string, UpstreamGroup>();
    const tlsCache = new Map<string, PoolTls>();
    for (const [name, u] of Object.entries(cfg.upstreams)) {
      const settings: PoolConfig = { ...cfg.pool, ...u.pool };
      const tls = u.tls === undefined ? null : buildPoolTls(u.tls, tlsCache);
      const timeouts: UpstreamTimeouts = {
        connectMs: u.timeouts?.connectMs ?? cfg.timeouts.connectMs,
        headerMs: u.timeouts?.headerMs ?? cfg.timeouts.headerMs,
        idleMs: u.timeouts?.idleMs ?? cfg.timeouts.idleMs,
      };
      const hosts: GroupHost[] = [];
      for (const h of u.hosts) {
        const key = hostKey(name, h.address);
        const pk = poolKey(key, tls);
        let pool = pools.get(pk) ?? previous?.pools.get(pk);
        if (pool === undefined || pool.closed) pool = new HostPool(h.address, settings, tls);
        else pool.settings = settings;
        pools.set(pk, pool);
        // Hosts listed twice in one group share the pool but count as separate entries.
        hosts.push({ address: h.address, weight: h.weight, active: 0, pool, slot: slots[key] ?? -1, peer: Object.freeze({ group: name, host: h.address }) });
      }
      groups.set(name, new UpstreamGroup(name, u.balance, hosts, timeouts, u.hashKey, u.hashBalanceFactor, u, state));
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
    // Reported by `group|address` (one pool per host and config; the TLS identity is internal).
    return [...this.pools.entries()].map(([key, p]) => ({ address: p.tls === null ? key : key.slice(0, key.lastIndexOf('|tls:')), open: p.open, idle: p.idleCount }));
  }
}
