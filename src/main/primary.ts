/**
 * The primary thread: owns the validated config, probes the port, spawns and respawns HTTP
 * workers, reloads on SIGHUP and drains on SIGTERM/SIGINT. It never serves traffic itself
 * and never blocks (no Atomics.wait).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { frontOf, hostKey, loadConfig, MAX_HOST_ENTRIES, usesKafka, type SluiceConfig, type UpstreamTlsConfig } from '../shared/config';
import { allocHostState, HostStateTable } from '../shared/host-state';
import { allocRateLimitTable, RateLimitTable } from '../shared/rate-limit';
import type { HostSnapshot } from '../shared/host-state';
import { WorkerMetricsAggregate } from '../shared/metrics';
import { allocCounters } from '../shared/sab-layout';
import { HealthChecker, type HealthTarget } from './health-checker';
import { HostSlots } from './host-slots';
import { AdminServer, type CollectedStats, type WorkerView } from './admin';
import { ListenerTls } from './listener-tls';
import { ProducerSupervisor } from './producer-supervisor';
import type { Logger } from '../shared/log';
import { assertNever, type PrimaryToWorker, type WorkerData, type WorkerToPrimary } from '../shared/messages';
import { loadNative } from '../shared/native';
import type { TlsSnapshot } from '../shared/tls-certs';
import { loadUws } from '../shared/uws';

interface WorkerSlot {
  readonly id: number;
  worker: Worker | null;
  ready: boolean;
  restarts: number;
  startedAt: number;
  drained: boolean;
}

const RESPAWN_MIN_MS = 100;
/** How long a /metrics or /status scrape waits for each worker's 'stats' reply. */
const STATS_TIMEOUT_MS = 2000;
type StatsReply = Extract<WorkerToPrimary, { type: 'stats' }>;
const RESPAWN_MAX_MS = 5000;
/**
 * Housekeeping of the shared tables: host state every tick, idle rate-limit buckets every
 * 30th. The sweep only has to keep idle STAMPs far from the int32 wrap (24.8 days) and free
 * the slots of an insert whose worker died; a whole-table pass costs ~2 ms of the primary.
 */
const HOUSEKEEPING_MS = 1000;
const RATE_SWEEP_TICKS = 30;

/** TLS options for the checks of a TLS group: the group's trust settings (files read once per config). */
function healthCheckTls(t: UpstreamTlsConfig): ConnectionOptions {
  return {
    rejectUnauthorized: t.verify,
    ...(t.serverName === undefined ? {} : { servername: t.serverName }),
    ...(t.caFile === undefined ? {} : { ca: readFileSync(t.caFile) }),
    ...(t.certFile === undefined ? {} : { cert: readFileSync(t.certFile) }),
    ...(t.keyFile === undefined ? {} : { key: readFileSync(t.keyFile) }),
    ...(t.passphrase === undefined ? {} : { passphrase: t.passphrase }),
  };
}

/** The active health-check targets of a config: every host of every group with a healthCheck. */
export function healthTargets(cfg: SluiceConfig, slots: Readonly<Record<string, number>>): HealthTarget[] {
  const out: HealthTarget[] = [];
  for (const [group, u] of Object.entries(cfg.upstreams)) {
    const hc = u.healthCheck;
    if (hc === undefined) continue;
    const spec = {
      type: hc.type,
      path: hc.path,
      ...(hc.host === undefined ? {} : { host: hc.host }),
      expectStatuses: hc.expectStatuses.map((r): [number, number] => {
        const [lo, hi = lo] = r.split('-').map(Number) as [number, number?];
        return [lo, hi];
      }),
      intervalMs: hc.intervalMs,
      timeoutMs: hc.timeoutMs,
      jitter: hc.jitter,
      rise: hc.rise,
      fall: hc.fall,
      ...(u.tls === undefined ? {} : { tls: healthCheckTls(u.tls) }),
    };
    const seen = new Set<string>();
    for (const h of u.hosts) {
      const slot = slots[hostKey(group, h.address)];
      if (slot === undefined || seen.has(h.address)) continue;
      seen.add(h.address);
      out.push({ slot, group, address: h.address, spec });
    }
  }
  return out;
}

/** Binds host:port exclusively for a moment: fails if another process holds it; resolves port 0. */
export function probePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the port is in use by another process' : e.message}`));
    });
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr !== null ? addr.port : port;
      srv.close(() => resolve(p));
    });
  });
}

export class Primary {
  private config: SluiceConfig;
  private version = 1;
  private port = 0;
  /** The HTTPS listener's port and certificates (port 0 and no snapshot without `tls`). */
  private readonly tls: ListenerTls;
  private readonly slots: WorkerSlot[] = [];
  private stopping = false;
  private finishing = false;
  private exitCode = 0;
  private resolveDone: ((code: number) => void) | null = null;
  private producer: ProducerSupervisor | null = null;
  private readonly counters = allocCounters();
  private kafkaUndelivered = 0;
  // Shared resilience state: allocated once, handed to every worker, kept across reloads.
  private readonly hostStateSab = allocHostState(MAX_HOST_ENTRIES);
  private readonly hostState = new HostStateTable(this.hostStateSab);
  private readonly hostSlots = new HostSlots();
  private slotMap: Readonly<Record<string, number>> = {};
  private rateLimitSab: SharedArrayBuffer | null = null;
  private rateLimits: RateLimitTable | null = null;
  private readonly health: HealthChecker;
  private housekeeping: NodeJS.Timeout | null = null;
  // ---- admin listener and metrics (src/main/admin.ts, docs/observability.md)
  private admin: AdminServer | null = null;
  readonly startedAtMs = Date.now();
  private readonly workerMetrics = new WorkerMetricsAggregate();
  /** Callers waiting for a worker's next 'stats' reply, by worker id (null: it did not answer). */
  private readonly statsWaiters = new Map<number, ((m: StatsReply | null) => void)[]>();

  constructor(
    private readonly configPath: string,
    config: SluiceConfig,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.config = config;
    this.tls = new ListenerTls(log);
    this.health = new HealthChecker({
      publish: (slot, up) => this.hostState.setHealthy(slot, up),
      onChange: (c) => {
        if (c.healthy) this.log.info('health check: host is up', { group: c.group, host: c.address, reason: c.reason });
        else this.log.warn('health check: host is down', { group: c.group, host: c.address, reason: c.reason });
      },
    });
  }

  /** Assigns host-state slots for `cfg` and points the health checker at its hosts. */
  private applyHosts(cfg: SluiceConfig): void {
    this.slotMap = this.hostSlots.assign(cfg, (slot) => this.hostState.resetSlot(slot));
    const targets = healthTargets(cfg, this.slotMap);
    this.health.setTargets(targets);
    // Hosts no longer checked (their group dropped its healthCheck) count as healthy again.
    const checked = new Set(targets.map((t) => t.slot));
    for (const slot of Object.values(this.slotMap)) if (!checked.has(slot)) this.hostState.setHealthy(slot, true);
  }

  get listenPort(): number {
    return this.port;
  }

  /** Starts workers; resolves once every worker is READY. */
  async start(): Promise<void> {
    // Fail before spawning anything when uWS cannot load natively; the primary also keeps
    // the binary's image mapped for the life of the process.
    loadUws();
    // Likewise the Rust addon: loaded here, its image outlives any worker that exits.
    loadNative();
    this.port = await probePort(this.config.listen.host, this.config.listen.port);
    // Before the workers, so that a taken admin port fails the start at once and /healthz
    // answers 503 until every worker is READY.
    const a = this.config.admin;
    if (a.enabled) this.admin = await AdminServer.start(a.host, a.port, this, this.log.child({ component: 'admin' }));
    const tls = this.config.tls;
    if (tls !== undefined) await this.tls.start(tls, tls.host ?? this.config.listen.host, this.port, probePort);
    this.rateLimitSab = allocRateLimitTable(this.config.rateLimit.tableSize);
    const limits = new RateLimitTable(this.rateLimitSab);
    this.rateLimits = limits;
    this.applyHosts(this.config);
    let tick = 0;
    this.housekeeping = setInterval(() => {
      // Repairs transient words left by a worker that died mid-transition; clears expired ejections.
      this.hostState.housekeeping(this.hostSlots.used);
      if (++tick % RATE_SWEEP_TICKS === 0) limits.sweep(this.config.rateLimit.idleMs);
    }, HOUSEKEEPING_MS);
    this.housekeeping.unref();
    if (usesKafka(this.config)) {
      // The Kafka client cannot run in a worker thread (confluent-kafka-javascript #258):
      // it lives in a child process that workers reach over a Unix socket.
      this.producer = new ProducerSupervisor({ config: this.config.kafka, logger: this.log.child({ role: 'producer-supervisor' }), logLevel: this.config.log.level });
      await this.producer.start();
      this.log.info('kafka producer started', { pid: this.producer.pid, socket: this.producer.socketPath, brokers: this.config.kafka.brokers });
    }
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.config.workers; i++) {
      const slot: WorkerSlot = { id: i, worker: null, ready: false, restarts: 0, startedAt: 0, drained: false };
      this.slots.push(slot);
      ready.push(this.spawn(slot));
    }
    await Promise.all(ready);
    this.log.info('listening', {
      host: this.config.listen.host,
      port: this.port,
      ...(tls === undefined ? {} : { tlsHost: tls.host ?? this.config.listen.host, tlsPort: this.tls.port }),
      ...(this.admin === null ? {} : { adminHost: this.config.admin.host, adminPort: this.admin.port }),
      workers: this.config.workers,
      configVersion: this.version,
    });
  }

  /** Resolves with the process exit code once a drain has finished. */
  done(): Promise<number> {
    return new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  private spawn(slot: WorkerSlot): Promise<void> {
    const data: WorkerData = {
      workerId: slot.id,
      config: this.config,
      configVersion: this.version,
      port: this.port,
      tls: this.tls.current === null ? null : { port: this.tls.port, snapshot: this.tls.current },
      kafkaSocket: this.producer?.socketPath ?? null,
      counters: this.counters,
      hostState: this.hostStateSab,
      hostSlots: this.slotMap,
      rateLimits: this.rateLimitSab as SharedArrayBuffer,
    };
    const w = new Worker(join(__dirname, '..', 'workers', 'http', 'worker.js'), { workerData: data, env: this.env });
    slot.worker = w;
    slot.ready = false;
    slot.startedAt = Date.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      w.on('message', (msg: WorkerToPrimary) => {
        switch (msg.type) {
          case 'ready':
            slot.ready = true;
            this.log.debug('worker ready', { worker: slot.id });
            if (!settled) {
              settled = true;
              resolve();
            }
            break;
          case 'fatal':
            this.log.error('worker failed to start', { worker: slot.id, reason: msg.message });
            if (!settled) {
              settled = true;
              reject(new Error(msg.message));
            }
            break;
          case 'crashed':
            this.log.error('worker crashed', { worker: slot.id, reason: msg.message });
            break;
          case 'reloaded':
            this.log.debug('worker reloaded', { worker: slot.id, configVersion: msg.version });
            break;
          case 'drained':
            slot.drained = true;
            this.kafkaUndelivered += msg.kafkaUndelivered;
            this.log.info('worker drained', { worker: slot.id, abandoned: msg.abandoned, kafka: msg.kafka, events: msg.events });
            if (msg.kafkaUndelivered > 0) this.log.error('worker could not hand Kafka records to the producer before exiting', { worker: slot.id, records: msg.kafkaUndelivered });
            if (msg.abandoned > 0) this.log.warn('worker drained with requests still in flight', { worker: slot.id, abandoned: msg.abandoned });
            break;
          case 'stats':
            this.onStats(slot.id, msg);
            break;
          default:
            assertNever(msg);
        }
      });
      w.on('error', (err) => {
        this.log.error('worker crashed', { worker: slot.id, err });
      });
      w.on('exit', (code) => {
        slot.worker = null;
        slot.ready = false;
        this.workerGone(slot.id);
        if (!settled) {
          settled = true;
          reject(new Error(`worker ${slot.id} exited with code ${code} before it was ready`));
          return;
        }
        if (this.stopping) {
          this.checkAllExited();
          return;
        }
        // A crash: respawn with back-off (reset when the worker had lived for a while).
        if (Date.now() - slot.startedAt > 30000) slot.restarts = 0;
        const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** slot.restarts);
        slot.restarts++;
        this.log.error('worker exited; respawning', { worker: slot.id, code, inMs: delay });
        setTimeout(() => {
          if (this.stopping) return;
          this.spawn(slot).catch((e: unknown) => this.log.error('respawn failed', { worker: slot.id, err: e }));
        }, delay).unref();
      });
    });
  }

  private broadcast(msg: PrimaryToWorker): void {
    for (const s of this.slots) s.worker?.postMessage(msg);
  }

  /** SIGHUP: re-read and validate; a bad config is refused and the old one stays. */
  reload(): boolean {
    let next: SluiceConfig;
    try {
      next = loadConfig(this.configPath, this.env);
    } catch (e) {
      this.log.error('reload refused: the new configuration is invalid; keeping the current one', { reason: (e as Error).message });
      return false;
    }
    const kept: string[] = [];
    if (next.listen.host !== this.config.listen.host || next.listen.port !== this.config.listen.port) kept.push('listen');
    if (next.workers !== this.config.workers) kept.push('workers');
    if (next.rateLimit.tableSize !== this.config.rateLimit.tableSize) kept.push('rateLimit.tableSize');
    if (JSON.stringify(next.admin) !== JSON.stringify(this.config.admin)) kept.push('admin');
    // The producer process keeps the librdkafka settings it started with.
    if (JSON.stringify(next.kafka) !== JSON.stringify(this.config.kafka)) kept.push('kafka');
    if (usesKafka(next) && this.producer === null) {
      this.log.warn('reload: Kafka was not in use at start, so no producer runs; events and Kafka routes answer 503 until a restart');
    }
    // Moving a listener onto or off the listener front, or changing what the front does,
    // needs new sockets: restart-only (the CA file's contents and identityHeader reload).
    const plainFront = JSON.stringify(frontOf(next.listen.proxyProtocol));
    if (plainFront !== JSON.stringify(frontOf(this.config.listen.proxyProtocol))) kept.push('listen.proxyProtocol');
    if (kept.length > 0) this.log.warn('reload: these options only change on restart; keeping their current values', { options: kept });
    // Only the restart-only values are kept: the rest of their sections (listen.acl,
    // listen.proxyProtocol, rateLimit.idleMs) reloads like everything else.
    next = {
      ...next,
      listen: {
        ...next.listen,
        host: this.config.listen.host,
        port: this.config.listen.port,
        proxyProtocol: kept.includes('listen.proxyProtocol') ? this.config.listen.proxyProtocol : next.listen.proxyProtocol,
      },
      workers: this.config.workers,
      kafka: this.config.kafka,
      admin: this.config.admin,
      rateLimit: { ...next.rateLimit, tableSize: this.config.rateLimit.tableSize },
    };
    // The HTTPS listener's address and existence only change on restart; its certificates reload.
    const oldTls = this.config.tls;
    if (oldTls === undefined || next.tls === undefined) {
      if (oldTls !== next.tls) {
        this.log.warn('reload: adding or removing the HTTPS listener (tls) only happens on restart; keeping the current one');
        next = { ...next, tls: oldTls };
      }
    } else if (next.tls.port !== oldTls.port || (next.tls.host ?? next.listen.host) !== (oldTls.host ?? this.config.listen.host)) {
      this.log.warn('reload: these options only change on restart; keeping their current values', { options: ['tls.host', 'tls.port'] });
      next = { ...next, tls: { ...next.tls, host: oldTls.host ?? this.config.listen.host, port: oldTls.port } };
    }
    if (oldTls !== undefined && next.tls !== undefined) {
      const was = frontOf(oldTls.proxyProtocol, oldTls.clientAuth);
      if (JSON.stringify(frontOf(next.tls.proxyProtocol, next.tls.clientAuth)) !== JSON.stringify(was)) {
        this.log.warn('reload: these options only change on restart; keeping their current values', { options: ['tls.proxyProtocol', 'tls.clientAuth'] });
        const { clientAuth: _dropped, ...rest } = next.tls;
        next = { ...next, tls: { ...rest, proxyProtocol: oldTls.proxyProtocol, ...(oldTls.clientAuth === undefined ? {} : { clientAuth: oldTls.clientAuth }) } };
      }
    }
    let tlsSnapshot: TlsSnapshot | null = null;
    try {
      if (next.tls !== undefined) tlsSnapshot = this.tls.prepare(next.tls);
    } catch (e) {
      this.log.error('reload refused: a certificate of the HTTPS listener is unusable; keeping the current ones', { reason: (e as Error).message });
      return false;
    }
    try {
      this.applyHosts(next);
    } catch (e) {
      this.log.error('reload refused: keeping the current configuration', { reason: (e as Error).message });
      return false;
    }
    this.config = next;
    this.version++;
    if (tlsSnapshot !== null) this.tls.commit(tlsSnapshot);
    this.broadcast({ type: 'reload', config: next, version: this.version, hostSlots: this.slotMap, tls: tlsSnapshot });
    this.log.info('configuration reloaded', { configVersion: this.version });
    return true;
  }

  /** SIGTERM: stop accepting, let in-flight requests finish within the drain bound, exit 0. */
  shutdown(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    const deadlineMs = this.config.shutdown.drainTimeoutMs;
    this.log.info('draining', { reason, deadlineMs });
    this.health.close();
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    this.broadcast({ type: 'drain', deadlineMs });
    // Safety net: workers that do not end after the deadline are terminated.
    setTimeout(() => {
      for (const s of this.slots) {
        if (s.worker !== null) {
          this.log.warn('worker did not exit after draining; terminating it', { worker: s.id });
          this.exitCode = 1;
          void s.worker.terminate();
        }
      }
    }, deadlineMs + 5000).unref();
    this.checkAllExited();
  }

  private checkAllExited(): void {
    if (!this.stopping || !this.slots.every((s) => s.worker === null) || this.finishing) return;
    this.finishing = true;
    // Workers have handed over what they accepted; now the producer flushes it to Kafka.
    const producer = this.producer;
    const done = (): void => {
      void this.admin?.close();
      this.log.info('stopped');
      this.resolveDone?.(this.exitCode);
    };
    if (producer === null) {
      done();
      return;
    }
    producer
      .shutdown({ reason: 'drain' })
      .then((r) => {
        const undelivered = r.report?.undelivered ?? 0;
        this.log.info('kafka producer stopped', { report: r.report, exitCode: r.exitCode, killed: r.killed, workerUndelivered: this.kafkaUndelivered });
        if (undelivered > 0 || r.killed) this.log.error('kafka records left undelivered at shutdown', { records: undelivered, killed: r.killed });
      })
      .catch((e: unknown) => this.log.error('kafka producer shutdown failed', { err: e }))
      .finally(done);
  }

  /** The producer process supervisor (null when nothing uses Kafka). */
  get kafkaProducer(): ProducerSupervisor | null {
    return this.producer;
  }

  /** The shared host state, health-check results and rate-limit table (for status and tests). */
  resilienceStatus(): { hosts: Record<string, unknown>; health: ReturnType<HealthChecker['status']>; rateLimits: ReturnType<RateLimitTable['stats']> | null } {
    const hosts: Record<string, unknown> = {};
    for (const [key, slot] of Object.entries(this.slotMap)) hosts[key] = this.hostState.snapshot(slot);
    return { hosts, health: this.health.status(), rateLimits: this.rateLimits?.stats() ?? null };
  }

  readyWorkers(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  /** The live worker threads (for status and tests). */
  workerThreads(): readonly (Worker | null)[] {
    return this.slots.map((s) => s.worker);
  }

  // ---- for the admin listener (AdminHost in src/main/admin.ts) ----------------------------

  get configVersion(): number {
    return this.version;
  }

  get currentConfig(): SluiceConfig {
    return this.config;
  }

  get draining(): boolean {
    return this.stopping;
  }

  /** The admin listener's port (null when admin.enabled is false). */
  get adminPort(): number | null {
    return this.admin?.port ?? null;
  }

  workerViews(): readonly WorkerView[] {
    return this.slots.map((s) => ({ id: s.id, ready: s.ready, alive: s.worker !== null, restarts: s.restarts, startedAt: s.startedAt }));
  }

  hostSnapshot(group: string, address: string): HostSnapshot | null {
    const slot = this.slotMap[hostKey(group, address)];
    return slot === undefined ? null : this.hostState.snapshot(slot);
  }

  /**
   * Asks every live worker for its counters (one 'stats' message each) and merges them with
   * what workers that have exited reported last. A worker that does not answer within
   * STATS_TIMEOUT_MS (stuck, or exiting) counts with its previous report.
   */
  async collectWorkerStats(): Promise<CollectedStats> {
    const live = this.slots.filter((s) => s.worker !== null);
    const replies = await Promise.all(live.map((s) => this.askStats(s)));
    const pools: StatsReply['pools'][number][] = [];
    const answered = new Map<number, { inflight: number; requests: number }>();
    let inflight = 0;
    for (const r of replies) {
      if (r === null) continue;
      pools.push(...r.pools);
      inflight += r.inflight;
      answered.set(r.workerId, { inflight: r.inflight, requests: r.requests });
    }
    return { totals: this.workerMetrics.total(), pools, inflight, answered };
  }

  private askStats(slot: WorkerSlot): Promise<StatsReply | null> {
    const w = slot.worker;
    if (w === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiters = this.statsWaiters.get(slot.id) ?? [];
      const waiter = (m: StatsReply | null): void => {
        clearTimeout(timer);
        resolve(m);
      };
      const timer = setTimeout(() => {
        const list = this.statsWaiters.get(slot.id);
        const i = list?.indexOf(waiter) ?? -1;
        if (list !== undefined && i !== -1) list.splice(i, 1);
        resolve(null);
      }, STATS_TIMEOUT_MS);
      timer.unref();
      waiters.push(waiter);
      this.statsWaiters.set(slot.id, waiters);
      w.postMessage({ type: 'stats' } satisfies PrimaryToWorker);
    });
  }

  private onStats(id: number, msg: StatsReply): void {
    this.workerMetrics.update(id, msg.counters);
    const waiters = this.statsWaiters.get(id);
    this.statsWaiters.delete(id);
    if (waiters !== undefined) for (const f of waiters) f(msg);
  }

  /** A worker thread exited: its last counters stay in the totals; nobody waits for it. */
  private workerGone(id: number): void {
    this.workerMetrics.retire(id);
    const waiters = this.statsWaiters.get(id);
    this.statsWaiters.delete(id);
    if (waiters !== undefined) for (const f of waiters) f(null);
  }

  /** Fault injection: makes worker `id` throw an uncaught error, exercising crash and respawn. */
  injectCrash(id: number, reason: string): boolean {
    const w = this.slots[id]?.worker;
    if (w == null) return false;
    w.postMessage({ type: 'crash', reason } satisfies PrimaryToWorker);
    return true;
  }
}
