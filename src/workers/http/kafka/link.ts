/**
 * An HTTP worker's link to the Kafka producer process: records in, delivery reports out, over
 * the producer's Unix socket (frames: src/shared/kafka-frames.ts; semantics: docs/kafka.md).
 *
 * Hot path: `produce()` encodes the record straight into one reusable buffer; everything
 * produced in one event-loop turn goes out in one socket write (scheduled with setImmediate),
 * and fire-and-forget records alone may wait longer for the next turns' (ffDelayMs).
 * The buffer is bounded (`socketBufferBytes`: encoded bytes not yet taken by the kernel); when
 * it is full `produce()` returns false at once and `refusal()` says why, so the caller can
 * drop and count, or answer 503 with `retryAfterSeconds()`. Nothing here waits.
 *
 * Every record `produce()` accepted ends in exactly one of the counters `delivered`, `failed`
 * or `unknown` (the link to the producer dropped after the record was written to it and
 * before its outcome came back, or a fire-and-forget record of a producer epoch in which
 * records of several links failed without saying whose). Fire-and-forget records (no
 * callback) learn their outcome from the producer's per-connection STATUS counters.
 *
 * While the producer is away (restarting: the primary respawns it) records are kept, within
 * the same bound, and sent once the link has reconnected.
 *
 * Must never: import the Kafka client (this runs in worker threads, where it aborts the
 * process), block, allocate per record beyond the caller's callback and a map entry for it,
 * or let a caller's callback exception break the link.
 */
import * as net from 'node:net';

import type { ErrorCode } from '../../../shared/errors';
import {
  DecodedReport,
  FRAME,
  FrameError,
  FrameReader,
  FrameTooLargeError,
  FrameWriter,
  KERR,
  KafkaDeliveryError,
  MAX_FRAME_BYTES,
  ProducerStatus,
  decodeReport,
  decodeStatus,
  decodeTxnReport,
  type KafkaRecord,
} from '../../../shared/kafka-frames';
import type { Logger } from '../../../shared/log';

export type { KafkaHeader, KafkaRecord } from '../../../shared/kafka-frames';
export { KafkaDeliveryError } from '../../../shared/kafka-frames';

/** One record's outcome: `err` null = acknowledged by Kafka at `partition`/`offset`. */
export type KafkaReportCallback = (err: KafkaDeliveryError | null, partition: number, offset: number) => void;
/** A transaction's outcome: per record, in order, when committed (empty arrays when not). */
export type KafkaTxnCallback = (err: KafkaDeliveryError | null, partitions: Int32Array, offsets: Float64Array) => void;

export interface KafkaLinkOptions {
  /** The producer's socket (ProducerSupervisor.socketPath). */
  readonly socketPath: string;
  /** Sent in HELLO; names this worker in the producer's logs and shutdown accounting. */
  readonly workerId: number;
  /** kafka.socketBufferBytes. */
  readonly socketBufferBytes: number;
  readonly logger?: Logger;
  /** Reconnect back-off bounds (default 50 ms .. 2 s, with jitter). */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /**
   * When a turn's records are written: 'immediate' (setImmediate: every record of one
   * event-loop iteration in one write; the default, measured in docs/kafka.md) or 'microtask'
   * (after the current callback).
   */
  readonly batch?: 'immediate' | 'microtask';
  /**
   * How long fire-and-forget records may wait in the buffer for more (`kafka.linkLingerMs`,
   * default 100 ms; 0 = the turn's end, as records with a callback). One write then carries
   * the records of many turns, which saves the producer process a wake-up and a read per
   * turn (docs/kafka.md, Measurements). A record with a callback, or a buffer past
   * FF_EAGER_BYTES (at most half of socketBufferBytes), still goes at the end of the turn,
   * taking the waiting ones with it (in order).
   */
  readonly ffDelayMs?: number;
}

/** Buffered bytes past which waiting fire-and-forget records go at the end of the turn. */
const FF_EAGER_BYTES = 512 * 1024;
const DEFAULT_FF_DELAY_MS = 100;

export interface KafkaLinkCounters {
  /** Records produce() accepted (a transaction counts each record). */
  readonly enqueued: number;
  /** Records produce() refused (buffer full, too large, closed): the caller's to count or answer. */
  readonly dropped: number;
  readonly delivered: number;
  readonly failed: number;
  /** Written to a link that dropped before their outcome came back: maybe delivered, maybe not. */
  readonly unknown: number;
}

export interface KafkaLinkStatus extends KafkaLinkCounters {
  readonly connected: boolean;
  readonly closed: boolean;
  /** Encoded bytes not yet taken by the kernel (the bounded buffer). */
  readonly bufferedBytes: number;
  /** Records with a callback still waiting for their outcome. */
  readonly pendingReports: number;
  /** Records accepted whose outcome is not known yet (with and without callbacks). */
  readonly inFlight: number;
  readonly reconnects: number;
  /** The producer's last STATUS (a copy), null before the first one. */
  readonly producer: Readonly<ProducerStatus> | null;
}

interface PendingTxn {
  readonly cb: KafkaTxnCallback;
  readonly n: number;
}

const EMPTY_I32 = new Int32Array(0);
const EMPTY_F64 = new Float64Array(0);

export class KafkaLink {
  private readonly opts: KafkaLinkOptions;
  private readonly limit: number;
  private readonly maxRecordBytes: number;
  private readonly log: Logger | undefined;
  private readonly writer = new FrameWriter(64 * 1024);
  private readonly reader: FrameReader;
  private readonly rep = new DecodedReport();
  private readonly st = new ProducerStatus();
  private haveStatus = false;

  private sock: net.Socket | null = null;
  private connected = false;
  private everConnected = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private reconnectCount = 0;
  private flushScheduled = false;
  /** The timer of fire-and-forget records waiting for more (ffDelayMs). */
  private ffTimer: NodeJS.Timeout | null = null;
  private readonly ffDelayMs: number;
  /** Buffered bytes past which waiting fire-and-forget records go at the end of the turn. */
  private readonly ffEagerBytes: number;
  private closing = false;
  private destroyed = false;
  private closePromise: Promise<void> | null = null;
  private closeResolve: (() => void) | null = null;
  private readonly connectWaiters: (() => void)[] = [];
  private lastRefusal: ErrorCode | null = null;

  private nextId = 1;
  private pending = new Map<number, KafkaReportCallback>();
  private pendingTxn = new Map<number, PendingTxn>();
  /** Ids of the records with a callback that are in the writer (not yet written to a socket). */
  private readonly batchIds: number[] = [];
  /** Fire-and-forget records in the writer, and written on the current connection. */
  private ffBatch = 0;
  private ffSent = 0;
  private ffSeenDelivered = 0;
  private ffSeenFailed = 0;
  private ffSeenUnknown = 0;

  private enqueued = 0;
  private dropped = 0;
  private delivered = 0;
  private failed = 0;
  private unknown = 0;

  constructor(opts: KafkaLinkOptions) {
    this.opts = opts;
    this.limit = opts.socketBufferBytes;
    this.maxRecordBytes = Math.min(opts.socketBufferBytes, MAX_FRAME_BYTES);
    this.log = opts.logger;
    this.ffDelayMs = opts.ffDelayMs ?? DEFAULT_FF_DELAY_MS;
    this.ffEagerBytes = Math.min(FF_EAGER_BYTES, Math.floor(opts.socketBufferBytes / 2));
    this.reader = new FrameReader(this.onFrame);
    this.connect();
  }

  // ------------------------------------------------------------ producing

  /**
   * Queues one record for the producer. Returns false, and calls nothing, when it cannot:
   * `refusal()` then says why (SLUICE_ERR_KAFKA_QUEUE_FULL: the buffer is full;
   * SLUICE_ERR_KAFKA_RECORD_TOO_LARGE; SLUICE_ERR_SHUTTING_DOWN: closed). Otherwise
   * `onReport`, if given, is called exactly once with the outcome; without it the record is
   * fire-and-forget (its outcome only shows in the counters). `rec` is read before this
   * returns and may be reused.
   */
  produce(rec: KafkaRecord, onReport?: KafkaReportCallback): boolean {
    if (this.closing) return this.refuse('SLUICE_ERR_SHUTTING_DOWN');
    // A lower bound of the encoded size (a string has at least one byte per UTF-16 unit):
    // refuses a giant record before encoding it.
    const lower = rec.value === null ? 0 : rec.value.length;
    if (lower > this.maxRecordBytes) return this.refuse('SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
    // Full already: refuse without encoding (a saturated worker calls this in a loop).
    if (this.writer.len + (this.sock?.writableLength ?? 0) + lower > this.limit) return this.refuse('SLUICE_ERR_KAFKA_QUEUE_FULL');
    const id = onReport === undefined ? 0 : this.allocId();
    if (!this.encode(() => this.writer.produce(id, rec))) return false;
    this.enqueued++;
    if (onReport === undefined) {
      this.ffBatch++;
      this.scheduleFlush(this.writer.len >= this.ffEagerBytes);
    } else {
      this.pending.set(id, onReport);
      this.batchIds.push(id);
      this.scheduleFlush(true);
    }
    return true;
  }

  /**
   * Queues records to be produced in one Kafka transaction (all or nothing; needs
   * kafka.transactions). Same refusals as produce(); `onReport` gets one partition/offset per
   * record, in order, when the transaction committed.
   */
  produceTransaction(recs: readonly KafkaRecord[], onReport: KafkaTxnCallback): boolean {
    if (this.closing) return this.refuse('SLUICE_ERR_SHUTTING_DOWN');
    const id = this.allocId();
    if (!this.encode(() => this.writer.produceTxn(id, recs))) return false;
    this.enqueued += recs.length;
    this.pendingTxn.set(id, { cb: onReport, n: recs.length });
    this.batchIds.push(id);
    this.scheduleFlush(true);
    return true;
  }

  /**
   * Runs one frame encoding into the writer and keeps it only if it fits: the record limit
   * and the bounded buffer (bytes in the writer plus bytes the socket has not taken yet).
   * On refusal the writer is left exactly as it was.
   */
  private encode(write: () => number): boolean {
    const start = this.writer.len;
    let size: number;
    try {
      size = write();
    } catch (e) {
      if (e instanceof FrameTooLargeError) return this.refuse('SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
      throw e;
    }
    if (size > this.maxRecordBytes) {
      this.writer.truncate(start);
      return this.refuse('SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
    }
    if (this.writer.len + (this.sock?.writableLength ?? 0) > this.limit) {
      this.writer.truncate(start);
      return this.refuse('SLUICE_ERR_KAFKA_QUEUE_FULL');
    }
    return true;
  }

  /** Why the last produce()/produceTransaction() returned false (null if none did). */
  refusal(): ErrorCode | null {
    return this.lastRefusal;
  }

  private refuse(code: ErrorCode): false {
    this.lastRefusal = code;
    this.dropped++;
    return false;
  }

  private allocId(): number {
    let id = this.nextId;
    while (id === 0 || this.pending.has(id) || this.pendingTxn.has(id)) id = (id + 1) >>> 0;
    this.nextId = (id + 1) >>> 0;
    return id;
  }

  /** `now`: at the end of this turn; else (fire-and-forget only) within ffDelayMs. */
  private scheduleFlush(now: boolean): void {
    if (this.flushScheduled || !this.connected) return;
    if (!now && this.ffDelayMs > 0) {
      this.ffTimer ??= setTimeout(this.flush, this.ffDelayMs);
      return;
    }
    this.flushScheduled = true;
    if (this.opts.batch === 'microtask') queueMicrotask(this.flush);
    else setImmediate(this.flush);
  }

  private clearFfTimer(): void {
    if (this.ffTimer === null) return;
    clearTimeout(this.ffTimer);
    this.ffTimer = null;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.clearFfTimer();
    const sock = this.sock;
    if (!this.connected || sock === null || this.writer.len === 0) return;
    sock.write(this.writer.takeCopy());
    this.ffSent += this.ffBatch;
    this.ffBatch = 0;
    this.batchIds.length = 0;
  };

  // ------------------------------------------------------------ connection

  private connect(): void {
    this.reconnectTimer = null;
    if (this.destroyed) return;
    const sock = net.createConnection({ path: this.opts.socketPath });
    this.sock = sock;
    sock.on('connect', () => this.onConnect(sock));
    sock.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch (e) {
        this.log?.error('bad frame from the Kafka producer; reconnecting', { err: e });
        sock.destroy();
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (this.connected || this.attempt === 0) this.log?.debug('Kafka producer link error', { err: e, code: e.code });
    });
    sock.on('close', () => this.onClose(sock));
  }

  private onConnect(sock: net.Socket): void {
    if (sock !== this.sock) return;
    this.connected = true;
    if (this.everConnected) this.reconnectCount++;
    this.everConnected = true;
    this.attempt = 0;
    this.haveStatus = false;
    const hello = new FrameWriter(32);
    hello.hello(this.opts.workerId);
    sock.write(hello.takeCopy());
    this.log?.debug('Kafka producer link connected', { socket: this.opts.socketPath });
    if (this.closing) {
      // close() was called while connecting: deliver what was kept, then finish.
      this.flush();
      this.endGracefully(sock);
      return;
    }
    this.flush();
  }

  private onClose(sock: net.Socket): void {
    if (sock !== this.sock) return;
    this.sock = null;
    this.flushScheduled = false;
    this.clearFfTimer();
    const wasConnected = this.connected;
    this.connected = false;
    if (wasConnected) this.loseInFlight();
    if (this.closing) {
      if (!this.destroyed) this.failBatch(KERR.LINK_CLOSED, 'the link was closed before the record was sent');
      this.destroyed = true;
      this.closeResolve?.();
      return;
    }
    const min = this.opts.reconnectMinMs ?? 50;
    const max = this.opts.reconnectMaxMs ?? 2000;
    const base = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    if (wasConnected) {
      // A producer that said it was shutting down is expected to go: not worth a warning.
      if (this.st.shuttingDown) this.log?.info('the Kafka producer shut down; reconnecting', { inMs: delay });
      else this.log?.warn('Kafka producer link lost; reconnecting', { inMs: delay });
    }
    this.attempt++;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }

  /** The connection dropped: what was written to it has an unknown outcome. */
  private loseInFlight(): void {
    const ffLost = this.ffSent - this.ffSeenDelivered - this.ffSeenFailed - this.ffSeenUnknown;
    this.ffSent = 0;
    this.ffSeenDelivered = 0;
    this.ffSeenFailed = 0;
    this.ffSeenUnknown = 0;
    this.unknown += Math.max(0, ffLost);
    // Records still in the writer were never sent: they stay for the next connection.
    const keep = new Map<number, KafkaReportCallback>();
    const keepTxn = new Map<number, PendingTxn>();
    for (const id of this.batchIds) {
      const cb = this.pending.get(id);
      if (cb !== undefined) keep.set(id, cb);
      const t = this.pendingTxn.get(id);
      if (t !== undefined) keepTxn.set(id, t);
    }
    const lost = this.pending;
    const lostTxn = this.pendingTxn;
    this.pending = keep;
    this.pendingTxn = keepTxn;
    if (lost.size === keep.size && lostTxn.size === keepTxn.size) return;
    const err = new KafkaDeliveryError(KERR.LINK_LOST, 'the link to the Kafka producer dropped before the delivery report');
    for (const [id, cb] of lost) {
      if (keep.has(id)) continue;
      this.unknown++;
      this.call(cb, err, -1, -1);
    }
    for (const [id, t] of lostTxn) {
      if (keepTxn.has(id)) continue;
      this.unknown += t.n;
      this.callTxn(t.cb, err, EMPTY_I32, EMPTY_F64);
    }
  }

  /** Records in the writer that will never be sent (destroy): failed, they did not leave. */
  private failBatch(code: number, message: string): void {
    if (this.ffBatch === 0 && this.batchIds.length === 0) {
      this.writer.truncate(0);
      return;
    }
    this.failed += this.ffBatch;
    this.ffBatch = 0;
    const err = new KafkaDeliveryError(code, message);
    const ids = this.batchIds.splice(0);
    this.writer.truncate(0);
    for (const id of ids) {
      const cb = this.pending.get(id);
      if (cb !== undefined) {
        this.pending.delete(id);
        this.failed++;
        this.call(cb, err, -1, -1);
      }
      const t = this.pendingTxn.get(id);
      if (t !== undefined) {
        this.pendingTxn.delete(id);
        this.failed += t.n;
        this.callTxn(t.cb, err, EMPTY_I32, EMPTY_F64);
      }
    }
  }

  // ------------------------------------------------------------ frames from the producer

  private readonly onFrame = (type: number, buf: Buffer, s: number, e: number): void => {
    switch (type) {
      case FRAME.REPORT: {
        const r = this.rep;
        decodeReport(buf, s, e, r);
        const cb = this.pending.get(r.id);
        if (cb === undefined) return;
        this.pending.delete(r.id);
        if (r.err === 0) {
          this.delivered++;
          this.call(cb, null, r.partition, r.offset);
        } else {
          this.failed++;
          this.call(cb, new KafkaDeliveryError(r.err, r.message), r.partition, r.offset);
        }
        return;
      }
      case FRAME.TXN_REPORT: {
        const r = decodeTxnReport(buf, s, e);
        const t = this.pendingTxn.get(r.id);
        if (t === undefined) return;
        this.pendingTxn.delete(r.id);
        if (r.err === 0) {
          this.delivered += t.n;
          this.callTxn(t.cb, null, r.partitions, r.offsets);
        } else {
          this.failed += t.n;
          this.callTxn(t.cb, new KafkaDeliveryError(r.err, r.message), EMPTY_I32, EMPTY_F64);
        }
        return;
      }
      case FRAME.STATUS: {
        const st = this.st;
        decodeStatus(buf, s, e, st);
        const d = st.connFfDelivered - this.ffSeenDelivered;
        const f = st.connFfFailed - this.ffSeenFailed;
        const u = st.connFfUnknown - this.ffSeenUnknown;
        if (d > 0) this.delivered += d;
        if (f > 0) this.failed += f;
        if (u > 0) this.unknown += u;
        this.ffSeenDelivered = st.connFfDelivered;
        this.ffSeenFailed = st.connFfFailed;
        this.ffSeenUnknown = st.connFfUnknown;
        if (!this.haveStatus) {
          this.haveStatus = true;
          for (const w of this.connectWaiters.splice(0)) w();
        }
        return;
      }
      default:
        throw new FrameError(`unexpected frame type ${type} from the producer`);
    }
  };

  private call(cb: KafkaReportCallback, err: KafkaDeliveryError | null, partition: number, offset: number): void {
    try {
      cb(err, partition, offset);
    } catch (e) {
      this.log?.error('a Kafka delivery callback threw', { err: e });
    }
  }

  private callTxn(cb: KafkaTxnCallback, err: KafkaDeliveryError | null, partitions: Int32Array, offsets: Float64Array): void {
    try {
      cb(err, partitions, offsets);
    } catch (e) {
      this.log?.error('a Kafka transaction callback threw', { err: e });
    }
  }

  // ------------------------------------------------------------ state

  /** Connected, and the producer has sent its first STATUS. */
  get ready(): boolean {
    return this.connected && this.haveStatus;
  }

  /** Resolves once `ready` (e.g. before a worker says READY); rejects after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.connectWaiters.indexOf(done);
        if (i >= 0) this.connectWaiters.splice(i, 1);
        reject(new Error(`the Kafka producer link did not come up within ${timeoutMs} ms (${this.opts.socketPath})`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.connectWaiters.push(done);
    });
  }

  /** The producer's last word on the broker (false before the first STATUS). */
  get brokerUp(): boolean {
    return this.connected && this.haveStatus && this.st.brokerUp;
  }

  bufferedBytes(): number {
    return this.writer.len + (this.sock?.writableLength ?? 0);
  }

  status(): KafkaLinkStatus {
    let pendingTxnRecords = 0;
    for (const t of this.pendingTxn.values()) pendingTxnRecords += t.n;
    return {
      connected: this.connected,
      closed: this.closing,
      bufferedBytes: this.bufferedBytes(),
      pendingReports: this.pending.size + this.pendingTxn.size,
      inFlight: this.pending.size + pendingTxnRecords + this.ffBatch + Math.max(0, this.ffSent - this.ffSeenDelivered - this.ffSeenFailed - this.ffSeenUnknown),
      reconnects: this.reconnectCount,
      producer: this.haveStatus || this.everConnected ? Object.assign(new ProducerStatus(), this.st) : null,
      enqueued: this.enqueued,
      dropped: this.dropped,
      delivered: this.delivered,
      failed: this.failed,
      unknown: this.unknown,
    };
  }

  /**
   * Seconds a client should wait before retrying (503 Retry-After): the producer's queue over
   * its delivery rate, 5 when the broker is down, 2 while the producer is away; 1..60.
   */
  retryAfterSeconds(): number {
    if (!this.connected) return 2;
    if (!this.haveStatus) return 1;
    const s = this.st;
    if (!s.kafkaConnected || !s.brokerUp) return 5;
    if (s.queueMessages === 0) return 1;
    return Math.min(60, Math.max(1, Math.ceil(s.queueMessages / Math.max(1, s.deliveredPerSec))));
  }

  // ------------------------------------------------------------ close / destroy

  /**
   * Refuses new records, sends what is buffered, and waits (up to `timeoutMs`) for the
   * outcome of everything in flight: the producer ends the link once it has reported it all.
   * Past the deadline it destroys the link (the rest counts as unknown). Idempotent.
   */
  close(timeoutMs = 5000): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.closing = true;
    this.closePromise = new Promise<void>((resolve) => {
      this.closeResolve = resolve;
    });
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const t = setTimeout(() => this.destroy(), timeoutMs);
    t.unref();
    void this.closePromise.then(() => clearTimeout(t));
    const sock = this.sock;
    if (sock === null) {
      this.failBatch(KERR.LINK_CLOSED, 'the link was closed before the record was sent');
      this.destroyed = true;
      this.closeResolve?.();
    } else if (this.connected) {
      this.flush();
      this.endGracefully(sock);
    }
    // else: still connecting; onConnect sends what was kept and ends.
    return this.closePromise;
  }

  private endGracefully(sock: net.Socket): void {
    // end() after the buffered writes: the producer reads them all, reports, then ends too.
    sock.end();
  }

  /** Aborts at once: unsent records fail, in-flight ones become unknown. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.closing = true;
    this.destroyed = true;
    if (this.closePromise === null) this.closePromise = Promise.resolve();
    if (this.reconnectTimer !== null) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.failBatch(KERR.LINK_CLOSED, 'the link was destroyed before the record was sent');
    const sock = this.sock;
    if (sock !== null) {
      sock.destroy();
      // 'close' follows asynchronously: count what was in flight now, so that destroy() is final.
      this.sock = null;
      this.flushScheduled = false;
      this.clearFfTimer();
      if (this.connected) {
        this.connected = false;
        this.loseInFlight();
      }
    }
    this.closeResolve?.();
  }
}
