/**
 * The producer service: builds the parts and wires them together, runs the STATUS tick
 * and the stats to the supervisor. Each concern lives in its own module:
 * links.ts (worker sockets, frames, replies), ledger.ts (counts), broker.ts (broker state,
 * client events), routing.ts (which client takes a record), metadata.ts (partition counts),
 * main-client.ts, native-client.ts, epoch-clients.ts, transactions.ts, and shutdown.ts
 * (the shutdown sequence).
 *
 * Must never (nor any module it wires): carry logic of its own beyond the wiring and the
 * tick (a behaviour belongs in the module of its concern), crash on a record (a bad frame
 * closes that link only), block the event loop, wait on a full queue, or log record contents.
 */
import { librdkafkaConfig, redactedLibrdkafkaConfig, type KafkaConfig, type LibrdkafkaConfig } from '../../shared/kafka-config';
import type { ProducerStatus } from '../../shared/kafka-frames';
import type { PollMode, ProducerShutdownReport, ProducerStats } from '../../shared/kafka-messages';
import type { Logger } from '../../shared/log';
import { BrokerState } from './broker';
import { EpochClients } from './epoch-clients';
import { sendToSupervisor } from './ipc';
import { KafkaClients, checkClientConf, fireAndForgetConf } from './kafka-client';
import { Ledger } from './ledger';
import { Links, type Conn } from './links';
import { MainClient } from './main-client';
import { PartitionCounts } from './metadata';
import { NativeFfClient } from './native-client';
import { RecordRouter } from './routing';
import { shutDown } from './shutdown';
import { Transactions, txnConf } from './transactions';
import type { StopFlag } from './util';

const STATS_IPC_INTERVAL_MS = 1000;
const DEFAULT_STATUS_INTERVAL_MS = 250;

export class ProducerService {
  private readonly conf: LibrdkafkaConfig;
  private readonly pollMode: PollMode;
  private readonly statusIntervalMs: number;
  private readonly stop: StopFlag = { stopping: false };
  private readonly links: Links;
  private readonly ledger: Ledger;
  private readonly broker: BrokerState;
  private readonly counts: PartitionCounts;
  private readonly main: MainClient;
  private readonly native: NativeFfClient;
  private readonly epochs: EpochClients;
  private readonly txns: Transactions;
  private readonly router: RecordRouter;
  private statusTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private shutdownPromise: Promise<ProducerShutdownReport> | null = null;

  constructor(
    private readonly cfg: KafkaConfig,
    socketPath: string,
    private readonly log: Logger,
    opts: { pollMode?: PollMode; statusIntervalMs?: number } = {},
  ) {
    const conf = (this.conf = librdkafkaConfig(cfg));
    this.pollMode = opts.pollMode ?? 'background';
    this.statusIntervalMs = opts.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    const stop = this.stop;
    // The links call into the parts built after them: each call goes through `this`.
    const links = (this.links = new Links(
      socketPath,
      log,
      {
        produce: (c, b, s, e) => this.router.produceFrame(c, b, s, e),
        produceTxn: (c, b, s, e) => this.txns.take(c, b, s, e),
        produceRun: (c, b, s, e) => this.native.takeRun(c, b, s, e),
      },
      (s, c, final) => this.fillStatus(s, c, final),
    ));
    const broker = (this.broker = new BrokerState(cfg.brokers, log, links, () => this.main.producer, stop));
    const ledger = (this.ledger = new Ledger(links, broker.sawDelivery));
    const clients = new KafkaClients(this.pollMode, broker);
    const counts = (this.counts = new PartitionCounts({
      log,
      ledger,
      client: () => this.main.producer,
      anyClient: () => this.main.producer ?? this.txns.producer,
      redispatch: (h) => this.router.dispatch(h.connNo, h, h),
    }));
    const main = (this.main = new MainClient({ cfg, conf, log, clients, ledger, broker, counts, stop, onConnected: () => this.onMainConnected() }));
    const native = (this.native = new NativeFfClient({
      cfg,
      conf,
      log,
      ledger,
      links,
      events: broker,
      counts,
      recordsWaiting: () => this.router.waitingRecords > 0,
      mainFfInFlight: () => main.ffInFlight,
      toMain: (connNo, r, partition) => main.produce(connNo, 0, r, partition),
    }));
    const epochs = (this.epochs = new EpochClients({ cfg, conf, log, clients, ledger, links, counts, stop }));
    this.txns = new Transactions({ cfg, conf, log, clients, ledger, links, counts, stop });
    this.router = new RecordRouter({ cfg, ledger, counts, main, native, epochs });
    broker.onUp = () => main.brokerBack();
    broker.onMainFatal = (reason) => void main.replace(reason);
    counts.onCount = (topic, count) => native.setPartitionCount(topic, count);
  }

  /** Checks the librdkafka properties (the client refuses unknown or bad ones) without connecting. */
  validateClientConfig(): void {
    checkClientConf(this.conf, true);
    checkClientConf(fireAndForgetConf(this.cfg, this.conf, true), true);
    if (this.cfg.transactions) checkClientConf(txnConf(this.cfg, this.conf), false);
  }

  /** Listens on the socket (replacing a stale socket file); Kafka is connected afterwards. */
  async listen(): Promise<void> {
    await this.links.listen();
    this.statusTimer = setInterval(() => this.tick(), this.statusIntervalMs);
    this.statsTimer = setInterval(() => this.sendStats(), STATS_IPC_INTERVAL_MS);
    this.statsTimer.unref();
    this.log.info('producer listening', { socket: this.links.socketPath, librdkafka: redactedLibrdkafkaConfig(this.conf), pollMode: this.pollMode });
  }

  /** Connects to Kafka in the background (retrying with back-off until shutdown). */
  startKafka(): void {
    void this.main.connectLoop();
    if (this.cfg.transactions) void this.txns.start();
  }

  /** The main client's first connection: what waited goes, then the fire-and-forget path starts. */
  private onMainConnected(): void {
    this.router.drainWaiting();
    if (!this.cfg.nativeFireAndForget || !this.native.start()) void this.epochs.start();
  }

  private fillStatus(s: ProducerStatus, conn: Conn | null, final: boolean): void {
    const { ledger, broker } = this;
    s.brokerUp = broker.up;
    s.kafkaConnected = broker.connected;
    s.txnReady = this.txns.ready;
    s.shuttingDown = this.stop.stopping;
    s.final = final;
    s.queueMessages = ledger.queued;
    s.queueBytes = Math.max(0, ledger.queuedBytes);
    s.queueMaxMessages = this.cfg.queueMaxMessages;
    s.queueMaxBytes = this.cfg.queueMaxKBytes * 1024;
    s.delivered = ledger.delivered;
    s.failed = ledger.failed;
    s.queueFull = ledger.queueFull;
    s.deliveredPerSec = ledger.ratePerSec;
    s.connReceived = conn?.received ?? 0;
    s.connFfDelivered = conn?.ffDelivered ?? 0;
    s.connFfFailed = conn?.ffFailed ?? 0;
    s.connFfUnknown = conn?.ffUnknown ?? 0;
  }

  /** STATUS to every link, the delivery rate, expiry of records waiting too long, the clients' periodic work. */
  private tick(): void {
    const now = Date.now();
    const limit = this.cfg.messageTimeoutMs;
    this.ledger.updateRate(now);
    this.router.expire(now, limit);
    this.counts.expire(now, limit);
    // Transactions waiting for a transactional producer that cannot start (broker down).
    this.txns.expire(now, limit);
    this.main.checkWedged(now);
    if (this.native.running) {
      this.native.settle();
      // The native client places keyed records with the counts it was given and never asks:
      // refresh them here as the JavaScript path does when it uses one (a topic may grow).
      this.counts.refreshStale(now);
    }
    this.epochs.rotate();
    this.links.broadcastStatus();
  }

  private sendStats(): void {
    if (typeof process.send !== 'function' || !process.connected) return;
    sendToSupervisor({ type: 'stats', stats: this.stats() });
  }

  stats(): ProducerStats {
    const { ledger, broker } = this;
    return {
      at: Date.now(),
      pid: process.pid,
      kafkaConnected: broker.connected,
      brokerUp: broker.up,
      txnReady: this.txns.ready,
      connections: this.links.size,
      received: ledger.received,
      delivered: ledger.delivered,
      failed: ledger.failed,
      queueFull: ledger.queueFull,
      queueMessages: ledger.queued,
      queueBytes: Math.max(0, ledger.queuedBytes),
      deliveredPerSec: Math.round(ledger.ratePerSec),
      txnCommitted: ledger.txnCommitted,
      txnAborted: ledger.txnAborted,
      clientReplacements: this.main.replacements,
      librdkafka: broker.stats,
    };
  }

  /** Idempotent: the first call's report (the sequence is shutdown.ts's). */
  shutdown(reason: string, waitForLinksMs: number): Promise<ProducerShutdownReport> {
    this.shutdownPromise ??= shutDown(
      {
        cfg: this.cfg,
        log: this.log,
        stop: this.stop,
        links: this.links,
        ledger: this.ledger,
        router: this.router,
        counts: this.counts,
        main: this.main,
        native: this.native,
        epochs: this.epochs,
        txns: this.txns,
        stopTimers: () => {
          if (this.statusTimer !== null) clearInterval(this.statusTimer);
          if (this.statsTimer !== null) clearInterval(this.statsTimer);
        },
      },
      reason,
      waitForLinksMs,
    );
    return this.shutdownPromise;
  }
}
