/**
 * The producer's accounting: every record a link hands over is counted taken once and
 * settled once (delivered or failed), producer-wide and on its link; a sync record's REPORT
 * is written here, with its outcome (docs/kafka.md, "Backpressure and loss accounting").
 *
 * Must never: produce, hold records, or count a record's outcome twice (outcome() and the
 * bulk ffSettled*() are the only places a taken record is settled).
 */
import { KERR } from '../../shared/kafka-frames';
import type { Conn, Links } from './links';
import { errCode, errText } from './util';

export class Ledger {
  received = 0;
  delivered = 0;
  failed = 0;
  queueFull = 0;
  /** Taken and not settled: the producer's queue as STATUS reports it. */
  queued = 0;
  queuedBytes = 0;
  txnCommitted = 0;
  txnAborted = 0;
  /** Records settled in bulk (fire-and-forget epochs, the native client's counts): logged at shutdown. */
  ffSettled = 0;
  /** Deliveries per second, smoothed over the ticks (Retry-After estimates). */
  ratePerSec = 0;
  private rateDelivered = 0;
  private rateAt = Date.now();

  constructor(
    private readonly links: Links,
    /** A record was delivered in bulk: the broker answers. */
    private readonly onBulkDelivered: () => void,
  ) {}

  /** Each tick: the delivery rate. */
  updateRate(now: number): void {
    const dt = (now - this.rateAt) / 1000;
    if (dt <= 0) return;
    const inst = (this.delivered - this.rateDelivered) / dt;
    this.ratePerSec = this.ratePerSec === 0 ? inst : this.ratePerSec * 0.7 + inst * 0.3;
    this.rateDelivered = this.delivered;
    this.rateAt = now;
  }

  /** A record read from a link: counted as taken (its outcome will be counted once). */
  taken(conn: Conn, bytes: number, records = 1): void {
    conn.received += records;
    this.received += records;
    conn.pending += records;
    this.queued += records;
    this.queuedBytes += bytes;
  }

  /** The one place a taken record's outcome is counted and (for id != 0) reported. */
  outcome(connNo: number, id: number, err: number, partition: number, offset: number, message: string, bytes: number): void {
    this.queued--;
    this.queuedBytes -= bytes;
    if (err === 0) this.delivered++;
    else this.failed++;
    const conn = this.links.get(connNo);
    if (conn === undefined) return; // the link is gone: its worker counts the record as unknown
    conn.pending--;
    if (err === 0) conn.delivered++;
    else conn.failed++;
    if (id === 0) {
      if (err === 0) conn.ffDelivered++;
      else conn.ffFailed++;
    } else if (!conn.finished) {
      conn.writer.report(id, err, partition, offset, message);
      this.links.markDirty(conn);
    }
    if (conn.readEnded) this.links.maybeFinish(conn);
  }

  /** A client's produce() threw (queue full, unknown topic, ...): the record's outcome, now. */
  refused(connNo: number, id: number, partition: number, bytes: number, e: unknown): void {
    const code = errCode(e);
    if (code === KERR.QUEUE_FULL) this.queueFull++;
    this.outcome(connNo, id, code, partition, -1, errText(e), bytes);
  }

  /**
   * Fire-and-forget records settled in bulk (a JavaScript client's epoch, or the native
   * client's reports): the producer-wide counts.
   */
  ffSettledTotal(records: number, failed: number, bytes: number): void {
    const ok = records - failed;
    this.ffSettled += records;
    this.queued -= records;
    this.queuedBytes -= bytes;
    this.delivered += ok;
    this.failed += failed;
    if (ok > 0) this.onBulkDelivered();
  }

  /** A link's share of settled fire-and-forget records, then its STATUS (or its end). */
  ffSettledOn(conn: Conn, ok: number, failed: number, unknown: number): void {
    conn.pending -= ok + failed + unknown;
    conn.delivered += ok;
    conn.ffDelivered += ok;
    conn.failed += failed;
    conn.ffFailed += failed;
    conn.ffUnknown += unknown;
    if (conn.readEnded) this.links.maybeFinish(conn);
    else this.links.sendStatus(conn);
  }
}
