/**
 * Which client takes a record. A PRODUCE frame goes to the native fire-and-forget client
 * when that takes it; otherwise it is decoded and routed here: held (in order, bounded by the
 * queue limits) until the main client first connects, placed (a hash-partitioned record may
 * wait for its topic's partition count, metadata.ts), then produced by the native client (an
 * ordered fire-and-forget record after it took those over), the JavaScript fire-and-forget
 * clients (an unordered one, while they run), or the main client.
 *
 * Must never: let a record overtake an earlier one of its link that waits here, or hold a
 * view into a link's read buffer past the frame (held records are copies).
 */
import type { KafkaConfig } from '../../shared/kafka-config';
import { DecodedRecord, KERR, decodeProduce } from '../../shared/kafka-frames';
import type { EpochClients } from './epoch-clients';
import type { Ledger } from './ledger';
import type { Conn } from './links';
import type { MainClient } from './main-client';
import type { PartitionCounts } from './metadata';
import type { NativeFfClient } from './native-client';
import { hold, type HeldRecord, type RecordFields } from './records';
import { Fifo } from './util';

export interface RoutingDeps {
  readonly cfg: KafkaConfig;
  readonly ledger: Ledger;
  readonly counts: PartitionCounts;
  readonly main: MainClient;
  readonly native: NativeFfClient;
  readonly epochs: EpochClients;
}

export class RecordRouter {
  private readonly rec = new DecodedRecord();
  /** Records taken before the main client connected (FIFO; failed after message.timeout.ms). */
  private readonly waiting = new Fifo<HeldRecord>();
  private waitingBytes = 0;

  constructor(private readonly d: RoutingDeps) {}

  /** Records waiting for the main client's first connection. */
  get waitingRecords(): number {
    return this.waiting.length;
  }

  /** A PRODUCE frame's body. */
  produceFrame(conn: Conn, buf: Buffer, s: number, e: number): void {
    if (this.d.native.take(conn, buf, s, e)) return;
    decodeProduce(buf, s, e, this.rec);
    this.take(conn, this.rec);
  }

  /** A PRODUCE record: counted as taken, then produced, held, or refused at once. */
  private take(conn: Conn, r: DecodedRecord): void {
    const { cfg, ledger } = this.d;
    ledger.taken(conn, r.bytes);
    if (this.d.main.producer === null || this.waiting.length > 0) {
      const cap = cfg.queueMaxMessages;
      if (this.waiting.length >= cap || this.waitingBytes + r.bytes > cfg.queueMaxKBytes * 1024) {
        ledger.queueFull++;
        ledger.outcome(conn.no, r.id, KERR.QUEUE_FULL, -1, -1, 'Local: Queue full (waiting for Kafka)', r.bytes);
        return;
      }
      this.waiting.push(hold(conn.no, r, Date.now()));
      this.waitingBytes += r.bytes;
      return;
    }
    this.dispatch(conn.no, r, null);
  }

  /**
   * Chooses the partition (hash partitioning may need metadata first) and produces. `held`
   * is `r` itself when the record was held (it is not copied again if it must wait).
   */
  dispatch(connNo: number, r: RecordFields, held: HeldRecord | null): void {
    const part = this.d.counts.place(connNo, r, held);
    if (part === null) return;
    if (r.id === 0 && r.ffOrdered && this.d.native.takesOrdered) {
      this.d.native.produceOrdered(connNo, r, part);
      return;
    }
    if (r.id === 0 && r.unordered && this.d.epochs.taking) {
      this.d.epochs.produce(connNo, r, part);
      return;
    }
    this.d.main.produce(connNo, r.id, r, part);
  }

  /** The main client connected: what waited for it goes, in order. */
  drainWaiting(): void {
    while (this.waiting.length > 0) {
      const h = this.waiting.shift() as HeldRecord;
      this.waitingBytes -= h.bytes;
      this.dispatch(h.connNo, h, h);
    }
  }

  /** Records that waited for the main client longer than `limit` (message.timeout.ms) fail. */
  expire(now: number, limit: number): void {
    for (let h = this.waiting.peek(); h !== undefined && now - h.at >= limit; h = this.waiting.peek()) {
      this.waiting.shift();
      this.waitingBytes -= h.bytes;
      this.d.ledger.outcome(h.connNo, h.id, KERR.MSG_TIMED_OUT, -1, -1, 'Local: Message timed out (no connection to Kafka)', h.bytes);
    }
  }

  /** Shutdown: the waiting records never reached librdkafka; they fail. */
  failWaiting(): void {
    for (let h = this.waiting.shift(); h !== undefined; h = this.waiting.shift()) {
      this.waitingBytes -= h.bytes;
      this.d.ledger.outcome(h.connNo, h.id, KERR.PRODUCER_SHUTTING_DOWN, -1, -1, 'not produced: the producer shut down before Kafka was reachable', h.bytes);
    }
  }
}
