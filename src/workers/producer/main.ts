/**
 * The Kafka producer process: the one place in Sluice that runs the Kafka client. A child
 * process forked by the primary's ProducerSupervisor (never a worker thread: the client's
 * addon aborts the whole process there, confluent-kafka-javascript issue #258).
 *
 * It listens on a Unix socket (one connection per HTTP worker's KafkaLink), decodes frames
 * (src/shared/kafka-frames.ts), produces with the callback `Producer` API and sends each
 * delivery report back on the connection that asked for it. docs/kafka.md describes the
 * protocol, the semantics and every counter.
 *
 * - Start-up: validates the config, listens, says `ready` over IPC, then connects to Kafka in
 *   a retry loop with back-off. It runs without a broker: records wait (bounded by the queue
 *   limits, failed after message.timeout.ms) and STATUS says the broker is down.
 * - Backpressure: produce() throwing ERR__QUEUE_FULL answers that record at once with -184
 *   (counted as queueFull); nothing here waits or grows without bound.
 * - Partitioning: librdkafka's partitioner, or jump consistent hash of the key's xxh3 over the
 *   topic's partition count (src/workers/producer/partitions.ts), counts cached from metadata.
 * - Fire-and-forget records marked unordered (request events), and those of async-only
 *   routes (ordered: ffAccept says when), go by default to the native client
 *   (native/napi/src/librdkafka_ff.rs): straight from the link's read buffer into librdkafka, one
 *   call per run of frames, every report counted per link in native code.
 * - Without it (kafka.nativeFireAndForget false, or it cannot start), unordered records go to
 *   two more clients with `delivery.report.only.error`,
 *   used in turn: a successful record costs no report into JavaScript (measured: 3-4 µs of
 *   producer CPU per record against 10-13 µs with one). Each client's records form an
 *   *epoch*; when the other client takes over, the epoch is flushed, and once librdkafka's
 *   queue for it is empty its records are settled: the error reports counted failed, the
 *   rest delivered. Until both clients are connected they go to the main client. Other
 *   records never take this path: order against them, and across epochs, is not kept.
 * - Transactions: a second, transactional producer (`sluice-<instance>-txn`) runs one
 *   PRODUCE_TXN batch at a time: begin, produce all, commit; abort on any error.
 * - Shutdown (SIGTERM or the supervisor's message): stop accepting links, let open links
 *   finish (bounded), flush within flushTimeoutMs, report per link what was delivered, failed
 *   or left undelivered, exit 0.
 *
 * Must never: crash on a record (a bad frame closes that link only), block the event loop,
 * wait on a full queue, or log record contents.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import {
  Producer,
  type DeliveryReport,
  type LibrdKafkaError,
  type Metadata,
  type ProducerGlobalConfig,
} from '@confluentinc/kafka-javascript';

import {
  buildKafkaConfig,
  librdkafkaConfig,
  redactedLibrdkafkaConfig,
  transactionalId,
  wedgedAfterMs,
  type KafkaConfig,
  type LibrdkafkaConfig,
} from '../../shared/kafka-config';
import {
  DecodedRecord,
  FRAME,
  FrameError,
  FrameReader,
  FRAME_HEADER_BYTES,
  FrameWriter,
  KERR,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  ProducerStatus,
  decodeHello,
  decodeProduce,
  decodeProduceTxn,
  type DecodedHeader,
  type KafkaHeader,
} from '../../shared/kafka-frames';
import {
  PRODUCER_INIT_ENV,
  type ConnectionShutdownReport,
  type LibrdkafkaStatsSummary,
  type PollMode,
  type ProducerInit,
  type ProducerShutdownReport,
  type ProducerStats,
  type ProducerToSupervisor,
  type SupervisorToProducer,
} from '../../shared/kafka-messages';
import { jumpConsistentHash, keyHasher } from './partitions';
import { createLogger, type Logger } from '../../shared/log';
import { KAFKA_FF_ACCEPT_ORDERED, KAFKA_FF_ACCEPT_UNORDERED, KAFKA_FF_NOT_HANDLED, KAFKA_FF_REFUSED, loadNative, type KafkaFf } from '../../shared/native';
import { assertNever } from '../../shared/messages';

const TWO_32 = 4294967296;

/**
 * Whether the PRODUCE body at `body` has id 0 (no report wanted): only those can take the
 * native client, so a sync record costs no call into it.
 */
function noReportWanted(buf: Buffer, body: number): boolean {
  return body + 4 <= buf.length && ((buf[body] as number) | (buf[body + 1] as number) | (buf[body + 2] as number) | (buf[body + 3] as number)) === 0;
}
/** Transactional opaque = job sequence * 2^21 + record index (MAX_TXN_RECORDS < 2^21). */
const TXN_INDEX_SPAN = 2097152;
const CONNECT_TIMEOUT_MS = 5000;
const METADATA_TIMEOUT_MS = 5000;
const PARTITION_COUNT_TTL_MS = 60000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
/** Records waiting for a topic's partition count, over all topics. */
const MAX_META_WAITING = 10000;
/** A link that stops reading its reports is cut past this many unsent bytes. */
const MAX_LINK_OUTPUT_BYTES = 64 * 1024 * 1024;
const STATS_IPC_INTERVAL_MS = 1000;
const DEFAULT_STATUS_INTERVAL_MS = 250;
const POLL_INTERVAL_MS = 50;
/** A fire-and-forget client's flush waits in steps this long (to notice a shutdown deadline). */
const FF_FLUSH_STEP_MS = 1000;
/**
 * Event-loop turns without a new error report after a flush before an epoch is settled: the
 * client hands reports to JavaScript at most 100 per turn, and all of them were queued
 * before the flush completed (librdkafka counts a record queued until its report was taken).
 */
const FF_QUIET_TURNS = 2;
/** Timed-out records before the main client can count as wedged (see wedgedAfterMs). */
const WEDGED_MIN_TIMEOUTS = 3;
/** A replaced client gets message.timeout.ms plus this to report its records. */
const RETIRE_GRACE_MS = 5000;

// ---------------------------------------------------------------- small helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true once `pred()` holds, false after `timeoutMs` (checked every `stepMs`). */
async function waitFor(pred: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() >= end) return false;
    await sleep(Math.min(stepMs, Math.max(1, end - Date.now())));
  }
  return true;
}

function backoff(attempt: number): number {
  const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** Disconnects a client that failed to come up, if it got that far. */
function disconnectQuietly(p: Producer): void {
  try {
    if (p.isConnected()) p.disconnect(() => undefined);
  } catch {
    // already gone
  }
}

function errCode(e: unknown): number {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : KERR.STATE;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String((e as { message?: unknown } | null)?.message ?? e);
}

/** A librdkafka callback as a promise. */
function call(fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

function copyBuf(b: Buffer | null): Buffer | null {
  return b === null ? null : Buffer.from(b);
}

function copyHeaders(h: DecodedHeader[] | null): DecodedHeader[] | null {
  if (h === null) return null;
  return h.map((o) => {
    const name = Object.keys(o)[0] as string;
    return { [name]: Buffer.from(o[name] as Buffer) };
  });
}

/** A record kept past its frame (waiting for Kafka or for metadata, or in a transaction). */
interface HeldRecord {
  readonly connNo: number;
  readonly id: number;
  readonly topic: string;
  readonly partition: number;
  readonly hashKey: boolean;
  readonly unordered: boolean;
  readonly ffOrdered: boolean;
  readonly timestamp: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: DecodedHeader[] | null;
  readonly bytes: number;
  /** Date.now() when taken: a record still waiting after message.timeout.ms fails. */
  readonly at: number;
}

/** The fields of a record that `hold` copies (a DecodedRecord, or the same fields loose). */
type RecordFields = Pick<DecodedRecord, 'id' | 'topic' | 'partition' | 'hashKey' | 'unordered' | 'ffOrdered' | 'timestamp' | 'key' | 'value' | 'headers' | 'bytes'>;

function hold(connNo: number, r: RecordFields, at: number): HeldRecord {
  return {
    connNo,
    id: r.id,
    topic: r.topic,
    partition: r.partition,
    hashKey: r.hashKey,
    unordered: r.unordered,
    ffOrdered: r.ffOrdered,
    timestamp: r.timestamp,
    key: copyBuf(r.key),
    value: copyBuf(r.value),
    headers: copyHeaders(r.headers),
    bytes: r.bytes,
    at,
  };
}

/** A FIFO with O(1) shift (records waiting for Kafka keep their order). */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

/** One HTTP worker's link. */
interface Conn {
  readonly no: number;
  readonly sock: net.Socket;
  readonly reader: FrameReader;
  readonly writer: FrameWriter;
  workerId: number;
  hello: boolean;
  received: number;
  delivered: number;
  failed: number;
  ffDelivered: number;
  ffFailed: number;
  /** Fire-and-forget records of an epoch in which records of several links failed (whose is not known). */
  ffUnknown: number;
  /** Records taken on this link without a final outcome yet. */
  pending: number;
  pendingTxn: number;
  /** The link sent EOF: finish once nothing is pending. */
  readEnded: boolean;
  finished: boolean;
  dirty: boolean;
}

/**
 * The fire-and-forget records produced into one client between two turns: settled together
 * once the client's queue is empty (docs/kafka.md, "Fire-and-forget records").
 */
interface FfEpoch {
  records: number;
  bytes: number;
  /** Error reports received for records of this epoch. */
  failed: number;
  /** Link number -> its records in this epoch. */
  readonly perConn: Map<number, number>;
}

/** A client with delivery.report.only.error for fire-and-forget records. */
interface FfClient {
  readonly name: string;
  readonly producer: Producer;
  /** Records produced into it and not settled yet (null: none). */
  epoch: FfEpoch | null;
  /** The running settle (flush, then the quiet turns), if any. */
  settling: Promise<void> | null;
}

interface TxnJob {
  readonly connNo: number;
  readonly id: number;
  readonly records: HeldRecord[];
  readonly at: number;
}

interface TxnInFlight {
  readonly seq: number;
  readonly n: number;
  got: number;
  firstErr: number;
  firstErrMsg: string;
  readonly partitions: Int32Array;
  readonly offsets: Float64Array;
}

// ---------------------------------------------------------------- the service

export class ProducerService {
  private readonly cfg: KafkaConfig;
  private readonly conf: LibrdkafkaConfig;
  private readonly log: Logger;
  private readonly server: net.Server;
  private readonly conns = new Map<number, Conn>();
  private nextConnNo = 1;
  private readonly rec = new DecodedRecord();
  private readonly status = new ProducerStatus();
  private readonly hashKey = keyHasher().hashKey;
  private readonly pollMode: PollMode;
  private readonly statusIntervalMs: number;

  private producer: Producer | null = null;
  private kafkaConnected = false;
  private brokerUp = false;
  /** The main client's last delivered record (or the broker's return), for the wedge check. */
  private mainOkAt = 0;
  /** Its records that timed out since then. */
  private mainTimeouts = 0;
  private replacingMain = false;
  /** Replacements since the last delivery (the wedge check's back-off). */
  private wedgedReplacements = 0;
  private clientReplacements = 0;
  /** Replaced main clients still reporting their records. */
  private readonly retired = new Set<Producer>();
  private probing = false;
  private lastStats: LibrdkafkaStatsSummary | null = null;
  /** The latest statistics of each client (merged into lastStats). */
  private readonly statsBy = new Map<string, LibrdkafkaStatsSummary>();

  /** The fire-and-forget clients (none until both connected) and the one taking records. */
  private ffClients: FfClient[] = [];
  /** The native fire-and-forget client (kafka.nativeFireAndForget), once connected. */
  private ffNative: KafkaFf | null = null;
  /** Fire-and-forget records (id 0) in the main client: ordered ones wait for none (ffAccept). */
  private mainFfInFlight = 0;
  /** The native client takes RF_FF_ORDERED records (for good, once the main client held none). */
  private orderedNative = false;
  /** Frames encoded again for the native client (produceOrderedNative). */
  private readonly reencoder = new FrameWriter(4096);
  /** produceFrames()'s counts: records taken, their bytes. */
  private readonly ffRunOut = new Float64Array(2);
  private ffCurrent: FfClient | null = null;
  private ffStarting = false;
  /** A settle gives up waiting past this (shutdown's flush deadline). */
  private ffDeadline = Number.POSITIVE_INFINITY;

  // Counters (docs/kafka.md, "Loss accounting").
  private received = 0;
  private delivered = 0;
  private failed = 0;
  private queueFull = 0;
  private queued = 0;
  private queuedBytes = 0;
  private ratePerSec = 0;
  private rateDelivered = 0;
  private rateAt = Date.now();
  private txnCommitted = 0;
  private txnAborted = 0;
  /** Records settled through fire-and-forget epochs (logged at shutdown). */
  private ffSettled = 0;

  /** Records taken before the Kafka client connected (FIFO; failed after message.timeout.ms). */
  private readonly waiting = new Fifo<HeldRecord>();
  private waitingBytes = 0;
  /** Partition counts for consistent hashing, and records waiting for one. */
  private readonly partitionCounts = new Map<string, { count: number; at: number }>();
  private readonly metaWaiting = new Map<string, HeldRecord[]>();
  private metaWaitingCount = 0;
  private readonly metaInFlight = new Set<string>();

  // Transactions.
  private txnProducer: Producer | null = null;
  private txnReady = false;
  private txnStarting = false;
  private readonly txnQueue = new Fifo<TxnJob>();
  private txnBusy = false;
  private txnSeq = 0;
  private txnCurrent: TxnInFlight | null = null;

  private readonly dirty: Conn[] = [];
  private flushScheduled = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private readingPaused = false;
  private shutdownPromise: Promise<ProducerShutdownReport> | null = null;
  private readonly errorLogAt = new Map<number, number>();

  constructor(
    cfg: KafkaConfig,
    private readonly socketPath: string,
    log: Logger,
    opts: { pollMode?: PollMode; statusIntervalMs?: number } = {},
  ) {
    this.cfg = cfg;
    this.conf = librdkafkaConfig(cfg);
    this.log = log;
    this.pollMode = opts.pollMode ?? 'background';
    this.statusIntervalMs = opts.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    this.server.on('error', (e) => this.log.error('producer socket server error', { err: e }));
  }

  /** Checks the librdkafka properties (the client refuses unknown or bad ones) without connecting. */
  validateClientConfig(): void {
    new Producer({ ...this.conf, dr_cb: true } as ProducerGlobalConfig);
    new Producer({ ...this.ffConf(true), dr_cb: true } as ProducerGlobalConfig);
    if (this.cfg.transactions) new Producer(this.txnConf() as ProducerGlobalConfig);
  }

  /** Listens on the socket (replacing a stale socket file); Kafka is connected afterwards. */
  async listen(): Promise<void> {
    await removeStaleSocket(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      this.server.once('error', onErr);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', onErr);
        resolve();
      });
    });
    try {
      fs.chmodSync(this.socketPath, 0o600);
    } catch {
      // The directory's permissions still apply.
    }
    this.statusTimer = setInterval(() => this.tick(), this.statusIntervalMs);
    this.statsTimer = setInterval(() => this.sendStats(), STATS_IPC_INTERVAL_MS);
    this.statsTimer.unref();
    this.log.info('producer listening', { socket: this.socketPath, librdkafka: redactedLibrdkafkaConfig(this.conf), pollMode: this.pollMode });
  }

  /** Connects to Kafka in the background (retrying with back-off until shutdown). */
  startKafka(): void {
    void this.connectLoop();
    if (this.cfg.transactions) void this.startTxnProducer();
  }

  // ------------------------------------------------------------ Kafka client

  private newProducer(conf: LibrdkafkaConfig, onDelivery: (err: LibrdKafkaError | null, r: DeliveryReport) => void, name: string): Producer {
    const p = new Producer({ ...conf, dr_cb: true } as ProducerGlobalConfig);
    p.on('delivery-report', onDelivery);
    p.on('event.error', (e) => this.onClientError(e, name));
    p.on('event.stats', (ev: unknown) => this.onStats(ev, name));
    p.on('event.log', (ev: unknown) => this.onClientLog(ev, name));
    return p;
  }

  /**
   * librdkafka's own log lines (syslog severities; debug ones only with its `debug`
   * property, set through `kafka.extra`) into the structured log, which would otherwise
   * never show them: 0-3 error, 4 warn, 5-6 info, 7 debug.
   */
  private onClientLog(ev: unknown, client: string): void {
    const e = ev as { severity?: unknown; fac?: unknown; message?: unknown } | null;
    const sev = typeof e?.severity === 'number' ? e.severity : 7;
    const level = sev <= 3 ? 'error' : sev === 4 ? 'warn' : sev <= 6 ? 'info' : 'debug';
    if (!this.log.enabled(level)) return;
    this.log[level]('librdkafka', { client, fac: String(e?.fac ?? ''), reason: String(e?.message ?? '') });
  }

  /**
   * The fire-and-forget clients' properties: the main client's, with their own linger, and
   * reports for failed records only (the JavaScript ones) or for all (the native one).
   */
  private ffConf(onlyErrors: boolean): LibrdkafkaConfig {
    return { ...this.conf, 'linger.ms': this.cfg.fireAndForgetLingerMs, 'delivery.report.only.error': onlyErrors };
  }

  private async connectClient(p: Producer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      p.connect({ allTopics: false, timeout: CONNECT_TIMEOUT_MS }, (err) => (err ? reject(err) : resolve()));
    });
    if (this.pollMode === 'background') p.setPollInBackground(true);
    else p.setPollInterval(POLL_INTERVAL_MS);
  }

  private async connectLoop(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      const p = this.newProducer(this.conf, this.onDelivery, 'producer');
      try {
        await this.connectClient(p);
      } catch (e) {
        await this.retryPause('cannot reach Kafka; retrying', attempt, e, Math.min(2000, backoff(attempt)), { brokers: this.cfg.brokers });
        continue;
      }
      if (this.stopping && this.queued === 0) {
        p.disconnect(() => undefined);
        return;
      }
      this.producer = p;
      this.kafkaConnected = true;
      this.log.info('connected to Kafka', { brokers: this.cfg.brokers, attempts: attempt + 1 });
      this.setBrokerUp(true);
      this.drainWaiting();
      if (!this.cfg.nativeFireAndForget || !this.startFfNative()) void this.startFf();
      return;
    }
  }

  /**
   * Connects the two fire-and-forget clients (retrying with back-off); until both are up,
   * fire-and-forget records go to the main client with a report each, as sync ones do.
   */
  private async startFf(): Promise<void> {
    if (this.ffStarting || this.ffClients.length > 0) return;
    this.ffStarting = true;
    try {
      for (let attempt = 0; !this.stopping; attempt++) {
        const made: FfClient[] = [];
        try {
          for (const name of ['ff-producer-a', 'ff-producer-b']) {
            const c: FfClient = { name, producer: null as unknown as Producer, epoch: null, settling: null };
            (c as { producer: Producer }).producer = this.newProducer(this.ffConf(true), (err, r) => this.onFfDelivery(c, err, r), name);
            made.push(c);
            await this.connectClient(c.producer);
          }
        } catch (e) {
          for (const c of made) disconnectQuietly(c.producer);
          await this.retryPause('fire-and-forget clients not connected; retrying', attempt, e, backoff(attempt));
          continue;
        }
        if (this.stopping) {
          for (const c of made) c.producer.disconnect(() => undefined);
          return;
        }
        this.ffClients = made;
        this.ffCurrent = made[0] as FfClient;
        this.log.debug('fire-and-forget clients connected');
        return;
      }
    } finally {
      this.ffStarting = false;
    }
  }

  /**
   * The native fire-and-forget client, on the same librdkafka and properties as the others
   * (native/napi/src/librdkafka_ff.rs). False when it cannot be made (logged): the JavaScript
   * fire-and-forget clients take its place.
   */
  private startFfNative(): boolean {
    const props: string[] = [];
    for (const [k, v] of Object.entries(this.ffConf(false))) props.push(k, String(v));
    try {
      this.ffNative = new (loadNative().KafkaFf)(props);
      for (const [topic, c] of this.partitionCounts) this.ffNative.setPartitionCount(topic, c.count);
    } catch (e) {
      this.log.error('native fire-and-forget client not available; using the JavaScript ones', { err: e });
      return false;
    }
    this.log.debug('native fire-and-forget client started');
    return true;
  }

  /**
   * Which fire-and-forget records the native client may take now (KAFKA_FF_ACCEPT_*):
   * - unordered ones (events) unless records wait for the main client (they keep the link's
   *   order behind those);
   * - ordered ones (async-only routes) once it took over from the main client for good:
   *   from the first moment the main client holds none of this kind (nor the waiting
   *   list), so that no later record can overtake an earlier one.
   */
  private ffAccept(): number {
    const idle = this.waiting.length === 0;
    if (!this.orderedNative && idle && this.mainFfInFlight === 0) this.orderedNative = true;
    return (idle ? KAFKA_FF_ACCEPT_UNORDERED : 0) | (this.orderedNative ? KAFKA_FF_ACCEPT_ORDERED : 0);
  }

  /** A PRODUCE frame the native client took (true), or one for the JavaScript path (false). */
  private takeFfNative(ff: KafkaFf, conn: Conn, buf: Buffer, s: number, e: number): boolean {
    if (!noReportWanted(buf, s)) return false;
    const accept = this.ffAccept();
    if (accept === 0) return false;
    const r = ff.produce(buf, s, e, conn.no, accept);
    if (r === KAFKA_FF_NOT_HANDLED) return false;
    if (r !== KAFKA_FF_REFUSED) {
      this.taken(conn, r);
      return true;
    }
    // Refused: counted as taken with no bytes (the client did not say how many), then failed.
    this.taken(conn, 0);
    this.ffNativeRefused(ff, conn.no, -1, 0);
    return true;
  }

  /**
   * A read's run of PRODUCE frames from `s`: the native client takes the fire-and-forget
   * records among them in one call (events arrive ~80 a read); returns where it stopped, and
   * the frame there goes through onFrame.
   */
  private takeFfNativeRun(conn: Conn, buf: Buffer, s: number, e: number): number {
    const ff = this.ffNative;
    if (ff === null || !conn.hello || !noReportWanted(buf, s + FRAME_HEADER_BYTES)) return s;
    const accept = this.ffAccept();
    if (accept === 0) return s;
    const out = this.ffRunOut;
    const to = ff.produceFrames(buf, s, e, conn.no, accept, MAX_FRAME_BYTES, out);
    const records = out[0] as number;
    if (records > 0) this.taken(conn, out[1] as number, records);
    return to;
  }

  /**
   * Counts what the native client reported since the last call (each tick, and while
   * shutting down), and hands its errors, log lines and statistics on.
   */
  private settleFfNative(ff: KafkaFf): void {
    const o = ff.takeOutcomes();
    for (let i = 0; i + 4 < o.length; i += 5) {
      const ok = o[i + 1] as number;
      const failed = o[i + 2] as number;
      this.ffSettledTotal(ok + failed, failed, o[i + 3] as number);
      if (failed > 0) this.log.debug('fire-and-forget records failed', { failed, code: o[i + 4], reason: ff.errorText(o[i + 4] as number) });
      const conn = this.conns.get(o[i] as number);
      // A link that is gone: its worker counts the records as unknown.
      if (conn !== undefined) this.ffSettledOn(conn, ok, failed, 0);
    }
    const lost = ff.takeDroppedEvents();
    if (lost > 0) this.log.warn('librdkafka errors and log lines dropped (more than 1000 between two ticks)', { client: 'ff-native', dropped: lost });
    for (const ev of ff.takeEvents()) {
      if (ev.kind === 'error') this.onClientError({ code: ev.code, message: ev.message, isFatal: false } as LibrdKafkaError, 'ff-native');
      else this.onClientLog({ severity: ev.code, fac: ev.fac, message: ev.message }, 'ff-native');
    }
    const stats = ff.takeStats();
    if (stats !== null) this.onStats({ message: stats }, 'ff-native');
  }

  /** Logs a failed attempt to bring a client up (a warning the first time) and waits `inMs`. */
  private async retryPause(msg: string, attempt: number, e: unknown, inMs: number, extra: Record<string, unknown> = {}): Promise<void> {
    (attempt === 0 ? this.log.warn : this.log.debug).call(this.log, msg, { ...extra, attempt: attempt + 1, inMs, code: errCode(e), reason: errText(e) });
    await sleep(inMs);
  }

  private setBrokerUp(up: boolean): void {
    if (this.brokerUp === up) return;
    this.brokerUp = up;
    if (up) this.mainOkAt = Date.now();
    this.log[up ? 'info' : 'warn'](up ? 'Kafka broker reachable' : 'Kafka broker unreachable', { brokers: this.cfg.brokers });
    this.broadcastStatus();
    if (!up) void this.probe();
  }

  /** While the broker is down: a metadata request every second; the first answer means up. */
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      while (!this.brokerUp && !this.stopping) {
        const p = this.producer;
        if (p === null) break;
        const ok = await new Promise<boolean>((resolve) => {
          try {
            p.getMetadata({ allTopics: false, timeout: 2000 }, (err: LibrdKafkaError | null) => resolve(!err));
          } catch {
            resolve(false);
          }
        });
        if (ok) this.setBrokerUp(true);
        else await sleep(1000);
      }
    } finally {
      this.probing = false;
    }
  }

  private onClientError(e: LibrdKafkaError, name: string): void {
    // The client's `event.error` carries librdkafka's message but code -1, so the
    // all-brokers-down condition is recognised by its text too (test/integration/kafka-resilience).
    const allDown = e.code === KERR.ALL_BROKERS_DOWN || /all broker connections are down/i.test(String(e.message));
    if (allDown && this.kafkaConnected) this.setBrokerUp(false);
    if (e.isFatal === true && name === 'producer' && this.kafkaConnected) void this.replaceMain(`fatal error: ${e.message}`);
    // One line per code per 10 s: a dead broker makes librdkafka repeat itself.
    const now = Date.now();
    const last = this.errorLogAt.get(e.code) ?? 0;
    if (now - last < 10000) return;
    this.errorLogAt.set(e.code, now);
    this.log.warn('Kafka client error', { client: name, code: e.code, reason: e.message, fatal: e.isFatal === true });
  }

  private onStats(ev: unknown, client: string): void {
    const text = (ev as { message?: unknown } | null)?.message;
    if (typeof text !== 'string') return;
    let sum: LibrdkafkaStatsSummary;
    try {
      sum = summarizeStats(JSON.parse(text) as RdStats);
    } catch (e) {
      this.log.debug('unreadable librdkafka statistics', { err: e });
      return;
    }
    this.statsBy.set(client, sum);
    this.lastStats = mergeStats(this.statsBy);
    // The main client speaks for the broker (it exists first and carries the sync records).
    if (client === 'producer' && this.kafkaConnected && sum.brokers > 0) this.setBrokerUp(sum.brokersUp > 0);
  }

  // ------------------------------------------------------------ links

  private onConnection(sock: net.Socket): void {
    if (this.stopping) {
      sock.destroy();
      return;
    }
    let no = this.nextConnNo;
    while (this.conns.has(no)) no = no >= 1 << 20 ? 1 : no + 1;
    this.nextConnNo = no >= 1 << 20 ? 1 : no + 1;
    const conn: Conn = {
      no,
      sock,
      reader: new FrameReader(
        (type, buf, s, e) => this.onFrame(conn, type, buf, s, e),
        MAX_FRAME_BYTES,
        (buf, s, e) => this.takeFfNativeRun(conn, buf, s, e),
      ),
      writer: new FrameWriter(16 * 1024),
      workerId: -1,
      hello: false,
      received: 0,
      delivered: 0,
      failed: 0,
      ffDelivered: 0,
      ffFailed: 0,
      ffUnknown: 0,
      pending: 0,
      pendingTxn: 0,
      readEnded: false,
      finished: false,
      dirty: false,
    };
    this.conns.set(no, conn);
    sock.on('data', (chunk: Buffer) => {
      try {
        conn.reader.push(chunk);
      } catch (e) {
        this.log.warn('bad frame from a link; closing it', { worker: conn.workerId, err: e });
        sock.destroy();
      }
    });
    sock.on('end', () => {
      conn.readEnded = true;
      this.maybeFinish(conn);
    });
    sock.on('error', (e) => this.log.debug('link socket error', { worker: conn.workerId, err: e }));
    sock.on('close', () => {
      this.conns.delete(no);
      if (conn.pending > 0 || conn.pendingTxn > 0) {
        this.log.warn('link closed with records in flight (their outcome is unknown to the worker)', {
          worker: conn.workerId,
          pending: conn.pending + conn.pendingTxn,
        });
      }
    });
    if (this.readingPaused) sock.pause();
    this.sendStatus(conn);
  }

  private onFrame(conn: Conn, type: number, buf: Buffer, s: number, e: number): void {
    if (!conn.hello && type !== FRAME.HELLO) throw new FrameError(`frame type ${type} before HELLO`);
    switch (type) {
      case FRAME.HELLO: {
        const h = decodeHello(buf, s, e);
        if (h.version !== PROTOCOL_VERSION) throw new FrameError(`protocol version ${h.version}, expected ${PROTOCOL_VERSION}`);
        conn.hello = true;
        conn.workerId = h.workerId;
        this.log.debug('link connected', { worker: h.workerId });
        return;
      }
      case FRAME.PRODUCE:
        if (this.ffNative !== null && this.takeFfNative(this.ffNative, conn, buf, s, e)) return;
        decodeProduce(buf, s, e, this.rec);
        this.take(conn, this.rec);
        return;
      case FRAME.PRODUCE_TXN:
        this.takeTxn(conn, buf, s, e);
        return;
      default:
        throw new FrameError(`unexpected frame type ${type}`);
    }
  }

  private markDirty(conn: Conn): void {
    if (conn.dirty) return;
    conn.dirty = true;
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLinks);
    }
  }

  private readonly flushLinks = (): void => {
    this.flushScheduled = false;
    for (let i = 0; i < this.dirty.length; i++) this.flushLink(this.dirty[i] as Conn);
    this.dirty.length = 0;
  };

  private flushLink(conn: Conn): void {
    conn.dirty = false;
    if (conn.writer.len === 0) return;
    if (conn.sock.destroyed || !conn.sock.writable) {
      conn.writer.truncate(0);
      return;
    }
    conn.sock.write(conn.writer.takeCopy());
    if (conn.sock.writableLength > MAX_LINK_OUTPUT_BYTES) {
      this.log.error('a link is not reading its delivery reports; closing it', { worker: conn.workerId, unsent: conn.sock.writableLength });
      conn.sock.destroy();
    }
  }

  private fillStatus(conn: Conn | null, final: boolean): ProducerStatus {
    const s = this.status;
    s.brokerUp = this.brokerUp;
    s.kafkaConnected = this.kafkaConnected;
    s.txnReady = this.txnReady;
    s.shuttingDown = this.stopping;
    s.final = final;
    s.queueMessages = this.queued;
    s.queueBytes = Math.max(0, this.queuedBytes);
    s.queueMaxMessages = this.cfg.queueMaxMessages;
    s.queueMaxBytes = this.cfg.queueMaxKBytes * 1024;
    s.delivered = this.delivered;
    s.failed = this.failed;
    s.queueFull = this.queueFull;
    s.deliveredPerSec = this.ratePerSec;
    s.connReceived = conn?.received ?? 0;
    s.connFfDelivered = conn?.ffDelivered ?? 0;
    s.connFfFailed = conn?.ffFailed ?? 0;
    s.connFfUnknown = conn?.ffUnknown ?? 0;
    return s;
  }

  private sendStatus(conn: Conn, final = false): void {
    if (conn.finished) return;
    conn.writer.status(this.fillStatus(conn, final));
    this.markDirty(conn);
  }

  private broadcastStatus(): void {
    for (const c of this.conns.values()) this.sendStatus(c);
  }

  /** The link sent EOF and nothing of it is pending: final STATUS, then close our side. */
  private maybeFinish(conn: Conn): void {
    if (conn.finished || !conn.readEnded || conn.pending > 0 || conn.pendingTxn > 0) return;
    this.finish(conn);
  }

  private finish(conn: Conn): void {
    if (conn.finished) return;
    this.sendStatus(conn, true);
    conn.finished = true;
    this.flushLink(conn);
    conn.sock.end();
  }

  /** STATUS to every link, the delivery rate, and expiry of records waiting too long. */
  private tick(): void {
    const now = Date.now();
    const dt = (now - this.rateAt) / 1000;
    if (dt > 0) {
      const inst = (this.delivered - this.rateDelivered) / dt;
      this.ratePerSec = this.ratePerSec === 0 ? inst : this.ratePerSec * 0.7 + inst * 0.3;
      this.rateDelivered = this.delivered;
      this.rateAt = now;
    }
    this.expireWaiting(now);
    this.checkWedged(now);
    if (this.ffNative !== null) {
      this.settleFfNative(this.ffNative);
      // The native client places keyed records with the counts it was given and never asks:
      // refresh them here as the JavaScript path does when it uses one (a topic may grow).
      for (const [topic, c] of this.partitionCounts) if (now - c.at > PARTITION_COUNT_TTL_MS) this.fetchPartitionCount(topic);
    }
    this.rotateFf();
    this.broadcastStatus();
  }

  private sendStats(): void {
    if (typeof process.send !== 'function' || !process.connected) return;
    send({ type: 'stats', stats: this.stats() });
  }

  stats(): ProducerStats {
    return {
      at: Date.now(),
      pid: process.pid,
      kafkaConnected: this.kafkaConnected,
      brokerUp: this.brokerUp,
      txnReady: this.txnReady,
      connections: this.conns.size,
      received: this.received,
      delivered: this.delivered,
      failed: this.failed,
      queueFull: this.queueFull,
      queueMessages: this.queued,
      queueBytes: Math.max(0, this.queuedBytes),
      deliveredPerSec: Math.round(this.ratePerSec),
      txnCommitted: this.txnCommitted,
      txnAborted: this.txnAborted,
      clientReplacements: this.clientReplacements,
      librdkafka: this.lastStats,
    };
  }

  // ------------------------------------------------------------ records

  /** A record read from a link: counted as taken (its outcome will be counted once). */
  private taken(conn: Conn, bytes: number, records = 1): void {
    conn.received += records;
    this.received += records;
    conn.pending += records;
    this.queued += records;
    this.queuedBytes += bytes;
  }

  /** A PRODUCE record: counted as taken, then produced, held, or refused at once. */
  private take(conn: Conn, r: DecodedRecord): void {
    this.taken(conn, r.bytes);
    if (this.producer === null || this.waiting.length > 0) {
      const cap = this.cfg.queueMaxMessages;
      if (this.waiting.length >= cap || this.waitingBytes + r.bytes > this.cfg.queueMaxKBytes * 1024) {
        this.queueFull++;
        this.outcome(conn.no, r.id, KERR.QUEUE_FULL, -1, -1, 'Local: Queue full (waiting for Kafka)', r.bytes);
        return;
      }
      this.waiting.push(hold(conn.no, r, Date.now()));
      this.waitingBytes += r.bytes;
      return;
    }
    this.dispatch(conn.no, r.id, r.topic, r.partition, r.hashKey, r.unordered, r.ffOrdered, r.key, r.value, r.timestamp, r.headers, r.bytes, null);
  }

  /** Chooses the partition (hash partitioning may need metadata first) and produces. */
  private dispatch(
    connNo: number,
    id: number,
    topic: string,
    partition: number,
    hashKey: boolean,
    unordered: boolean,
    ffOrdered: boolean,
    key: Buffer | null,
    value: Buffer | null,
    timestamp: number,
    headers: DecodedHeader[] | null,
    bytes: number,
    held: HeldRecord | null,
  ): void {
    let part = partition;
    if (part < 0 && hashKey && key !== null) {
      const known = this.partitionCounts.get(topic);
      const waiting = this.metaWaiting.get(topic);
      if (known === undefined || waiting !== undefined) {
        // Unknown count (or records of this topic already waiting): keep the topic's order.
        if (this.metaWaitingCount >= MAX_META_WAITING) {
          this.queueFull++;
          this.outcome(connNo, id, KERR.QUEUE_FULL, -1, -1, 'Local: Queue full (waiting for topic metadata)', bytes);
          return;
        }
        const h = held ?? hold(connNo, { id, topic, partition, hashKey, unordered, ffOrdered, key, value, timestamp, headers, bytes }, Date.now());
        if (waiting === undefined) this.metaWaiting.set(topic, [h]);
        else waiting.push(h);
        this.metaWaitingCount++;
        this.fetchPartitionCount(topic);
        return;
      }
      if (Date.now() - known.at > PARTITION_COUNT_TTL_MS) this.fetchPartitionCount(topic);
      part = jumpConsistentHash(this.hashKey(key), known.count);
    }
    if (id === 0 && ffOrdered && this.orderedNative && this.ffNative !== null) {
      this.produceOrderedNative(this.ffNative, connNo, topic, part, key, value, timestamp, headers, bytes);
      return;
    }
    this.produceNow(connNo, id, topic, part, unordered, key, value, timestamp, headers, bytes);
  }

  /**
   * An ordered fire-and-forget record that reached JavaScript after the native client took
   * over those (it waited for Kafka or for its topic's partition count): it goes to the
   * native client too, or it could overtake the records of its kind already there. Encoded
   * again as a frame (rare: a topic's first records), with its partition chosen.
   */
  private produceOrderedNative(
    ff: KafkaFf,
    connNo: number,
    topic: string,
    partition: number,
    key: Buffer | null,
    value: Buffer | null,
    timestamp: number,
    headers: DecodedHeader[] | null,
    bytes: number,
  ): void {
    const hs: KafkaHeader[] = [];
    for (const h of headers ?? []) for (const [n, v] of Object.entries(h)) hs.push([n, v]);
    const w = this.reencoder;
    w.truncate(0);
    const size = w.produce(0, { topic, partition, key, value, timestamp, headers: hs, ffOrdered: true });
    const frame = w.takeCopy();
    const r = ff.produce(frame, FRAME_HEADER_BYTES, size, connNo, KAFKA_FF_ACCEPT_ORDERED);
    if (r >= 0) return; // counted when taken; settled with the native client's reports
    if (r === KAFKA_FF_REFUSED) {
      this.ffNativeRefused(ff, connNo, partition, bytes);
      return;
    }
    // Not a record the native client takes (cannot happen for one encoded here): the main client.
    this.produceNow(connNo, 0, topic, partition, false, key, value, timestamp, headers, bytes);
  }

  private produceNow(
    connNo: number,
    id: number,
    topic: string,
    partition: number,
    unordered: boolean,
    key: Buffer | null,
    value: Buffer | null,
    timestamp: number,
    headers: DecodedHeader[] | null,
    bytes: number,
  ): void {
    const ff = id === 0 && unordered ? this.ffCurrent : null;
    if (ff !== null) {
      this.produceFf(ff, connNo, topic, partition, key, value, timestamp, headers, bytes);
      return;
    }
    const p = this.producer as Producer;
    try {
      p.produce(topic, partition, value, key, timestamp, connNo * TWO_32 + id, headers ?? undefined);
    } catch (e) {
      this.produceRefused(connNo, id, partition, bytes, e);
      return;
    }
    if (id === 0) this.mainFfInFlight++;
  }

  /** The native client refused a record (lastError() says why): its outcome, now. */
  private ffNativeRefused(ff: KafkaFf, connNo: number, partition: number, bytes: number): void {
    const code = ff.lastError();
    this.produceRefused(connNo, 0, partition, bytes, { code, message: ff.errorText(code) });
  }

  /** A client's produce() threw (queue full, unknown topic, ...): the record's outcome, now. */
  private produceRefused(connNo: number, id: number, partition: number, bytes: number, e: unknown): void {
    const code = errCode(e);
    if (code === KERR.QUEUE_FULL) this.queueFull++;
    this.outcome(connNo, id, code, partition, -1, errText(e), bytes);
  }

  private readonly onDelivery = (err: LibrdKafkaError | null, r: DeliveryReport): void => {
    const op = r.opaque as number;
    const connNo = Math.floor(op / TWO_32);
    const id = op - connNo * TWO_32;
    const bytes = r.size + (r.key == null ? 0 : r.key.length);
    if (id === 0) this.mainFfInFlight--;
    if (err) {
      if (err.code === KERR.UNKNOWN_PARTITION) this.forgetPartitionCount(r.topic);
      else if (err.code === KERR.MSG_TIMED_OUT) this.mainTimeouts++;
      this.outcome(connNo, id, err.code, r.partition, -1, err.message, bytes);
    } else {
      if (!this.brokerUp) this.setBrokerUp(true);
      this.mainOkAt = Date.now();
      this.mainTimeouts = 0;
      this.wedgedReplacements = 0;
      this.outcome(connNo, id, 0, r.partition, r.offset, '', bytes);
    }
  };

  // ------------------------------------------------------------ a wedged main client

  /**
   * Each tick: a main client that delivered nothing for the wedge window while the broker
   * answered (its records time out) is replaced. The broker's return restarts the window.
   */
  private checkWedged(now: number): void {
    if (this.replacingMain || this.stopping || !this.kafkaConnected || !this.brokerUp || this.producer === null) return;
    if (this.mainTimeouts < WEDGED_MIN_TIMEOUTS) return;
    if (now - this.mainOkAt < wedgedAfterMs(this.cfg.messageTimeoutMs, this.wedgedReplacements)) return;
    this.wedgedReplacements++;
    void this.replaceMain(`nothing delivered for ${now - this.mainOkAt} ms while the broker answers; ${this.mainTimeouts} records timed out`);
  }

  /**
   * A new main client takes over (connected first; if it cannot connect the old one stays);
   * the old one reports what it holds (delivered, or failed by message.timeout.ms) and goes.
   */
  private async replaceMain(reason: string): Promise<void> {
    if (this.replacingMain || this.stopping) return;
    this.replacingMain = true;
    try {
      this.log.warn('replacing the Kafka client', { reason, replacements: this.clientReplacements });
      const p = this.newProducer(this.conf, this.onDelivery, 'producer');
      try {
        await this.connectClient(p);
      } catch (e) {
        disconnectQuietly(p);
        this.log.warn('the replacement Kafka client did not connect; the old one stays', { code: errCode(e), reason: errText(e) });
        return;
      }
      if (this.stopping) {
        disconnectQuietly(p);
        return;
      }
      const old = this.producer;
      this.producer = p;
      this.clientReplacements++;
      this.mainOkAt = Date.now();
      this.mainTimeouts = 0;
      if (old !== null) void this.retire(old);
    } finally {
      this.replacingMain = false;
    }
  }

  /** Flushes a replaced client until its records have their reports, then disconnects it. */
  private async retire(p: Producer): Promise<void> {
    this.retired.add(p);
    await new Promise<void>((resolve) => {
      try {
        p.flush(this.cfg.messageTimeoutMs + RETIRE_GRACE_MS, () => resolve());
      } catch {
        resolve();
      }
    });
    // The last reports reach JavaScript a few turns after the flush.
    await sleep(100);
    this.retired.delete(p);
    disconnectQuietly(p);
  }

  // ------------------------------------------------------------ fire-and-forget epochs

  /**
   * A fire-and-forget record into the current epoch. No opaque: with only error reports,
   * the client would never release the handle it keeps for a delivered record's opaque.
   */
  private produceFf(
    c: FfClient,
    connNo: number,
    topic: string,
    partition: number,
    key: Buffer | null,
    value: Buffer | null,
    timestamp: number,
    headers: DecodedHeader[] | null,
    bytes: number,
  ): void {
    try {
      c.producer.produce(topic, partition, value, key, timestamp, undefined, headers ?? undefined);
    } catch (e) {
      this.produceRefused(connNo, 0, partition, bytes, e);
      return;
    }
    const ep = (c.epoch ??= { records: 0, bytes: 0, failed: 0, perConn: new Map() });
    ep.records++;
    ep.bytes += bytes;
    ep.perConn.set(connNo, (ep.perConn.get(connNo) ?? 0) + 1);
  }

  /** Only failed records are reported here (delivery.report.only.error). */
  private onFfDelivery(c: FfClient, err: LibrdKafkaError | null, r: DeliveryReport): void {
    if (!err) return;
    if (err.code === KERR.UNKNOWN_PARTITION) this.forgetPartitionCount(r.topic);
    const ep = c.epoch;
    if (ep === null) {
      // Cannot happen: an epoch is settled only after its queue emptied and its reports came.
      this.log.error('error report for a settled fire-and-forget epoch', { client: c.name, code: err.code });
      return;
    }
    ep.failed++;
  }

  /** Each tick: the idle client takes over and the current epoch is settled. */
  private rotateFf(): void {
    const cur = this.ffCurrent;
    if (cur === null || cur.epoch === null) return;
    const next = this.ffClients.find((c) => c !== cur);
    // The other client still settles its epoch: the current one grows until the next tick.
    if (next === undefined || next.epoch !== null) return;
    this.ffCurrent = next;
    void this.settleFf(cur);
  }

  private settleFf(c: FfClient): Promise<void> {
    c.settling ??= this.doSettleFf(c).finally(() => {
      c.settling = null;
    });
    return c.settling;
  }

  /**
   * Flushes `c` until its queue is empty (librdkafka fails what it cannot deliver within
   * message.timeout.ms, so this ends), lets the error reports reach JavaScript, then counts
   * the epoch. Past `ffDeadline` (shutdown) it gives up: the records stay undelivered.
   */
  private async doSettleFf(c: FfClient): Promise<void> {
    for (;;) {
      const step = Math.max(1, Math.min(FF_FLUSH_STEP_MS, this.ffDeadline - Date.now()));
      const err = await new Promise<LibrdKafkaError | null>((resolve) => {
        try {
          c.producer.flush(step, (e) => resolve(e ?? null));
        } catch (e) {
          resolve(e as LibrdKafkaError);
        }
      });
      if (err === null) break;
      if (Date.now() >= this.ffDeadline || !c.producer.isConnected()) return;
    }
    let seen = -1;
    for (let quiet = 0; quiet < FF_QUIET_TURNS; ) {
      const failed = c.epoch?.failed ?? 0;
      quiet = failed === seen ? quiet + 1 : 0;
      seen = failed;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const ep = c.epoch;
    c.epoch = null;
    if (ep !== null) this.settleEpoch(ep);
  }

  /**
   * Counts an epoch: producer-wide exactly; per link exactly when none, all, or only one
   * link's records failed, else the link's records of the epoch are `unknown` to it.
   */
  private settleEpoch(ep: FfEpoch): void {
    this.ffSettledTotal(ep.records, ep.failed, ep.bytes);
    for (const [connNo, n] of ep.perConn) {
      const conn = this.conns.get(connNo);
      if (conn === undefined) continue; // the link is gone: its worker counts the records as unknown
      if (ep.failed === 0) {
        this.ffSettledOn(conn, n, 0, 0);
      } else if (ep.failed === ep.records || ep.perConn.size === 1) {
        const f = Math.min(n, ep.failed);
        this.ffSettledOn(conn, n - f, f, 0);
      } else {
        this.ffSettledOn(conn, 0, 0, n);
      }
    }
    if (ep.failed > 0) this.log.debug('fire-and-forget epoch settled with failures', { records: ep.records, failed: ep.failed, links: ep.perConn.size });
  }

  /**
   * Fire-and-forget records settled in bulk (a JavaScript client's epoch, or the native
   * client's reports): the producer-wide counts.
   */
  private ffSettledTotal(records: number, failed: number, bytes: number): void {
    const ok = records - failed;
    this.ffSettled += records;
    this.queued -= records;
    this.queuedBytes -= bytes;
    this.delivered += ok;
    this.failed += failed;
    if (ok > 0 && !this.brokerUp) this.setBrokerUp(true);
  }

  /** A link's share of settled fire-and-forget records, then its STATUS (or its end). */
  private ffSettledOn(conn: Conn, ok: number, failed: number, unknown: number): void {
    conn.pending -= ok + failed + unknown;
    conn.delivered += ok;
    conn.ffDelivered += ok;
    conn.failed += failed;
    conn.ffFailed += failed;
    conn.ffUnknown += unknown;
    if (conn.readEnded) this.maybeFinish(conn);
    else this.sendStatus(conn);
  }

  /** The one place a taken record's outcome is counted and (for id != 0) reported. */
  private outcome(connNo: number, id: number, err: number, partition: number, offset: number, message: string, bytes: number): void {
    this.queued--;
    this.queuedBytes -= bytes;
    if (err === 0) this.delivered++;
    else this.failed++;
    const conn = this.conns.get(connNo);
    if (conn === undefined) return; // the link is gone: its worker counts the record as unknown
    conn.pending--;
    if (err === 0) conn.delivered++;
    else conn.failed++;
    if (id === 0) {
      if (err === 0) conn.ffDelivered++;
      else conn.ffFailed++;
    } else if (!conn.finished) {
      conn.writer.report(id, err, partition, offset, message);
      this.markDirty(conn);
    }
    if (conn.readEnded) this.maybeFinish(conn);
  }

  private drainWaiting(): void {
    while (this.waiting.length > 0) {
      const h = this.waiting.shift() as HeldRecord;
      this.waitingBytes -= h.bytes;
      this.dispatch(h.connNo, h.id, h.topic, h.partition, h.hashKey, h.unordered, h.ffOrdered, h.key, h.value, h.timestamp, h.headers, h.bytes, h);
    }
  }

  /** Records that waited (for Kafka or metadata) longer than message.timeout.ms fail. */
  private expireWaiting(now: number): void {
    const limit = this.cfg.messageTimeoutMs;
    for (let h = this.waiting.peek(); h !== undefined && now - h.at >= limit; h = this.waiting.peek()) {
      this.waiting.shift();
      this.waitingBytes -= h.bytes;
      this.outcome(h.connNo, h.id, KERR.MSG_TIMED_OUT, -1, -1, 'Local: Message timed out (no connection to Kafka)', h.bytes);
    }
    for (const [topic, list] of this.metaWaiting) {
      let n = 0;
      while (n < list.length && now - (list[n] as HeldRecord).at >= limit) n++;
      if (n === 0) continue;
      for (const h of list.splice(0, n)) {
        this.metaWaitingCount--;
        this.outcome(h.connNo, h.id, KERR.MSG_TIMED_OUT, -1, -1, `Local: Message timed out (no partition count for topic ${topic})`, h.bytes);
      }
      if (list.length === 0) this.metaWaiting.delete(topic);
    }
    // Transactions waiting for a transactional producer that cannot start (broker down).
    if (!this.txnBusy) {
      for (let job = this.txnQueue.peek(); job !== undefined && now - job.at >= limit; job = this.txnQueue.peek()) {
        this.txnQueue.shift();
        this.failed += job.records.length;
        const conn = this.conns.get(job.connNo);
        if (conn === undefined) continue;
        conn.pendingTxn--;
        conn.failed += job.records.length;
        if (job.id !== 0 && !conn.finished) {
          conn.writer.txnReport(job.id, KERR.MSG_TIMED_OUT, 'Local: Message timed out (the transactional producer is not ready)', [], []);
          this.markDirty(conn);
        }
        if (conn.readEnded) this.maybeFinish(conn);
      }
    }
  }

  /** Fetches a topic's partition count (one request per topic at a time); retries while records wait. */
  private fetchPartitionCount(topic: string): void {
    if (this.metaInFlight.has(topic)) return;
    const p = this.producer;
    if (p === null) return;
    this.metaInFlight.add(topic);
    const done = (err: LibrdKafkaError | null, md: Metadata | undefined): void => {
      this.metaInFlight.delete(topic);
      const t = err ? undefined : md?.topics.find((x) => x.name === topic);
      const count = t?.partitions.length ?? 0;
      if (count > 0) this.setPartitionCount(topic, count);
      const list = this.metaWaiting.get(topic);
      if (list === undefined) return;
      if (count === 0) {
        // Not known yet (broker down, or a topic being auto-created): the records keep waiting
        // until message.timeout.ms; ask again shortly.
        if (err) this.log.debug('no metadata for topic; retrying', { topic, code: err.code, reason: err.message });
        setTimeout(() => {
          if (this.metaWaiting.has(topic)) this.fetchPartitionCount(topic);
        }, 250).unref();
        return;
      }
      this.metaWaiting.delete(topic);
      this.metaWaitingCount -= list.length;
      for (const h of list) this.dispatch(h.connNo, h.id, h.topic, h.partition, h.hashKey, h.unordered, h.ffOrdered, h.key, h.value, h.timestamp, h.headers, h.bytes, h);
    };
    try {
      p.getMetadata({ topic, allTopics: false, timeout: METADATA_TIMEOUT_MS }, done);
    } catch (e) {
      this.metaInFlight.delete(topic);
      this.log.debug('metadata request failed', { topic, err: e });
    }
  }

  /** A topic's partition count learned from metadata, for both paths (the native client places keyed records too). */
  private setPartitionCount(topic: string, count: number): void {
    this.partitionCounts.set(topic, { count, at: Date.now() });
    this.ffNative?.setPartitionCount(topic, count);
  }

  private forgetPartitionCount(topic: string): void {
    this.partitionCounts.delete(topic);
    this.ffNative?.setPartitionCount(topic, 0);
  }

  /** Promise form for transactions: the partition count of `topic`, bounded. */
  private async partitionCount(topic: string, deadline: number): Promise<number> {
    for (;;) {
      const known = this.partitionCounts.get(topic);
      if (known !== undefined) return known.count;
      const p = this.producer ?? this.txnProducer;
      if (p !== null) {
        const count = await new Promise<number>((resolve) => {
          try {
            p.getMetadata({ topic, allTopics: false, timeout: METADATA_TIMEOUT_MS }, (err: LibrdKafkaError | null, md?: Metadata) => {
              resolve(err ? 0 : (md?.topics.find((x) => x.name === topic)?.partitions.length ?? 0));
            });
          } catch {
            resolve(0);
          }
        });
        if (count > 0) {
          this.setPartitionCount(topic, count);
          return count;
        }
      }
      if (Date.now() >= deadline) return 0;
      await sleep(250);
    }
  }

  // ------------------------------------------------------------ transactions

  private txnConf(): LibrdkafkaConfig {
    return {
      ...this.conf,
      'transactional.id': transactionalId(this.cfg, os.hostname()),
      'transaction.timeout.ms': this.cfg.transactionTimeoutMs,
      'enable.idempotence': true,
      acks: 'all',
      'max.in.flight.requests.per.connection': 5,
    };
  }

  private async startTxnProducer(): Promise<void> {
    if (this.txnStarting) return;
    this.txnStarting = true;
    try {
      for (let attempt = 0; !this.stopping; attempt++) {
        const p = this.newProducer(this.txnConf(), this.onTxnDelivery, 'txn-producer');
        try {
          await this.connectClient(p);
          await call((cb) => p.initTransactions(Math.max(CONNECT_TIMEOUT_MS, 10000), cb));
        } catch (e) {
          disconnectQuietly(p);
          await this.retryPause('transactional producer not ready; retrying', attempt, e, backoff(attempt));
          continue;
        }
        this.txnProducer = p;
        this.txnReady = true;
        this.log.info('transactional producer ready', { transactionalId: this.txnConf()['transactional.id'] });
        this.broadcastStatus();
        void this.runTxns();
        return;
      }
    } finally {
      this.txnStarting = false;
    }
  }

  private takeTxn(conn: Conn, buf: Buffer, s: number, e: number): void {
    const records: HeldRecord[] = [];
    const now = Date.now();
    const id = decodeProduceTxn(buf, s, e, this.rec, (r) => {
      records.push(hold(conn.no, r, now));
    });
    conn.received += records.length;
    this.received += records.length;
    if (!this.cfg.transactions) {
      this.failed += records.length;
      conn.failed += records.length;
      conn.writer.txnReport(id, KERR.TXN_DISABLED, 'transactions are off (kafka.transactions)', [], []);
      this.markDirty(conn);
      return;
    }
    conn.pendingTxn++;
    this.txnQueue.push({ connNo: conn.no, id, records, at: now });
    void this.runTxns();
  }

  private async runTxns(): Promise<void> {
    if (this.txnBusy || !this.txnReady) return;
    this.txnBusy = true;
    try {
      for (let job = this.txnQueue.shift(); job !== undefined; job = this.txnQueue.shift()) {
        await this.runTxn(job);
        if (!this.txnReady) break;
      }
    } finally {
      this.txnBusy = false;
    }
  }

  private async runTxn(job: TxnJob): Promise<void> {
    const p = this.txnProducer as Producer;
    const n = job.records.length;
    const cur: TxnInFlight = {
      seq: ++this.txnSeq,
      n,
      got: 0,
      firstErr: 0,
      firstErrMsg: '',
      partitions: new Int32Array(n).fill(-1),
      offsets: new Float64Array(n).fill(-1),
    };
    const timeout = this.cfg.transactionTimeoutMs;
    let err = 0;
    let msg = '';
    let begun = false;
    try {
      if (Date.now() - job.at > this.cfg.messageTimeoutMs) throw Object.assign(new Error('Local: Message timed out (waited for the transactional producer)'), { code: KERR.MSG_TIMED_OUT });
      const parts = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const r = job.records[i] as HeldRecord;
        parts[i] = r.partition;
        if (r.partition < 0 && r.hashKey && r.key !== null) {
          const count = await this.partitionCount(r.topic, job.at + this.cfg.messageTimeoutMs);
          if (count === 0) throw Object.assign(new Error(`no partition count for topic ${r.topic}`), { code: KERR.UNKNOWN_TOPIC_OR_PART });
          parts[i] = jumpConsistentHash(this.hashKey(r.key), count);
        }
      }
      this.txnCurrent = cur;
      await call((cb) => p.beginTransaction(cb));
      begun = true;
      for (let i = 0; i < n; i++) {
        const r = job.records[i] as HeldRecord;
        p.produce(r.topic, parts[i] as number, r.value, r.key, r.timestamp, cur.seq * TXN_INDEX_SPAN + i, r.headers ?? undefined);
      }
      await call((cb) => p.commitTransaction(timeout, cb));
      // The commit waited for every delivery; their reports may still be on their way to JS.
      await waitFor(() => cur.got === n, 5000);
      if (cur.firstErr !== 0) throw Object.assign(new Error(cur.firstErrMsg), { code: cur.firstErr });
    } catch (e) {
      err = errCode(e);
      if (err === 0) err = KERR.STATE;
      msg = errText(e);
      if (begun) {
        try {
          await call((cb) => p.abortTransaction(timeout, cb));
        } catch (ae) {
          this.log.error('aborting a transaction failed; restarting the transactional producer', { code: errCode(ae), reason: errText(ae) });
          this.restartTxnProducer();
        }
      }
      if ((e as LibrdKafkaError).isFatal === true) this.restartTxnProducer();
    } finally {
      this.txnCurrent = null;
    }
    if (err === 0) {
      this.txnCommitted++;
      this.delivered += n;
    } else {
      this.txnAborted++;
      this.failed += n;
      this.log.debug('transaction aborted', { records: n, code: err, reason: msg });
    }
    const conn = this.conns.get(job.connNo);
    if (conn === undefined) return;
    conn.pendingTxn--;
    if (err === 0) conn.delivered += n;
    else conn.failed += n;
    if (job.id !== 0 && !conn.finished) {
      conn.writer.txnReport(job.id, err, msg, cur.partitions, cur.offsets);
      this.markDirty(conn);
    }
    if (conn.readEnded) this.maybeFinish(conn);
  }

  private readonly onTxnDelivery = (err: LibrdKafkaError | null, r: DeliveryReport): void => {
    const cur = this.txnCurrent;
    const op = r.opaque as number;
    const seq = Math.floor(op / TXN_INDEX_SPAN);
    if (cur === null || seq !== cur.seq) return; // a report of an aborted, finished transaction
    const i = op - seq * TXN_INDEX_SPAN;
    cur.got++;
    if (err) {
      if (cur.firstErr === 0) {
        cur.firstErr = err.code;
        cur.firstErrMsg = err.message;
      }
    } else {
      cur.partitions[i] = r.partition;
      cur.offsets[i] = r.offset;
    }
  };

  private restartTxnProducer(): void {
    const p = this.txnProducer;
    this.txnProducer = null;
    this.txnReady = false;
    if (p !== null) {
      try {
        p.disconnect(5000, () => undefined);
      } catch {
        // already gone
      }
    }
    if (!this.stopping) void this.startTxnProducer();
  }

  // ------------------------------------------------------------ shutdown

  /** Idempotent: the first call's report. */
  shutdown(reason: string, waitForLinksMs: number): Promise<ProducerShutdownReport> {
    if (this.shutdownPromise === null) this.shutdownPromise = this.doShutdown(reason, waitForLinksMs);
    return this.shutdownPromise;
  }

  private async doShutdown(reason: string, waitForLinksMs: number): Promise<ProducerShutdownReport> {
    this.stopping = true;
    const t0 = Date.now();
    this.log.info('producer shutting down', { reason, links: this.conns.size, queued: this.queued, waitForLinksMs, flushTimeoutMs: this.cfg.flushTimeoutMs });
    this.server.close();
    this.broadcastStatus();
    // 1. Links still open may hand over records (draining workers); they end when done.
    await waitFor(() => this.conns.size === 0, waitForLinksMs, 20);
    // 2. Deliver what was taken, within flushTimeoutMs.
    const flushStart = Date.now();
    const flushEnd = flushStart + this.cfg.flushTimeoutMs;
    await waitFor(() => this.producer !== null || this.queued === 0, this.cfg.flushTimeoutMs, 20);
    // Fire-and-forget epochs: no new ones (late records go to the main client); both clients
    // are flushed alongside the main one.
    this.ffCurrent = null;
    this.ffDeadline = flushEnd;
    const ffDone = Promise.all(this.ffClients.map((c) => (c.epoch === null ? c.settling : this.settleFf(c))));
    const ffn = this.ffNative;
    let ffNativeDone: Promise<unknown> = Promise.resolve();
    if (ffn !== null) {
      ffn.startFlushing();
      ffNativeDone = waitFor(() => ffn.outqLen() === 0, Math.max(0, flushEnd - Date.now()), 5);
    }
    const p = this.producer;
    if (p !== null) {
      const remaining = Math.max(0, flushEnd - Date.now());
      await new Promise<void>((resolve) => {
        try {
          p.flush(remaining, () => resolve());
        } catch {
          resolve();
        }
      });
    }
    await ffDone;
    await ffNativeDone;
    if (ffn !== null) this.settleFfNative(ffn);
    await waitFor(() => (this.queued === 0 || this.waiting.length + this.metaWaitingCount === this.queued) && !this.txnBusy, Math.max(0, flushEnd - Date.now()) + 500, 5);
    const flushMs = Date.now() - flushStart;
    // 3. Take nothing more. Held records never reached librdkafka: they fail.
    this.readingPaused = true;
    for (const c of this.conns.values()) c.sock.pause();
    for (let h = this.waiting.shift(); h !== undefined; h = this.waiting.shift()) {
      this.waitingBytes -= h.bytes;
      this.outcome(h.connNo, h.id, KERR.PRODUCER_SHUTTING_DOWN, -1, -1, 'not produced: the producer shut down before Kafka was reachable', h.bytes);
    }
    for (const [, list] of this.metaWaiting) {
      for (const h of list) this.outcome(h.connNo, h.id, KERR.PRODUCER_SHUTTING_DOWN, -1, -1, 'not produced: the producer shut down waiting for metadata', h.bytes);
    }
    this.metaWaiting.clear();
    this.metaWaitingCount = 0;
    for (let job = this.txnQueue.shift(); job !== undefined; job = this.txnQueue.shift()) {
      const conn = this.conns.get(job.connNo);
      this.failed += job.records.length;
      if (conn !== undefined) {
        conn.pendingTxn--;
        conn.failed += job.records.length;
        if (job.id !== 0) conn.writer.txnReport(job.id, KERR.PRODUCER_SHUTTING_DOWN, 'not produced: the producer shut down', [], []);
      }
    }
    // What the native client reported meanwhile; what it still holds is undelivered.
    if (ffn !== null) this.settleFfNative(ffn);
    // 4. Per-link accounting, final STATUS, close.
    const connections: ConnectionShutdownReport[] = [];
    const unknownAtShutdown = new Map<number, number>();
    for (const c of this.conns.values()) {
      if (c.ffUnknown > 0) unknownAtShutdown.set(c.workerId, c.ffUnknown);
      connections.push({ workerId: c.workerId, received: c.received, delivered: c.delivered, failed: c.failed, undelivered: c.pending + c.pendingTxn });
      this.finish(c);
    }
    const report: ProducerShutdownReport = {
      reason,
      delivered: this.delivered,
      failed: this.failed,
      undelivered: this.queued,
      flushMs,
      flushTimedOut: this.queued > 0,
      connections,
    };
    (report.undelivered > 0 ? this.log.warn : this.log.info).call(this.log, 'producer flushed', {
      ...report,
      connections: undefined,
      ffSettled: this.ffSettled,
      totalMs: Date.now() - t0,
    });
    for (const c of connections) {
      const unknown = unknownAtShutdown.get(c.workerId) ?? 0;
      this.log.info('link accounting at shutdown', { worker: c.workerId, received: c.received, delivered: c.delivered, failed: c.failed, undelivered: c.undelivered, ...(unknown > 0 ? { unknown } : {}) });
    }
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    // 5. Let the clients go (bounded: librdkafka may wait for in-flight requests).
    if (ffn !== null) {
      ffn.close(0);
      this.ffNative = null;
    }
    await Promise.all(
      [this.producer, this.txnProducer, ...this.retired, ...this.ffClients.map((c) => c.producer)].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c === null || !c.isConnected()) return resolve();
            const t = setTimeout(resolve, 3000);
            try {
              c.disconnect(0, () => {
                clearTimeout(t);
                resolve();
              });
            } catch {
              clearTimeout(t);
              resolve();
            }
          }),
      ),
    );
    return report;
  }
}

// ---------------------------------------------------------------- librdkafka statistics

/** The parts of librdkafka's statistics JSON that Sluice reads (STATISTICS.md). */
interface RdWindow {
  avg?: number;
}
interface RdStats {
  ts?: number;
  time?: number;
  msg_cnt?: number;
  msg_size?: number;
  msg_max?: number;
  msg_size_max?: number;
  tx?: number;
  txmsgs?: number;
  txmsg_bytes?: number;
  brokers?: Record<string, { nodeid?: number; state?: string; txerrs?: number; rtt?: RdWindow; int_latency?: RdWindow; outbuf_latency?: RdWindow }>;
  topics?: Record<string, { batchsize?: RdWindow; batchcnt?: RdWindow }>;
}

/**
 * The clients' statistics as one: queue and traffic figures summed; broker state, limits and
 * latencies from the main client (the fire-and-forget clients share its brokers), batch
 * sizes averaged over the clients that sent batches.
 */
export function mergeStats(by: ReadonlyMap<string, LibrdkafkaStatsSummary>): LibrdkafkaStatsSummary | null {
  const all = [...by.values()];
  const main = by.get('producer') ?? all[0];
  if (main === undefined) return null;
  const sum = (f: (s: LibrdkafkaStatsSummary) => number): number => all.reduce((a, s) => a + f(s), 0);
  const batching = all.filter((s) => s.batchCountAvg > 0);
  return {
    ...main,
    at: Math.max(...all.map((s) => s.at)),
    msgCount: sum((s) => s.msgCount),
    msgBytes: sum((s) => s.msgBytes),
    txMessages: sum((s) => s.txMessages),
    txMessageBytes: sum((s) => s.txMessageBytes),
    txRequests: sum((s) => s.txRequests),
    txErrors: sum((s) => s.txErrors),
    batchBytesAvg: Math.round(mean(batching.map((s) => s.batchBytesAvg))),
    batchCountAvg: Math.round(mean(batching.map((s) => s.batchCountAvg))),
  };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function summarizeStats(j: RdStats): LibrdkafkaStatsSummary {
  const brokers = Object.values(j.brokers ?? {}).filter((b) => (b.nodeid ?? -1) >= 0);
  const topics = Object.values(j.topics ?? {});
  const us = (xs: (RdWindow | undefined)[]): number => Math.round(mean(xs.map((w) => w?.avg ?? 0)) / 10) / 100;
  return {
    at: j.time !== undefined ? j.time * 1000 : Date.now(),
    msgCount: j.msg_cnt ?? 0,
    msgBytes: j.msg_size ?? 0,
    msgMax: j.msg_max ?? 0,
    msgBytesMax: j.msg_size_max ?? 0,
    txMessages: j.txmsgs ?? 0,
    txMessageBytes: j.txmsg_bytes ?? 0,
    txRequests: j.tx ?? 0,
    txErrors: brokers.reduce((a, b) => a + (b.txerrs ?? 0), 0),
    brokersUp: brokers.filter((b) => b.state === 'UP').length,
    brokers: brokers.length,
    rttAvgMs: us(brokers.map((b) => b.rtt)),
    queueLatencyAvgMs: us(brokers.map((b) => b.int_latency)),
    outbufLatencyAvgMs: us(brokers.map((b) => b.outbuf_latency)),
    batchBytesAvg: Math.round(mean(topics.map((t) => t.batchsize?.avg ?? 0))),
    batchCountAvg: Math.round(mean(topics.map((t) => t.batchcnt?.avg ?? 0))),
  };
}

// ---------------------------------------------------------------- socket file

/**
 * A socket file left by a dead producer is removed; a live one (something answers) or a path
 * that is not a socket is an error: never delete what is not ours.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 500);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  if (alive) throw new Error(`another producer is listening on ${path}`);
  fs.unlinkSync(path);
}

// ---------------------------------------------------------------- process main

function send(msg: ProducerToSupervisor, cb?: () => void): void {
  if (typeof process.send !== 'function' || !process.connected) {
    cb?.();
    return;
  }
  process.send(msg, undefined, undefined, () => cb?.());
}

function readInit(): ProducerInit {
  const raw = process.env[PRODUCER_INIT_ENV];
  delete process.env[PRODUCER_INIT_ENV];
  if (raw === undefined || raw === '') throw new Error(`${PRODUCER_INIT_ENV} is not set (the producer process is started by the primary)`);
  const init = JSON.parse(raw) as ProducerInit;
  if (typeof init.socketPath !== 'string' || init.socketPath === '') throw new Error('init.socketPath is missing');
  return init;
}

function main(): void {
  let log: Logger = createLogger('info', { proc: 'kafka-producer', pid: process.pid });
  const fatal = (message: string): void => {
    log.error('producer failed to start', { reason: message });
    send({ type: 'fatal', message }, () => process.exit(2));
    setTimeout(() => process.exit(2), 1000).unref();
  };
  let init: ProducerInit;
  let cfg: KafkaConfig;
  try {
    init = readInit();
    log = createLogger(init.logLevel ?? 'info', { proc: 'kafka-producer', pid: process.pid });
    const built = buildKafkaConfig(init.config, {}, 'kafka');
    if (built.config === undefined) throw new Error(`invalid kafka config:\n${built.issues.map((i) => `  ${i.path} ${i.message}`).join('\n')}`);
    cfg = built.config;
  } catch (e) {
    fatal(errText(e));
    return;
  }
  const svc = new ProducerService(cfg, init.socketPath, log, {
    ...(init.pollMode !== undefined ? { pollMode: init.pollMode } : {}),
    ...(init.statusIntervalMs !== undefined ? { statusIntervalMs: init.statusIntervalMs } : {}),
  });
  try {
    svc.validateClientConfig();
  } catch (e) {
    fatal(`librdkafka refused the configuration: ${errText(e)}`);
    return;
  }

  let exiting = false;
  const stop = (reason: string, waitForLinksMs: number): void => {
    void svc.shutdown(reason, waitForLinksMs).then((report) => {
      if (exiting) return;
      exiting = true;
      send({ type: 'shutdown-report', report }, () => process.exit(0));
      setTimeout(() => process.exit(0), 1000).unref();
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM', init.sigtermWaitMs));
  // Ctrl-C in a terminal reaches the whole process group: the primary decides when we stop.
  process.on('SIGINT', () => {
    if (!process.connected) stop('SIGINT', init.sigtermWaitMs);
  });
  process.on('message', (m: SupervisorToProducer) => {
    switch (m.type) {
      case 'shutdown':
        stop(m.reason, m.waitForLinksMs);
        break;
      default:
        assertNever(m.type);
    }
  });
  // The primary is gone (crash, SIGKILL): its workers went with it; flush and leave.
  process.on('disconnect', () => stop('the primary exited', 0));
  process.on('uncaughtException', (e) => {
    log.error('producer crashed', { err: e, stack: e.stack });
    process.exit(1);
  });

  svc
    .listen()
    .then(() => {
      send({ type: 'ready', pid: process.pid, socketPath: init.socketPath });
      svc.startKafka();
    })
    .catch((e: unknown) => fatal(errText(e)));
}

if (require.main === module) main();
