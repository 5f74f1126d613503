/**
 * The admin listener (primary thread, node:http, loopback by default): GET /metrics
 * (Prometheus text 0.0.4), GET /healthz (200 only when every worker is READY and the
 * instance is not draining) and GET /status (JSON). docs/observability.md describes them.
 *
 * It reads the primary through `AdminHost` and never touches traffic: a scrape asks every
 * worker for a snapshot (one message each, bounded wait), merges and renders. The server is
 * unref'd, so it never keeps a failed start alive; the primary closes it when the drain ends.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SluiceConfig } from '../shared/config';
import { sluiceError, type ErrorCode } from '../shared/errors';
import type { HostSnapshot } from '../shared/host-state';
import type { Logger } from '../shared/log';
import { renderPrometheus, type MetricsTotals, type MetricsView } from '../shared/metrics';
import type { HealthChecker } from './health-checker';
import type { ProducerSupervisor } from './producer-supervisor';

export interface WorkerView {
  readonly id: number;
  readonly ready: boolean;
  /** A thread exists (false between a crash and its respawn). */
  readonly alive: boolean;
  readonly restarts: number;
  /** When the current thread was started (ms since the epoch). */
  readonly startedAt: number;
}

/** What one round of 'stats' requests gathered. */
export interface CollectedStats {
  /** Counters of live and retired workers, merged. */
  readonly totals: MetricsTotals;
  readonly pools: readonly { readonly address: string; readonly open: number; readonly idle: number }[];
  readonly inflight: number;
  /** Workers that answered in time, with their own gauges. */
  readonly answered: ReadonlyMap<number, { readonly inflight: number; readonly requests: number }>;
}

/** The primary as the admin listener sees it. */
export interface AdminHost {
  readonly startedAtMs: number;
  readonly configVersion: number;
  readonly currentConfig: SluiceConfig;
  readonly draining: boolean;
  readonly listenPort: number;
  readonly kafkaProducer: ProducerSupervisor | null;
  workerViews(): readonly WorkerView[];
  /** Shared host state of `group`'s `address` (null when it has no slot). */
  hostSnapshot(group: string, address: string): HostSnapshot | null;
  resilienceStatus(): { readonly health: ReturnType<HealthChecker['status']>; readonly rateLimits: MetricsView['rateLimitTable'] };
  collectWorkerStats(): Promise<CollectedStats>;
}

/** GET /healthz: ready when every worker is READY and nothing drains. */
export function healthOf(host: AdminHost): { ok: boolean; reason: string } {
  if (host.draining) return { ok: false, reason: 'draining' };
  const workers = host.workerViews();
  const ready = workers.filter((w) => w.ready).length;
  if (ready < workers.length || workers.length === 0) return { ok: false, reason: `workers ready: ${ready}/${workers.length}` };
  return { ok: true, reason: 'ok' };
}

function upstreamViews(host: AdminHost): MetricsView['upstreams'] {
  return Object.entries(host.currentConfig.upstreams).map(([group, u]) => {
    const seen = new Set<string>();
    const hosts = [];
    for (const h of u.hosts) {
      if (seen.has(h.address)) continue;
      seen.add(h.address);
      hosts.push({ address: h.address, state: host.hostSnapshot(group, h.address) });
    }
    return { group, hosts };
  });
}

export class AdminServer {
  /** Requests total and time of the previous /metrics scrape, for the requests-per-second gauge. */
  private previous: { at: number; requests: number } | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly server: Server,
    private readonly host: AdminHost,
    private readonly log: Logger,
  ) {}

  /**
   * Listens on `host:port` (port 0 = any). Rejects with an error naming `admin.port` when the
   * address cannot be bound (in use, not local).
   */
  static start(address: string, port: number, host: AdminHost, log: Logger): Promise<AdminServer> {
    return new Promise((resolve, reject) => {
      let admin: AdminServer | null = null;
      const server = createServer((req, res) => {
        if (admin !== null) admin.handle(req, res);
      });
      server.keepAliveTimeout = 5000;
      server.once('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'EADDRINUSE' ? 'the port is in use by another process' : e.message;
        reject(new Error(`admin.port: cannot listen on ${address}:${port}: ${why}`));
      });
      server.listen({ host: address, port, exclusive: true }, () => {
        server.unref();
        admin = new AdminServer(server, host, log);
        server.on('error', (e) => log.error('admin listener error', { err: e }));
        resolve(admin);
      });
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and cuts open connections; idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // The admin endpoints take no body; whatever a client sends is drained and ignored.
    req.resume();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const known = path === '/metrics' || path === '/healthz' || path === '/status';
    if (!known) {
      this.error(res, 'SLUICE_ERR_NO_ROUTE', `no admin endpoint ${path}; try /metrics, /healthz or /status`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.error(res, 'SLUICE_ERR_METHOD_NOT_ALLOWED', `${req.method ?? ''} ${path}: only GET and HEAD`, ['allow', 'GET, HEAD']);
      return;
    }
    const answer = path === '/metrics' ? this.metrics() : path === '/status' ? this.status() : Promise.resolve(this.healthz());
    answer.then(
      (a) => this.send(res, req.method === 'HEAD', a.status, a.type, a.body),
      (e: unknown) => {
        this.log.error('admin endpoint failed', { path, err: e });
        this.error(res, 'SLUICE_ERR_INTERNAL', (e as Error).message);
      },
    );
  }

  private healthz(): { status: number; type: string; body: string } {
    const h = healthOf(this.host);
    return { status: h.ok ? 200 : 503, type: 'text/plain; charset=utf-8', body: `${h.reason}\n` };
  }

  private async metrics(): Promise<{ status: number; type: string; body: string }> {
    const c = await this.host.collectWorkerStats();
    const now = Date.now();
    const requests = c.totals.requests();
    const since = this.previous ?? { at: this.host.startedAtMs, requests: 0 };
    const seconds = (now - since.at) / 1000;
    this.previous = { at: now, requests };
    const workers = this.host.workerViews();
    const producer = this.host.kafkaProducer;
    const r = this.host.resilienceStatus();
    const view: MetricsView = {
      totals: c.totals,
      requestsPerSecond: seconds > 0 ? Math.max(0, requests - since.requests) / seconds : 0,
      inflight: c.inflight,
      pools: c.pools,
      workers: { configured: workers.length, ready: workers.filter((w) => w.ready).length, restarts: workers.reduce((n, w) => n + w.restarts, 0) },
      configVersion: this.host.configVersion,
      startTimeSeconds: this.host.startedAtMs / 1000,
      draining: this.host.draining,
      upstreams: upstreamViews(this.host),
      rateLimitTable: r.rateLimits,
      producer: producer === null ? null : { running: producer.running, restarts: producer.restarts, stats: producer.stats() },
    };
    return { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: renderPrometheus(view) };
  }

  private async status(): Promise<{ status: number; type: string; body: string }> {
    const c = await this.host.collectWorkerStats();
    const health = healthOf(this.host);
    const checks = new Map(this.host.resilienceStatus().health.map((h) => [`${h.group}|${h.address}`, h]));
    const cfg = this.host.currentConfig;
    const upstreams: Record<string, unknown> = {};
    for (const g of upstreamViews(this.host)) {
      upstreams[g.group] = {
        balance: cfg.upstreams[g.group]?.balance,
        hosts: g.hosts.map((h) => {
          const s = h.state;
          const hc = checks.get(`${g.group}|${h.address}`);
          return {
            address: h.address,
            healthy: s?.healthy ?? true,
            available: s?.available ?? true,
            ejected: s?.outlier.ejected ?? false,
            ejections: s?.outlier.ejections ?? 0,
            breaker: s?.breaker.state ?? 'closed',
            breakerOpened: s?.breaker.opened ?? 0,
            activeRequests: s?.concurrency.active ?? 0,
            healthCheck: hc === undefined ? null : { healthy: hc.healthy, checks: hc.checks, lastReason: hc.lastReason },
          };
        }),
      };
    }
    const producer = this.host.kafkaProducer;
    const body = {
      ready: health.ok,
      reason: health.reason,
      draining: this.host.draining,
      configVersion: this.host.configVersion,
      startedAt: new Date(this.host.startedAtMs).toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.host.startedAtMs) / 100) / 10,
      listen: { host: cfg.listen.host, port: this.host.listenPort },
      workers: this.host.workerViews().map((w) => {
        const a = c.answered.get(w.id);
        return {
          id: w.id,
          ready: w.ready,
          alive: w.alive,
          restarts: w.restarts,
          startedAt: new Date(w.startedAt).toISOString(),
          inflight: a?.inflight ?? null,
          requests: a?.requests ?? null,
        };
      }),
      upstreams,
      rateLimitTable: this.host.resilienceStatus().rateLimits,
      kafka:
        producer === null
          ? null
          : { running: producer.running, pid: producer.pid, restarts: producer.restarts, stats: producer.stats() },
    };
    return { status: 200, type: 'application/json', body: `${JSON.stringify(body, null, 2)}\n` };
  }

  private send(res: ServerResponse, head: boolean, status: number, type: string, body: string, extra: readonly string[] = []): void {
    res.statusCode = status;
    res.setHeader('content-type', type);
    res.setHeader('cache-control', 'no-store');
    for (let i = 0; i < extra.length; i += 2) res.setHeader(extra[i] as string, extra[i + 1] as string);
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(head ? undefined : body);
  }

  private error(res: ServerResponse, code: ErrorCode, detail: string, extra: readonly string[] = []): void {
    const e = sluiceError(code, detail);
    const body = `${JSON.stringify({ error: code, message: e.message })}\n`;
    this.send(res, false, e.status, 'application/json', body, ['x-sluice-error', code, ...extra]);
  }
}
