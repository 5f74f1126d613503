/**
 * The binary frame protocol on the Unix socket between an HTTP worker's KafkaLink and the
 * Kafka producer process (docs/kafka.md, "Frame format"), the librdkafka error codes the
 * frames carry, and their mapping onto Sluice's error registry.
 *
 * Every frame is `u32 length | u8 type | body`, little-endian, `length` counting the type
 * byte and the body. Many frames go in one socket write, and a read may end anywhere: the
 * FrameReader reassembles frames split across reads and hands out every complete frame of a
 * read in order.
 *
 * Hot path: the FrameWriter encodes into one growable buffer that it reuses (a flush copies
 * the encoded bytes out once per batch, never per record), and the decoders fill caller-owned
 * objects. Decoded keys, values and header values are views into the read buffer: valid only
 * during the callback that received them; copy them to keep them.
 *
 * Must never: import the Kafka client or anything outside src/shared, allocate per record on
 * the encoding side beyond what the caller's strings require, or trust a length field
 * without a bounds check.
 */
import { SluiceError, type ErrorCode } from './errors';
import { formatEventJson } from './event-binary';
import { grownBuffer } from './json-bytes';

// ---------------------------------------------------------------- constants

export const PROTOCOL_VERSION = 2;

/** Frame types. Worker → producer below 16, producer → worker from 16. */
export const FRAME = {
  HELLO: 1,
  PRODUCE: 2,
  PRODUCE_TXN: 3,
  REPORT: 16,
  TXN_REPORT: 17,
  STATUS: 18,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

/** Bytes of the length prefix. */
export const LENGTH_BYTES = 4;
/** Length prefix + type byte. */
export const FRAME_HEADER_BYTES = 5;
/** Largest frame either side accepts (a whole transactional batch is one frame). */
export const MAX_FRAME_BYTES = 128 * 1024 * 1024;
/** Records per PRODUCE_TXN frame. */
export const MAX_TXN_RECORDS = 100_000;

/** PRODUCE record flags. */
export const RF_HASH_KEY = 1; // partition = jump consistent hash of the key (docs/kafka.md)
export const RF_KEY_NULL = 2;
export const RF_VALUE_NULL = 4;
/** Fire-and-forget only: order against other records may be given up for a cheaper path. */
export const RF_UNORDERED = 8;
/**
 * Fire-and-forget only, order kept: the producer may send it through its native client (one
 * librdkafka client, records in link order) but never through the epoch clients.
 */
export const RF_FF_ORDERED = 16;
/** The value is a request event's binary fields (event-binary.ts); the producer writes its JSON. */
export const RF_EVENT = 32;

/** STATUS flags. */
export const SF_BROKER_UP = 1;
export const SF_KAFKA_CONNECTED = 2;
export const SF_TXN_READY = 4;
export const SF_SHUTTING_DOWN = 8;
/** The last STATUS on this connection: its counters are final. */
export const SF_FINAL = 16;

/**
 * librdkafka error codes that Sluice treats specially (the client's `CODES.ERRORS`; copied
 * here because this module must not load the client), and Sluice's own codes, which sit
 * below -1000, outside librdkafka's ranges (-200..-1 local, >= 1 broker).
 */
export const KERR = {
  NO_ERROR: 0,
  DESTROY: -197,
  TRANSPORT: -195,
  MSG_TIMED_OUT: -192,
  UNKNOWN_PARTITION: -190,
  UNKNOWN_TOPIC: -188,
  ALL_BROKERS_DOWN: -187,
  INVALID_ARG: -186,
  TIMED_OUT: -185,
  QUEUE_FULL: -184,
  STATE: -172,
  PURGE_QUEUE: -152,
  PURGE_INFLIGHT: -151,
  FATAL: -150,
  FENCED: -144,
  UNKNOWN_TOPIC_OR_PART: 3,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_FOR_PARTITION: 6,
  REQUEST_TIMED_OUT: 7,
  MSG_SIZE_TOO_LARGE: 10,
  NETWORK_EXCEPTION: 13,
  RECORD_LIST_TOO_LARGE: 18,
  NOT_ENOUGH_REPLICAS: 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
  /** The producer process is shutting down and refuses new records. */
  PRODUCER_SHUTTING_DOWN: -1001,
  /** PRODUCE_TXN while `kafka.transactions` is off. */
  TXN_DISABLED: -1002,
  /** The record could not be produced as given (e.g. a hash partition for a topic with no partitions). */
  BAD_RECORD: -1003,
  /** Link side: the connection to the producer dropped before the report came (unknown outcome). */
  LINK_LOST: -1010,
  /** Link side: destroy() with the record never sent to the producer. */
  LINK_CLOSED: -1011,
} as const;

/** Maps a librdkafka (or Sluice link) error code onto the error registry. */
export function kafkaErrorCode(kafkaCode: number): ErrorCode {
  switch (kafkaCode) {
    case KERR.QUEUE_FULL:
      return 'SLUICE_ERR_KAFKA_QUEUE_FULL';
    case KERR.MSG_SIZE_TOO_LARGE:
    case KERR.RECORD_LIST_TOO_LARGE:
      return 'SLUICE_ERR_KAFKA_RECORD_TOO_LARGE';
    case KERR.MSG_TIMED_OUT:
    case KERR.TIMED_OUT:
    case KERR.TRANSPORT:
    case KERR.ALL_BROKERS_DOWN:
    case KERR.STATE:
    case KERR.DESTROY:
    case KERR.PURGE_QUEUE:
    case KERR.PURGE_INFLIGHT:
    case KERR.LEADER_NOT_AVAILABLE:
    case KERR.NOT_LEADER_FOR_PARTITION:
    case KERR.REQUEST_TIMED_OUT:
    case KERR.NETWORK_EXCEPTION:
    case KERR.NOT_ENOUGH_REPLICAS:
    case KERR.NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case KERR.LINK_CLOSED:
      return 'SLUICE_ERR_KAFKA_UNAVAILABLE';
    case KERR.PRODUCER_SHUTTING_DOWN:
      return 'SLUICE_ERR_SHUTTING_DOWN';
    case KERR.LINK_LOST:
      return 'SLUICE_ERR_KAFKA_UNKNOWN_OUTCOME';
    default:
      return 'SLUICE_ERR_KAFKA_REJECTED';
  }
}

/** A failed delivery: a registry code plus the librdkafka (or Sluice link) code and text. */
export class KafkaDeliveryError extends SluiceError {
  readonly kafkaCode: number;
  readonly kafkaMessage: string;
  constructor(kafkaCode: number, kafkaMessage: string) {
    super(kafkaErrorCode(kafkaCode), `${kafkaMessage} (kafka code ${kafkaCode})`);
    this.name = 'KafkaDeliveryError';
    this.kafkaCode = kafkaCode;
    this.kafkaMessage = kafkaMessage;
  }
}

/** A frame over MAX_FRAME_BYTES (the writer is left as it was). */
export class FrameTooLargeError extends RangeError {
  override readonly name = 'FrameTooLargeError';
}

/** A malformed frame: the connection that sent it is closed. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

// ---------------------------------------------------------------- records (encoding side)

/** A header as the worker gives it: name and bytes (strings are sent as UTF-8). */
export type KafkaHeader = readonly [name: string, value: Uint8Array | string];

/**
 * A record to produce. The object is read synchronously by `produce()`, so a caller may reuse
 * one object for every record.
 */
export interface KafkaRecord {
  readonly topic: string;
  /** null = a tombstone (delete marker on compacted topics). */
  readonly value: Uint8Array | string | null;
  readonly key?: Uint8Array | string | null;
  /** An explicit partition, or -1 / undefined to let the producer choose. */
  readonly partition?: number;
  /**
   * 'hash': partition = jump consistent hash of the key over the topic's partition count
   * (docs/kafka.md, "Partitioning"); 'default' (or undefined): librdkafka's partitioner.
   * Ignored when `partition` is given or the key is null.
   */
  readonly partitioner?: 'default' | 'hash';
  readonly headers?: readonly KafkaHeader[];
  /** Milliseconds since the epoch; 0 / undefined = when the producer takes it. */
  readonly timestamp?: number;
  /**
   * Fire-and-forget records only (ignored with a callback): true lets the producer use its
   * fire-and-forget clients, which report failed records only and cost a third of the CPU,
   * at the price of order: against this link's other records, and across the producer's
   * epochs (docs/kafka.md, "Fire-and-forget records"). Request events set it.
   */
  readonly unordered?: boolean;
  /**
   * Fire-and-forget records only: nothing else of this link needs to keep order with it
   * except records that set it too (an async-only HTTP → Kafka route), so the producer may
   * send it through its native client, which keeps their order (RF_FF_ORDERED).
   */
  readonly ffOrdered?: boolean;
  /** The value is a request event's binary fields (event-binary.ts): Kafka gets its JSON. */
  readonly event?: boolean;
}

const TWO_32 = 4294967296;

function bytesBound(v: Uint8Array | string): number {
  return typeof v === 'string' ? v.length * 3 : v.length;
}

/**
 * Encodes frames into one growable buffer that it keeps. `takeCopy()` hands the encoded bytes
 * out (one copy per flush) and starts over; `truncate()` undoes a frame that did not fit.
 */
export class FrameWriter {
  private buf: Buffer;
  /** Bytes encoded so far. */
  len = 0;
  private readonly initialBytes: number;

  constructor(initialBytes = 64 * 1024) {
    this.initialBytes = initialBytes;
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** The encoded bytes (a view; valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** Copies the encoded bytes out and empties the writer (the buffer is kept for reuse). */
  takeCopy(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.len = 0;
    // A huge transactional batch should not pin its buffer forever.
    if (this.buf.length > 64 * this.initialBytes) this.buf = Buffer.allocUnsafe(this.initialBytes);
    return out;
  }

  truncate(len: number): void {
    this.len = len;
  }

  private ensure(extra: number): void {
    if (this.len + extra > this.buf.length) this.buf = grownBuffer(this.buf, this.len, this.len + extra);
  }

  // -- primitives (caller has ensured capacity) --
  private u8(o: number, v: number): number {
    this.buf[o] = v;
    return o + 1;
  }
  private u16(o: number, v: number): number {
    const b = this.buf;
    b[o] = v;
    b[o + 1] = v >>> 8;
    return o + 2;
  }
  private u32(o: number, v: number): number {
    const b = this.buf;
    b[o] = v;
    b[o + 1] = v >>> 8;
    b[o + 2] = v >>> 16;
    b[o + 3] = v >>> 24;
    return o + 4;
  }
  /** Non-negative integer below 2^53, as u64. */
  private u64(o: number, v: number): number {
    o = this.u32(o, v >>> 0);
    return this.u32(o, Math.floor(v / TWO_32) >>> 0);
  }
  /** Integer in ±2^53, as i64 (two's complement). */
  private i64(o: number, v: number): number {
    const hi = Math.floor(v / TWO_32);
    o = this.u32(o, (v - hi * TWO_32) >>> 0);
    return this.u32(o, hi >>> 0);
  }
  /**
   * Writes `s` as UTF-8 at `o`, returns the byte count. Short ASCII strings (topics, keys,
   * header names, ids) are copied by a loop: Buffer#write's argument handling alone costs
   * more than the copy, and was most of a small record's encoding.
   */
  private utf8(o: number, s: string): number {
    const n = s.length;
    if (n <= 64) {
      const b = this.buf;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[o + i] = c;
      }
      if (i === n) return n;
    }
    return this.buf.write(s, o, 'utf8');
  }

  /** u16 length + UTF-8 string. */
  private str16(o: number, s: string, what: string): number {
    const n = this.utf8(o + 2, s);
    if (n > 0xffff) throw new RangeError(`${what} is longer than 65535 bytes`);
    this.u16(o, n);
    return o + 2 + n;
  }
  /** u32 length + bytes (strings as UTF-8). */
  private bytes32(o: number, v: Uint8Array | string): number {
    let n: number;
    if (typeof v === 'string') {
      n = this.utf8(o + 4, v);
    } else {
      n = v.length;
      if (n <= 32) {
        // TypedArray#set has a fixed cost that dominates for short keys.
        const b = this.buf;
        for (let i = 0; i < n; i++) b[o + 4 + i] = v[i] as number;
      } else {
        this.buf.set(v, o + 4);
      }
    }
    this.u32(o, n);
    return o + 4 + n;
  }

  private begin(type: number): number {
    const o = this.len + LENGTH_BYTES;
    this.buf[o] = type;
    return o + 1;
  }
  private end(start: number, o: number): void {
    const frameLen = o - start - LENGTH_BYTES;
    if (frameLen > MAX_FRAME_BYTES) {
      this.len = start;
      throw new FrameTooLargeError(`frame of ${frameLen} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
    }
    this.u32(start, frameLen);
    this.len = o;
  }

  // -- frames --

  hello(workerId: number): void {
    this.ensure(16);
    const start = this.len;
    let o = this.begin(FRAME.HELLO);
    o = this.u16(o, PROTOCOL_VERSION);
    o = this.u32(o, workerId >>> 0);
    this.end(start, o);
  }

  /** Upper bound of a record's encoded size (strings at 3 bytes per UTF-16 unit). */
  static recordBound(rec: KafkaRecord): number {
    let n = 4 + 1 + 8 + 2 + rec.topic.length * 3 + 4 + 2 + 4;
    if (rec.key != null) n += bytesBound(rec.key);
    if (rec.value !== null) n += bytesBound(rec.value);
    const hs = rec.headers;
    if (hs !== undefined) {
      for (let i = 0; i < hs.length; i++) {
        const h = hs[i] as KafkaHeader;
        n += 6 + h[0].length * 3 + bytesBound(h[1]);
      }
    }
    return n;
  }

  private record(o: number, rec: KafkaRecord): number {
    const partition = rec.partition ?? -1;
    if (!Number.isInteger(partition) || partition < -1 || partition > 0x7fffffff) {
      throw new RangeError(`partition must be an integer >= -1, got ${partition}`);
    }
    const ts = rec.timestamp ?? 0;
    if (!Number.isInteger(ts) || ts < 0 || ts > Number.MAX_SAFE_INTEGER) throw new RangeError(`timestamp must be a non-negative integer, got ${ts}`);
    const key = rec.key ?? null;
    let flags = 0;
    if (rec.partitioner === 'hash') flags |= RF_HASH_KEY;
    if (key === null) flags |= RF_KEY_NULL;
    if (rec.value === null) flags |= RF_VALUE_NULL;
    if (rec.unordered === true) flags |= RF_UNORDERED;
    if (rec.ffOrdered === true) flags |= RF_FF_ORDERED;
    if (rec.event === true) flags |= RF_EVENT;
    o = this.u32(o, partition >>> 0);
    o = this.u8(o, flags);
    o = this.u64(o, ts);
    o = this.str16(o, rec.topic, 'topic');
    o = key === null ? this.u32(o, 0) : this.bytes32(o, key);
    const hs = rec.headers;
    const hn = hs === undefined ? 0 : hs.length;
    if (hn > 0xffff) throw new RangeError('more than 65535 headers');
    o = this.u16(o, hn);
    for (let i = 0; i < hn; i++) {
      const h = (hs as readonly KafkaHeader[])[i] as KafkaHeader;
      o = this.str16(o, h[0], 'header name');
      o = this.bytes32(o, h[1]);
    }
    return rec.value === null ? this.u32(o, 0) : this.bytes32(o, rec.value);
  }

  /** PRODUCE: `id` 0 = no delivery report wanted. Returns the frame's size in bytes. */
  produce(id: number, rec: KafkaRecord): number {
    this.ensure(FrameWriter.recordBound(rec) + 16);
    const start = this.len;
    let o = this.begin(FRAME.PRODUCE);
    o = this.u32(o, id >>> 0);
    try {
      o = this.record(o, rec);
    } catch (e) {
      this.len = start;
      throw e;
    }
    this.end(start, o);
    return this.len - start;
  }

  /** PRODUCE_TXN: all records in one transaction, one report. Returns the frame's size. */
  produceTxn(id: number, recs: readonly KafkaRecord[]): number {
    if (recs.length === 0 || recs.length > MAX_TXN_RECORDS) throw new RangeError(`a transaction has 1 to ${MAX_TXN_RECORDS} records`);
    let bound = 16;
    for (let i = 0; i < recs.length; i++) bound += FrameWriter.recordBound(recs[i] as KafkaRecord);
    this.ensure(bound);
    const start = this.len;
    let o = this.begin(FRAME.PRODUCE_TXN);
    o = this.u32(o, id >>> 0);
    o = this.u32(o, recs.length);
    try {
      for (let i = 0; i < recs.length; i++) o = this.record(o, recs[i] as KafkaRecord);
    } catch (e) {
      this.len = start;
      throw e;
    }
    this.end(start, o);
    return this.len - start;
  }

  /** REPORT: `err` 0 = delivered; partition and offset as librdkafka reported them. */
  report(id: number, err: number, partition: number, offset: number, message: string): void {
    this.ensure(32 + message.length * 3);
    const start = this.len;
    let o = this.begin(FRAME.REPORT);
    o = this.u32(o, id >>> 0);
    o = this.u32(o, err | 0);
    o = this.u32(o, partition | 0);
    o = this.i64(o, offset);
    o = this.str16(o, message.length > 1000 ? message.slice(0, 1000) : message, 'message');
    this.end(start, o);
  }

  /** TXN_REPORT: one partition/offset per record (in order) when committed. */
  txnReport(id: number, err: number, message: string, partitions: ArrayLike<number>, offsets: ArrayLike<number>): void {
    const n = err === 0 ? partitions.length : 0;
    this.ensure(24 + message.length * 3 + n * 12);
    const start = this.len;
    let o = this.begin(FRAME.TXN_REPORT);
    o = this.u32(o, id >>> 0);
    o = this.u32(o, err | 0);
    o = this.str16(o, message.length > 1000 ? message.slice(0, 1000) : message, 'message');
    o = this.u32(o, n);
    for (let i = 0; i < n; i++) {
      o = this.u32(o, (partitions[i] as number) | 0);
      o = this.i64(o, offsets[i] as number);
    }
    this.end(start, o);
  }

  status(s: ProducerStatus): void {
    this.ensure(STATUS_BODY_BYTES + 8);
    const start = this.len;
    let o = this.begin(FRAME.STATUS);
    let flags = 0;
    if (s.brokerUp) flags |= SF_BROKER_UP;
    if (s.kafkaConnected) flags |= SF_KAFKA_CONNECTED;
    if (s.txnReady) flags |= SF_TXN_READY;
    if (s.shuttingDown) flags |= SF_SHUTTING_DOWN;
    if (s.final) flags |= SF_FINAL;
    o = this.u8(o, flags);
    o = this.u32(o, s.queueMessages);
    o = this.u64(o, s.queueBytes);
    o = this.u32(o, s.queueMaxMessages);
    o = this.u64(o, s.queueMaxBytes);
    o = this.u64(o, s.delivered);
    o = this.u64(o, s.failed);
    o = this.u64(o, s.queueFull);
    o = this.u32(o, Math.min(0xffffffff, Math.round(s.deliveredPerSec)));
    o = this.u64(o, s.connReceived);
    o = this.u64(o, s.connFfDelivered);
    o = this.u64(o, s.connFfFailed);
    o = this.u64(o, s.connFfUnknown);
    this.end(start, o);
  }
}

// ---------------------------------------------------------------- decoding

/**
 * Reassembles frames from socket reads and calls `onFrame(type, buf, start, end)` for each
 * complete one, `buf[start, end)` being the body. Complete frames inside a read are handed
 * out in place (no copy); only a frame split across reads is copied, once, into a buffer the
 * reader keeps. Throws FrameError on a length outside 1..maxFrameBytes.
 */
export class FrameReader {
  private acc: Buffer = Buffer.allocUnsafe(0);
  private accLen = 0;

  /**
   * `onRun`, when given, is offered each run of frames that starts with a complete `PRODUCE`
   * frame in a read (`buf[start, end)`, frames from `start`): it takes what it can at once
   * and returns where it stopped (`start` = nothing taken: the frame goes to `onFrame`).
   */
  constructor(
    private readonly onFrame: (type: number, buf: Buffer, start: number, end: number) => void,
    private readonly maxFrameBytes = MAX_FRAME_BYTES,
    private readonly onRun: ((buf: Buffer, start: number, end: number) => number) | null = null,
  ) {}

  /** Bytes held of an incomplete frame. */
  get buffered(): number {
    return this.accLen;
  }

  private checkLength(n: number): void {
    if (n < 1 || n > this.maxFrameBytes) throw new FrameError(`bad frame length ${n} (1..${this.maxFrameBytes})`);
  }

  private hold(src: Buffer, from: number, to: number, frameBytes: number): void {
    const need = this.accLen + (to - from);
    const want = Math.max(need, frameBytes);
    if (this.acc.length < want) {
      const next = Buffer.allocUnsafe(Math.max(want, 256));
      this.acc.copy(next, 0, 0, this.accLen);
      this.acc = next;
    }
    src.copy(this.acc, this.accLen, from, to);
    this.accLen = need;
  }

  push(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    if (this.accLen > 0) {
      // Finish the frame that the previous read split.
      if (this.accLen < LENGTH_BYTES) {
        const take = Math.min(LENGTH_BYTES - this.accLen, n);
        this.hold(chunk, 0, take, 0);
        off = take;
        if (this.accLen < LENGTH_BYTES) return;
      }
      const len = this.acc.readUInt32LE(0);
      this.checkLength(len);
      const total = LENGTH_BYTES + len;
      const take = Math.min(total - this.accLen, n - off);
      this.hold(chunk, off, off + take, total);
      off += take;
      if (this.accLen < total) return;
      this.accLen = 0;
      const acc = this.acc;
      this.onFrame(acc[LENGTH_BYTES] as number, acc, FRAME_HEADER_BYTES, total);
      if (acc.length > 4 * 1024 * 1024) this.acc = Buffer.allocUnsafe(0);
    }
    const onRun = this.onRun;
    while (n - off >= LENGTH_BYTES) {
      const len = chunk.readUInt32LE(off);
      this.checkLength(len);
      const end = off + LENGTH_BYTES + len;
      if (end > n) break;
      if (onRun !== null && chunk[off + LENGTH_BYTES] === FRAME.PRODUCE) {
        const to = onRun(chunk, off, n);
        if (to !== off) {
          off = to;
          continue;
        }
      }
      this.onFrame(chunk[off + LENGTH_BYTES] as number, chunk, off + FRAME_HEADER_BYTES, end);
      off = end;
    }
    if (off < n) {
      const total = n - off >= LENGTH_BYTES ? LENGTH_BYTES + chunk.readUInt32LE(off) : 0;
      this.hold(chunk, off, n, total);
    }
  }
}

function need(pos: number, n: number, end: number): void {
  if (pos + n > end) throw new FrameError('truncated frame');
}
function rdU32(b: Buffer, o: number): number {
  return ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) + (b[o + 3] as number) * 0x1000000;
}
function rdI32(b: Buffer, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24);
}
function rdU16(b: Buffer, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8);
}
function rdU64(b: Buffer, o: number): number {
  return rdU32(b, o) + rdU32(b, o + 4) * TWO_32;
}
function rdI64(b: Buffer, o: number): number {
  return rdU32(b, o) + rdI32(b, o + 4) * TWO_32;
}

export interface Hello {
  readonly version: number;
  readonly workerId: number;
}

export function decodeHello(b: Buffer, s: number, e: number): Hello {
  need(s, 6, e);
  return { version: rdU16(b, s), workerId: rdU32(b, s + 2) };
}

/** The binding's header shape: one object per header, `{ [name]: value }`. */
export type DecodedHeader = Record<string, Buffer>;

/** A decoded record, reused from frame to frame (producer side). */
export class DecodedRecord {
  id = 0;
  topic = '';
  /** -1 = not given. */
  partition = -1;
  hashKey = false;
  /** RF_UNORDERED: may take the fire-and-forget path (only when id is 0). */
  unordered = false;
  /** RF_FF_ORDERED: may take the native fire-and-forget client (only when id is 0). */
  ffOrdered = false;
  /** 0 = now. */
  timestamp = 0;
  key: Buffer | null = null;
  value: Buffer | null = null;
  headers: DecodedHeader[] | null = null;
  /** Key + value bytes (queue byte accounting, as librdkafka's delivery report can recount them). */
  bytes = 0;
}

// Last topic decoded: topics repeat, so most records reuse the string instead of decoding it.
const topicCache = Buffer.alloc(256);
let topicCacheLen = -1;
let topicCacheStr = '';

function decodeTopic(b: Buffer, s: number, n: number): string {
  if (n === topicCacheLen) {
    let i = 0;
    while (i < n && b[s + i] === topicCache[i]) i++;
    if (i === n) return topicCacheStr;
  }
  const t = b.toString('utf8', s, s + n);
  if (n <= topicCache.length) {
    b.copy(topicCache, 0, s, s + n);
    topicCacheLen = n;
    topicCacheStr = t;
  }
  return t;
}

const REQUEST_ID_NAME = Buffer.from('x-request-id', 'latin1');

/** Whether the `n` bytes at `p` spell x-request-id. */
function isRequestIdName(b: Buffer, p: number, n: number): boolean {
  if (n !== REQUEST_ID_NAME.length) return false;
  for (let i = 0; i < n; i++) if (b[p + i] !== REQUEST_ID_NAME[i]) return false;
  return true;
}

/** Decodes one record starting at `p` into `out`; returns the position after it. */
export function decodeRecord(b: Buffer, p: number, e: number, out: DecodedRecord): number {
  need(p, 4 + 1 + 8 + 2, e);
  const partition = rdI32(b, p);
  const flags = b[p + 4] as number;
  out.timestamp = rdU64(b, p + 5);
  const tl = rdU16(b, p + 13);
  p += 15;
  need(p, tl, e);
  out.topic = decodeTopic(b, p, tl);
  p += tl;
  out.partition = partition < 0 ? -1 : partition;
  out.hashKey = (flags & RF_HASH_KEY) !== 0;
  out.unordered = (flags & RF_UNORDERED) !== 0;
  out.ffOrdered = (flags & RF_FF_ORDERED) !== 0;
  need(p, 4, e);
  const kl = rdU32(b, p);
  p += 4;
  need(p, kl, e);
  out.key = (flags & RF_KEY_NULL) !== 0 ? null : b.subarray(p, p + kl);
  p += kl;
  need(p, 2, e);
  const hn = rdU16(b, p);
  p += 2;
  let headers: DecodedHeader[] | null = null;
  if (hn > 0) {
    headers = new Array<DecodedHeader>(hn);
    for (let i = 0; i < hn; i++) {
      need(p, 2, e);
      const nl = rdU16(b, p);
      p += 2;
      need(p, nl + 4, e);
      const rid = isRequestIdName(b, p, nl);
      const name = rid ? '' : b.toString('utf8', p, p + nl);
      p += nl;
      const vl = rdU32(b, p);
      p += 4;
      need(p, vl, e);
      const v = b.subarray(p, p + vl);
      // x-request-id is on nearly every record: a literal with a constant key takes V8's fast
      // path, a computed key a runtime call, which showed in the producer's profile.
      headers[i] = rid ? { 'x-request-id': v } : { [name]: v };
      p += vl;
    }
  }
  out.headers = headers;
  need(p, 4, e);
  const vl = rdU32(b, p);
  p += 4;
  need(p, vl, e);
  if ((flags & RF_VALUE_NULL) !== 0) {
    out.value = null;
  } else if ((flags & RF_EVENT) !== 0) {
    // A request event's binary fields: what goes to Kafka is its JSON.
    out.value = formatEventJson(b, p, p + vl);
    if (out.value === null) throw new FrameError('malformed request event');
  } else {
    out.value = b.subarray(p, p + vl);
  }
  p += vl;
  out.bytes = kl + vl;
  return p;
}

/** PRODUCE body into `out`. */
export function decodeProduce(b: Buffer, s: number, e: number, out: DecodedRecord): void {
  need(s, 4, e);
  out.id = rdU32(b, s);
  const p = decodeRecord(b, s + 4, e, out);
  if (p !== e) throw new FrameError('trailing bytes in PRODUCE');
}

/**
 * PRODUCE_TXN body: calls `onRecord(rec, index)` for each record (the same `out` object each
 * time, with views into `b`); returns the request id.
 */
export function decodeProduceTxn(
  b: Buffer,
  s: number,
  e: number,
  out: DecodedRecord,
  onRecord: (rec: DecodedRecord, index: number, count: number) => void,
): number {
  need(s, 8, e);
  const id = rdU32(b, s);
  const count = rdU32(b, s + 4);
  if (count === 0 || count > MAX_TXN_RECORDS) throw new FrameError(`bad transaction record count ${count}`);
  let p = s + 8;
  for (let i = 0; i < count; i++) {
    p = decodeRecord(b, p, e, out);
    out.id = id;
    onRecord(out, i, count);
  }
  if (p !== e) throw new FrameError('trailing bytes in PRODUCE_TXN');
  return id;
}

/** A decoded REPORT, reused from frame to frame (link side). */
export class DecodedReport {
  id = 0;
  err = 0;
  partition = -1;
  /** Exact while below 2^53 (9e15 records in one partition). */
  offset = -1;
  message = '';
}

export function decodeReport(b: Buffer, s: number, e: number, out: DecodedReport): void {
  need(s, 22, e);
  out.id = rdU32(b, s);
  out.err = rdI32(b, s + 4);
  out.partition = rdI32(b, s + 8);
  out.offset = rdI64(b, s + 12);
  const ml = rdU16(b, s + 20);
  need(s + 22, ml, e);
  out.message = ml === 0 ? '' : b.toString('utf8', s + 22, s + 22 + ml);
  if (s + 22 + ml !== e) throw new FrameError('trailing bytes in REPORT');
}

export interface TxnReport {
  readonly id: number;
  readonly err: number;
  readonly message: string;
  /** One per record, in order (empty when err != 0). */
  readonly partitions: Int32Array;
  readonly offsets: Float64Array;
}

export function decodeTxnReport(b: Buffer, s: number, e: number): TxnReport {
  need(s, 10, e);
  const id = rdU32(b, s);
  const err = rdI32(b, s + 4);
  const ml = rdU16(b, s + 8);
  let p = s + 10;
  need(p, ml + 4, e);
  const message = b.toString('utf8', p, p + ml);
  p += ml;
  const n = rdU32(b, p);
  p += 4;
  need(p, n * 12, e);
  const partitions = new Int32Array(n);
  const offsets = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    partitions[i] = rdI32(b, p);
    offsets[i] = rdI64(b, p + 4);
    p += 12;
  }
  if (p !== e) throw new FrameError('trailing bytes in TXN_REPORT');
  return { id, err, message, partitions, offsets };
}

/**
 * What the producer tells each link, every STATUS interval and on change. Global fields
 * describe the producer process; `conn*` fields count this connection's records only, and
 * `connFf*` only its fire-and-forget ones (id 0: the link learns their outcome nowhere else).
 * Fire-and-forget records are settled per epoch (docs/kafka.md, "Fire-and-forget records"):
 * `connFfUnknown` counts those of an epoch in which some records of several links failed
 * without saying whose; the producer-wide `delivered`/`failed` stay exact.
 */
export class ProducerStatus {
  /** The producer reached a broker recently (connected and not reported down). */
  brokerUp = false;
  /** The Kafka client has connected at least once (before that, records wait in the producer). */
  kafkaConnected = false;
  txnReady = false;
  shuttingDown = false;
  final = false;
  /** Records taken and not yet reported (librdkafka's queue plus records waiting for metadata). */
  queueMessages = 0;
  queueBytes = 0;
  queueMaxMessages = 0;
  queueMaxBytes = 0;
  delivered = 0;
  failed = 0;
  /** Of `failed`: refused with ERR__QUEUE_FULL. */
  queueFull = 0;
  deliveredPerSec = 0;
  connReceived = 0;
  connFfDelivered = 0;
  connFfFailed = 0;
  connFfUnknown = 0;
}

const STATUS_BODY_BYTES = 1 + 4 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 8 + 8 + 8;

export function decodeStatus(b: Buffer, s: number, e: number, out: ProducerStatus): void {
  if (e - s !== STATUS_BODY_BYTES) throw new FrameError(`STATUS body of ${e - s} bytes, expected ${STATUS_BODY_BYTES}`);
  const f = b[s] as number;
  out.brokerUp = (f & SF_BROKER_UP) !== 0;
  out.kafkaConnected = (f & SF_KAFKA_CONNECTED) !== 0;
  out.txnReady = (f & SF_TXN_READY) !== 0;
  out.shuttingDown = (f & SF_SHUTTING_DOWN) !== 0;
  out.final = (f & SF_FINAL) !== 0;
  let p = s + 1;
  out.queueMessages = rdU32(b, p);
  out.queueBytes = rdU64(b, p + 4);
  out.queueMaxMessages = rdU32(b, p + 12);
  out.queueMaxBytes = rdU64(b, p + 16);
  p += 24;
  out.delivered = rdU64(b, p);
  out.failed = rdU64(b, p + 8);
  out.queueFull = rdU64(b, p + 16);
  out.deliveredPerSec = rdU32(b, p + 24);
  p += 28;
  out.connReceived = rdU64(b, p);
  out.connFfDelivered = rdU64(b, p + 8);
  out.connFfFailed = rdU64(b, p + 16);
  out.connFfUnknown = rdU64(b, p + 24);
}
