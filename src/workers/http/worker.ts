/**
 * An HTTP worker thread: one uWebSockets.js app on the shared port (SO_REUSEPORT), the
 * proxy pipeline, its own upstream pools. Configuration comes frozen from the primary in
 * workerData and is swapped whole on reload; requests in flight keep the environment they
 * started with.
 *
 * Shutdown order matters in uWS 20.30: close the listen socket, let in-flight requests end,
 * then `app.close()` and let the thread's loop end by itself (process.exit with live uWS
 * handles aborts the process).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { frontOf, type SluiceConfig } from '../../shared/config';
import { createLogger, type Logger } from '../../shared/log';
import { assertNever, type PrimaryToWorker, type WorkerData, type WorkerToPrimary } from '../../shared/messages';
import { buildPipeline } from './pipeline';
import { builtinPhases } from './phases';
import type { EventCounters } from './phases/events';
import { loadUws, type Uws } from '../../shared/uws';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { KafkaLink } from './kafka/link';
import { HostStateTable } from '../../shared/host-state';
import { RateLimitTable } from '../../shared/rate-limit';
import { AccessLogFile } from './phases/access-log-file';
import { MetricsRecorder } from '../../shared/metrics';
import { setOnFinished } from './call';
import type { ListenerKind, ProxyEnv, WorkerStats } from './context';
import { makeHandler } from './downstream/handler';
import { Router } from './router';
import { FrontListener, type FrontOptions } from './downstream/front';
import { TlsListener } from './downstream/tls-listener';
import { notePeersOn } from './downstream/client-address';
import { Upstreams } from './upstream/upstreams';

const data = workerData as WorkerData;
const port = parentPort;
if (port === null) throw new Error('http-worker must run as a worker thread');

function send(msg: WorkerToPrimary): void {
  port?.postMessage(msg);
}

const stats: WorkerStats = { inflight: 0, requests: 0 };
const log: Logger = createLogger(data.config.log.level, { worker: data.workerId });

const accessWrite = (line: string): void => {
  process.stdout.write(line);
};

/** The access log file of this worker (log.accessFile), open while the config names one. */
let accessFile: AccessLogFile | null = null;

/**
 * The access log's writer for `config`: stdout, or log.accessFile opened again on every
 * build, since a reload (SIGHUP) is how log rotation reaches the workers: rename the file,
 * send SIGHUP, and new lines go to a new file at the configured path.
 */
function accessWriter(config: SluiceConfig): (line: string) => void {
  const path = config.log.access ? config.log.accessFile : '';
  if (path === '') {
    accessFile?.close();
    accessFile = null;
    return accessWrite;
  }
  if (accessFile === null) accessFile = new AccessLogFile(path, log);
  else accessFile.reopen(path);
  return accessFile.write;
}

const counters = new BigInt64Array(data.counters);
const eventStats: EventCounters = { produced: 0, dropped: 0, sampledOut: 0 };
/** Request metrics for the worker's life (kept across reloads: counters only grow). */
const metrics = new MetricsRecorder();
/** One link per worker for its life; the primary's producer socket path never changes. */
const kafka: KafkaLink | null =
  data.kafkaSocket === null
    ? null
    : new KafkaLink({
        socketPath: data.kafkaSocket,
        workerId: data.workerId,
        socketBufferBytes: data.config.kafka.socketBufferBytes,
        ffDelayMs: data.config.kafka.linkLingerMs,
        logger: log,
      });
const instance = data.config.kafka.instanceId === '' ? hostname() : data.config.kafka.instanceId;

const hostState = new HostStateTable(data.hostState);
const rateLimits = new RateLimitTable(data.rateLimits);

function buildEnv(config: SluiceConfig, slots: Readonly<Record<string, number>>, previous: ProxyEnv | null): ProxyEnv {
  const router = new Router(config.routes);
  const upstreams = Upstreams.build(config, previous?.upstreams ?? null, hostState, slots);
  const events = config.events.enabled && kafka !== null;
  // Opened (or closed) on every build: a reload is how log rotation reaches the workers.
  const accessLine = accessWriter(config);
  const phases = builtinPhases({
    config,
    router,
    upstreams,
    log,
    kafka,
    rateLimits,
    metrics,
    accessLine: config.log.access ? accessLine : null,
    events: events ? { config: config.events, counters, instance, workerId: data.workerId, stats: eventStats } : null,
  });
  return { config, router, upstreams, pipeline: buildPipeline(phases), log, stats, kafka, recordTries: events };
}

let env = buildEnv(data.config, data.hostSlots, null);
let app: TemplatedApp | null = null;
let listenSocket: us_listen_socket | null = null;
/** The HTTPS listener (tls.*) when uWS terminates TLS itself; null without one. */
let tlsListener: TlsListener | null = null;
/** Listeners that run through the front (src/workers/http/downstream/front.ts); `tlsFront` is the HTTPS one among them. */
const fronts: FrontListener[] = [];
let tlsFront: FrontListener | null = null;
let draining = false;
const DRAIN_SETTLE_MS = 50;

/**
 * Starts a listener through the front (src/workers/http/downstream/front.ts) on host:port; an error message,
 * or null once listening. The front's socket needs an IP literal (uWS resolves names itself).
 */
async function startFront(uws: Uws, listener: ListenerKind, host: string, options: Omit<FrontOptions, 'host'>): Promise<string | null> {
  let ip: string;
  try {
    ip = isIP(host) !== 0 ? host : (await lookup(host)).address;
  } catch (e) {
    return `cannot resolve the ${listener === 'https' ? 'HTTPS' : 'HTTP'} listener's host ${host}: ${(e as Error).message}`;
  }
  const f = new FrontListener(uws, { ...options, host: ip }, log);
  fronts.push(f);
  if (listener === 'https') tlsFront = f;
  return f.start(makeHandler(() => env, listener, f));
}

async function start(): Promise<void> {
  let uws;
  try {
    uws = loadUws();
  } catch (e) {
    send({ type: 'fatal', workerId: data.workerId, message: (e as Error).message });
    return;
  }
  const cfg = data.config;
  const fail = (message: string): void => {
    send({ type: 'fatal', workerId: data.workerId, message });
    closeListeners();
  };
  let boundPort = data.port;
  // The HTTP listener: uWS itself, or the listener front (PROXY v1, or v2 read once).
  const plain = frontOf(cfg.listen.proxyProtocol);
  if (plain === null) {
    const a = uws.App();
    a.any('/*', makeHandler(() => env));
    app = a;
    // uWS calls back synchronously.
    a.listen(cfg.listen.host, data.port, (token) => {
      listenSocket = token === false ? null : token;
    });
    if (listenSocket === null) return fail(`cannot listen on ${cfg.listen.host}:${data.port}`);
    notePeersOn(listenSocket);
    boundPort = uws.us_socket_local_port(listenSocket);
  } else {
    const err = await startFront(uws, 'http', cfg.listen.host, { port: data.port, proxyProtocol: plain.proxyProtocol, tls: null });
    if (err !== null) return fail(err);
  }
  const tls = cfg.tls;
  if (data.tls !== null && tls !== undefined) {
    const host = tls.host ?? cfg.listen.host;
    const front = frontOf(tls.proxyProtocol, tls.clientAuth);
    if (front === null) {
      const t = new TlsListener(uws, host, data.tls.port, makeHandler(() => env, 'https'), log);
      tlsListener = t;
      const err = t.start(data.tls.snapshot);
      if (err !== null) return fail(err);
    } else {
      const tlsOptions = { snapshot: data.tls.snapshot, clientAuth: front.clientAuth };
      const err = await startFront(uws, 'https', host, { port: data.tls.port, proxyProtocol: front.proxyProtocol, tls: tlsOptions });
      if (err !== null) return fail(err);
    }
  }
  send({ type: 'ready', workerId: data.workerId, port: boundPort });
}

/** Stops accepting on every listener; open connections keep going. */
function stopListening(): void {
  if (listenSocket !== null) loadUws().us_listen_socket_close(listenSocket);
  listenSocket = null;
  tlsListener?.stopListening();
  for (const f of fronts) f.stopListening();
}

/** Closes every listener and the connections left on them. Idempotent. */
function closeListeners(): void {
  stopListening();
  (app as unknown as { close(): void } | null)?.close();
  app = null;
  tlsListener?.closeAll();
  for (const f of fronts) f.closeAll();
}

function drain(deadlineMs: number): void {
  if (draining) return;
  draining = true;
  stopListening();
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    setOnFinished(undefined);
    const abandoned = stats.inflight;
    env.upstreams.closeAll();
    // Closing the apps cuts remaining connections (idle keep-alive ones, or requests past
    // the deadline); the thread's loop then ends on its own.
    closeListeners();
    // Hand every accepted Kafka record to the producer and wait for its outcome (bounded),
    // so that the counters below are final.
    const linkDone = kafka === null ? Promise.resolve() : kafka.close(data.config.kafka.flushTimeoutMs);
    void linkDone.then(() => {
      const k = kafka?.status() ?? null;
      send({
        type: 'drained',
        workerId: data.workerId,
        abandoned,
        kafkaUndelivered: k === null ? 0 : k.failed + k.unknown,
        kafka: k === null ? null : { enqueued: k.enqueued, delivered: k.delivered, failed: k.failed, unknown: k.unknown, dropped: k.dropped },
        events: { ...eventStats },
      });
      port?.close();
    });
  };
  const timer = setTimeout(finish, deadlineMs);
  // The last response may still sit in uWS's buffers when its request ends: close the app a
  // moment later, and only if no request started on a keep-alive connection meanwhile.
  const settle = (): void => {
    if (stats.inflight === 0) setTimeout(() => stats.inflight === 0 && finish(), DRAIN_SETTLE_MS);
  };
  setOnFinished(settle);
  settle();
}

/**
 * An uncaught error in a thread that holds uWS handles aborts the whole process when the
 * thread ends (uv_loop_close with open handles). So the worker closes its own sockets and
 * lets its loop end; the primary sees the exit and respawns it.
 */
let crashed = false;
function crash(err: unknown): void {
  if (crashed) return;
  crashed = true;
  log.error('worker crashed; closing its sockets for a respawn', { err });
  send({ type: 'crashed', workerId: data.workerId, message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
  try {
    env.upstreams.closeAll();
    closeListeners();
    kafka?.destroy();
  } finally {
    port?.close();
  }
}
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

port.on('message', (msg: PrimaryToWorker) => {
  switch (msg.type) {
    case 'reload': {
      env = buildEnv(msg.config, msg.hostSlots, env);
      log.setLevel(msg.config.log.level);
      // New certificates: a new HTTPS app on the same port; connections on the old one get
      // shutdown.drainTimeoutMs to finish (src/workers/http/downstream/tls-listener.ts).
      if (msg.tls !== null && !draining) {
        tlsListener?.swap(msg.tls, msg.config.shutdown.drainTimeoutMs);
        tlsFront?.swap(msg.tls);
      }
      send({ type: 'reloaded', workerId: data.workerId, version: msg.version });
      break;
    }
    case 'drain':
      drain(msg.deadlineMs);
      break;
    case 'crash':
      // Fault injection (docs/operations.md): exercise the crash-and-respawn path for real.
      setImmediate(() => {
        throw new Error(`crash injected: ${msg.reason}`);
      });
      break;
    case 'stats': {
      const k = kafka?.status() ?? null;
      send({
        type: 'stats',
        workerId: data.workerId,
        inflight: stats.inflight,
        requests: stats.requests,
        pools: env.upstreams.poolStats(),
        counters: {
          recorder: metrics.snapshot(),
          events: { ...eventStats },
          kafka: k === null ? null : { enqueued: k.enqueued, dropped: k.dropped, delivered: k.delivered, failed: k.failed, unknown: k.unknown },
        },
      });
      break;
    }
    default:
      assertNever(msg);
  }
});

void start();
