/**
 * The primary's handle on the Kafka producer process (src/workers/producer/main.ts): forks
 * it with the validated `kafka` config, waits (bounded) for it to listen on its Unix socket,
 * respawns it with back-off when it dies, keeps its latest stats (IPC, once a second) for
 * /metrics, and shuts it down gracefully (flush within kafka.flushTimeoutMs, then exit).
 *
 * The socket path is fixed for the supervisor's life, so HTTP workers reconnect to the
 * respawned process without being told anything.
 *
 * Must never: load the Kafka client (the primary only forks), block, or let a crashing
 * producer take the primary down.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { LogLevel } from '../shared/config';
import type { KafkaConfig } from '../shared/kafka-config';
import {
  PRODUCER_INIT_ENV,
  type PollMode,
  type ProducerInit,
  type ProducerShutdownReport,
  type ProducerStats,
  type ProducerToSupervisor,
  type SupervisorToProducer,
} from '../shared/kafka-messages';
import type { Logger } from '../shared/log';
import { assertNever } from '../shared/messages';

/** Longest Unix socket path (sun_path is 108 bytes on Linux, with the NUL). */
const MAX_SOCKET_PATH = 107;
const RESPAWN_MIN_MS = 100;
const RESPAWN_MAX_MS = 5000;
/** A producer that lived this long starts its back-off over. */
const RESPAWN_RESET_AFTER_MS = 30000;

export interface ProducerSupervisorOptions {
  /** The validated, frozen `kafka` section. */
  readonly config: KafkaConfig;
  readonly logger: Logger;
  /** The producer's log level (default: info). */
  readonly logLevel?: LogLevel;
  /** Default: `<kafka.socketDir or the OS temp dir>/sluice-kafka-<pid>-<n>.sock`. */
  readonly socketPath?: string;
  /** How long a (re)started producer may take to listen (default 15 s). */
  readonly readyTimeoutMs?: number;
  /** SIGTERM sent to the producer directly: how long it keeps open links (default flushTimeoutMs). */
  readonly sigtermWaitMs?: number;
  /** Default: the compiled producer/main.js next to this module's directory. */
  readonly script?: string;
  /** The producer's environment (default process.env); the init variable is added. */
  readonly env?: NodeJS.ProcessEnv;
  /** Node options for the producer (default none: the primary's own are not inherited). */
  readonly execArgv?: readonly string[];
  /** Receives the producer's stderr lines (JSON logs); default: inherited by the primary's stderr. */
  readonly logSink?: (line: string) => void;
  readonly pollMode?: PollMode;
  readonly statusIntervalMs?: number;
}

export interface ProducerShutdownResult {
  /** The producer's own accounting (null when it did not get to send it). */
  readonly report: ProducerShutdownReport | null;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** It missed the deadline and was killed. */
  readonly killed: boolean;
}

let socketSeq = 0;

/** The default socket path for this process (unique per supervisor). */
export function defaultSocketPath(cfg: KafkaConfig): string {
  const dir = cfg.socketDir === '' ? os.tmpdir() : cfg.socketDir;
  return path.join(dir, `sluice-kafka-${process.pid}-${socketSeq++}.sock`);
}

/**
 * Events: 'ready' (pid) after every (re)start, 'exit' (code, signal), 'stats' (ProducerStats).
 */
export class ProducerSupervisor extends EventEmitter {
  readonly socketPath: string;
  private readonly opts: ProducerSupervisorOptions;
  private readonly log: Logger;
  private child: ChildProcess | null = null;
  private ready = false;
  private wasReadyOnce = false;
  private startedAt = 0;
  private restartCount = 0;
  private backoffStep = 0;
  private respawnTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private latest: ProducerStats | null = null;
  private report: ProducerShutdownReport | null = null;
  private shutdownPromise: Promise<ProducerShutdownResult> | null = null;

  constructor(opts: ProducerSupervisorOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger.child({ component: 'kafka-supervisor' });
    this.socketPath = opts.socketPath ?? defaultSocketPath(opts.config);
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH) {
      throw new Error(`Kafka producer socket path is longer than ${MAX_SOCKET_PATH} bytes: ${this.socketPath} (set kafka.socketDir to a shorter directory)`);
    }
  }

  /** The live producer's pid (null while it is down). */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** The producer is listening (links can connect). */
  get running(): boolean {
    return this.ready;
  }

  /** Times the producer was respawned after dying. */
  get restarts(): number {
    return this.restartCount;
  }

  /** The producer's latest stats (ProducerStats, once a second), null before the first. */
  stats(): ProducerStats | null {
    return this.latest;
  }

  /**
   * Forks the producer and resolves once it listens. Rejects (and leaves nothing running)
   * when it reports a fatal error (e.g. librdkafka refused the config) or misses the
   * ready deadline; after that, deaths are respawned.
   */
  start(): Promise<void> {
    return this.spawn(true);
  }

  private spawn(first: boolean): Promise<void> {
    const init: ProducerInit = {
      config: this.opts.config,
      socketPath: this.socketPath,
      logLevel: this.opts.logLevel ?? 'info',
      sigtermWaitMs: this.opts.sigtermWaitMs ?? this.opts.config.flushTimeoutMs,
      ...(this.opts.pollMode !== undefined ? { pollMode: this.opts.pollMode } : {}),
      ...(this.opts.statusIntervalMs !== undefined ? { statusIntervalMs: this.opts.statusIntervalMs } : {}),
    };
    const script = this.opts.script ?? path.join(__dirname, '..', 'workers', 'producer', 'main.js');
    const pipe = this.opts.logSink !== undefined;
    const child = fork(script, [], {
      env: { ...(this.opts.env ?? process.env), [PRODUCER_INIT_ENV]: JSON.stringify(init) },
      execArgv: [...(this.opts.execArgv ?? [])],
      stdio: ['ignore', 'inherit', pipe ? 'pipe' : 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.ready = false;
    this.startedAt = Date.now();
    if (pipe && child.stderr !== null) {
      const sink = this.opts.logSink as (line: string) => void;
      let buf = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) !== -1) {
          sink(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const timeoutMs = this.opts.readyTimeoutMs ?? 15000;
      const timer = setTimeout(() => {
        this.log.error('the Kafka producer did not become ready in time; killing it', { pid: child.pid, timeoutMs });
        settle(new Error(`the Kafka producer did not become ready within ${timeoutMs} ms`));
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('message', (m: ProducerToSupervisor) => {
        switch (m.type) {
          case 'ready':
            this.ready = true;
            this.log.info('Kafka producer ready', { pid: m.pid, socket: m.socketPath, restarts: this.restartCount });
            settle();
            this.emit('ready', m.pid);
            break;
          case 'fatal':
            this.log.error('the Kafka producer failed to start', { pid: child.pid, reason: m.message });
            settle(new Error(`the Kafka producer failed to start: ${m.message}`));
            break;
          case 'stats':
            this.latest = m.stats;
            this.emit('stats', m.stats);
            break;
          case 'shutdown-report':
            this.report = m.report;
            break;
          default:
            assertNever(m);
        }
      });
      child.on('error', (e) => {
        this.log.error('Kafka producer process error', { err: e });
        settle(e);
      });
      child.on('exit', (code, signal) => {
        if (this.child === child) {
          this.child = null;
          this.ready = false;
        }
        this.emit('exit', code, signal);
        settle(new Error(`the Kafka producer exited (code ${code}, signal ${signal}) before it was ready`));
        if (this.stopping) return;
        if (first && !this.wasReadyOnce) {
          // A failed first start is the caller's error to report; nothing is respawned.
          return;
        }
        this.scheduleRespawn(code, signal);
      });
    }).then(
      () => {
        this.wasReadyOnce = true;
      },
      (e: unknown) => {
        if (first && !this.wasReadyOnce) {
          this.stopping = true;
          if (child.exitCode === null && child.signalCode === null) {
            child.once('exit', () => this.removeSocketFile());
            child.kill('SIGKILL');
          } else {
            this.removeSocketFile();
          }
        }
        throw e;
      },
    );
  }

  private scheduleRespawn(code: number | null, signal: NodeJS.Signals | null): void {
    if (Date.now() - this.startedAt > RESPAWN_RESET_AFTER_MS) this.backoffStep = 0;
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_MIN_MS * 2 ** this.backoffStep);
    this.backoffStep++;
    this.log.error('Kafka producer exited; respawning', { code, signal, inMs: delay });
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = null;
      if (this.stopping) return;
      this.restartCount++;
      this.spawn(false).catch((e: unknown) => {
        this.log.error('Kafka producer respawn failed', { err: e });
        // The failed child's exit schedules the next attempt.
      });
    }, delay);
    // Referenced on purpose: while the supervisor wants a producer, the process stays up to
    // respawn it (shutdown() clears the timer).
  }

  /** The producer unlinks its socket when it closes; a killed one cannot, so we do (ours alone). */
  private removeSocketFile(): void {
    try {
      if (fs.lstatSync(this.socketPath).isSocket()) fs.unlinkSync(this.socketPath);
    } catch {
      // gone already
    }
  }

  /**
   * Graceful stop: the producer stops accepting links, keeps open ones up to
   * `waitForLinksMs` (default 0: call this after the HTTP workers have closed their links),
   * flushes within kafka.flushTimeoutMs, reports, and exits. Past `deadlineMs` (default
   * waitForLinksMs + flushTimeoutMs + 5 s) it is killed. Idempotent.
   */
  shutdown(opts: { readonly reason?: string; readonly waitForLinksMs?: number; readonly deadlineMs?: number } = {}): Promise<ProducerShutdownResult> {
    if (this.shutdownPromise !== null) return this.shutdownPromise;
    this.stopping = true;
    if (this.respawnTimer !== null) {
      clearTimeout(this.respawnTimer);
      this.respawnTimer = null;
    }
    const waitForLinksMs = opts.waitForLinksMs ?? 0;
    const deadlineMs = opts.deadlineMs ?? waitForLinksMs + this.opts.config.flushTimeoutMs + 5000;
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) {
      this.removeSocketFile();
      this.shutdownPromise = Promise.resolve({ report: this.report, exitCode: child?.exitCode ?? null, signal: child?.signalCode ?? null, killed: false });
      return this.shutdownPromise;
    }
    this.shutdownPromise = new Promise<ProducerShutdownResult>((resolve) => {
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        this.log.error('the Kafka producer did not exit in time; killing it', { pid: child.pid, deadlineMs });
        child.kill('SIGKILL');
      }, deadlineMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        this.removeSocketFile();
        resolve({ report: this.report, exitCode: code, signal, killed });
      });
      const msg: SupervisorToProducer = { type: 'shutdown', reason: opts.reason ?? 'shutdown', waitForLinksMs };
      try {
        child.send(msg);
      } catch {
        child.kill('SIGTERM');
      }
    });
    return this.shutdownPromise;
  }
}
