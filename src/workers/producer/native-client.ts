/**
 * The native fire-and-forget client (kafka.nativeFireAndForget, the default;
 * native/napi/src/librdkafka_ff.rs): a separate librdkafka client on the librdkafka the Kafka
 * client loaded, fed straight from a link's read buffer (one call per run of PRODUCE
 * frames), its every delivery report counted per link in native code and taken each tick.
 * It takes the fire-and-forget records marked unordered (request events) and, once it took
 * them over from the main client for good, the ordered ones of async-only routes
 * (docs/kafka.md, "Fire-and-forget records").
 *
 * Must never: take a record someone waits for (id != 0), take an ordered record before the
 * main client holds none of them (or hand one back to it after), or take a record while
 * records wait for the main client's first connection (they keep the link's order).
 */
import type { KafkaConfig, LibrdkafkaConfig } from '../../shared/kafka-config';
import { FRAME_HEADER_BYTES, FrameWriter, MAX_FRAME_BYTES, type KafkaHeader } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import { KAFKA_FF_ACCEPT_ORDERED, KAFKA_FF_ACCEPT_UNORDERED, KAFKA_FF_NOT_HANDLED, KAFKA_FF_REFUSED, loadNative, type KafkaFf } from '../../shared/native';
import { fireAndForgetConf, type ClientEvents, type LibrdKafkaError } from './kafka-client';
import type { Ledger } from './ledger';
import type { Conn, Links } from './links';
import type { PartitionCounts } from './metadata';
import type { RecordFields } from './records';

export interface NativeDeps {
  readonly cfg: KafkaConfig;
  readonly conf: LibrdkafkaConfig;
  readonly log: Logger;
  readonly ledger: Ledger;
  readonly links: Links;
  readonly events: ClientEvents;
  readonly counts: PartitionCounts;
  /** Whether records wait for the main client's first connection. */
  readonly recordsWaiting: () => boolean;
  /** Fire-and-forget records (id 0) the main client holds. */
  readonly mainFfInFlight: () => number;
  /** The main client, for a record the native client does not take after all. */
  readonly toMain: (connNo: number, r: RecordFields, partition: number) => void;
}

/**
 * Whether the PRODUCE body at `body` has id 0 (no report wanted): only those can take the
 * native client, so a sync record costs no call into it.
 */
function noReportWanted(buf: Buffer, body: number): boolean {
  return body + 4 <= buf.length && ((buf[body] as number) | (buf[body + 1] as number) | (buf[body + 2] as number) | (buf[body + 3] as number)) === 0;
}

export class NativeFfClient {
  private ff: KafkaFf | null = null;
  /** It takes RF_FF_ORDERED records (for good, once the main client held none). */
  private ordered = false;
  /** Frames encoded again for it (produceOrdered). */
  private readonly reencoder = new FrameWriter(4096);
  /** produceFrames()'s counts: records taken, their bytes. */
  private readonly runOut = new Float64Array(2);

  constructor(private readonly d: NativeDeps) {}

  get running(): boolean {
    return this.ff !== null;
  }

  /** Whether an ordered fire-and-forget record that reached JavaScript goes to it (produceOrdered). */
  get takesOrdered(): boolean {
    return this.ordered && this.ff !== null;
  }

  /**
   * Makes the client, on the same librdkafka and properties as the others. False when it
   * cannot be made (logged): the JavaScript fire-and-forget clients take its place.
   */
  start(): boolean {
    const props: string[] = [];
    for (const [k, v] of Object.entries(fireAndForgetConf(this.d.cfg, this.d.conf, false))) props.push(k, String(v));
    try {
      this.ff = new (loadNative().KafkaFf)(props);
      for (const [topic, c] of this.d.counts.known()) this.ff.setPartitionCount(topic, c.count);
    } catch (e) {
      this.d.log.error('native fire-and-forget client not available; using the JavaScript ones', { err: e });
      return false;
    }
    this.d.log.debug('native fire-and-forget client started');
    return true;
  }

  setPartitionCount(topic: string, count: number): void {
    this.ff?.setPartitionCount(topic, count);
  }

  /**
   * Which fire-and-forget records it may take now (KAFKA_FF_ACCEPT_*):
   * - unordered ones (events) unless records wait for the main client (they keep the link's
   *   order behind those);
   * - ordered ones (async-only routes) once it took over from the main client for good:
   *   from the first moment the main client holds none of this kind (nor the waiting
   *   list), so that no later record can overtake an earlier one.
   */
  private accept(): number {
    const idle = !this.d.recordsWaiting();
    if (!this.ordered && idle && this.d.mainFfInFlight() === 0) this.ordered = true;
    return (idle ? KAFKA_FF_ACCEPT_UNORDERED : 0) | (this.ordered ? KAFKA_FF_ACCEPT_ORDERED : 0);
  }

  /** A PRODUCE frame it took (true), or one for the JavaScript path (false). */
  take(conn: Conn, buf: Buffer, s: number, e: number): boolean {
    const ff = this.ff;
    if (ff === null || !noReportWanted(buf, s)) return false;
    const accept = this.accept();
    if (accept === 0) return false;
    const r = ff.produce(buf, s, e, conn.no, accept);
    if (r === KAFKA_FF_NOT_HANDLED) return false;
    if (r !== KAFKA_FF_REFUSED) {
      this.d.ledger.taken(conn, r);
      return true;
    }
    // Refused: counted as taken with no bytes (the client did not say how many), then failed.
    this.d.ledger.taken(conn, 0);
    this.refused(ff, conn.no, -1, 0);
    return true;
  }

  /**
   * A read's run of PRODUCE frames from `s`: it takes the fire-and-forget records among them
   * in one call (events arrive many a read); returns where it stopped, and the frame there
   * goes through the frame-by-frame path.
   */
  takeRun(conn: Conn, buf: Buffer, s: number, e: number): number {
    const ff = this.ff;
    if (ff === null || !conn.hello || !noReportWanted(buf, s + FRAME_HEADER_BYTES)) return s;
    const accept = this.accept();
    if (accept === 0) return s;
    const out = this.runOut;
    const to = ff.produceFrames(buf, s, e, conn.no, accept, MAX_FRAME_BYTES, out);
    const records = out[0] as number;
    if (records > 0) this.d.ledger.taken(conn, out[1] as number, records);
    return to;
  }

  /**
   * An ordered fire-and-forget record that reached JavaScript after it took over those (it
   * waited for Kafka or for its topic's partition count): it goes here too, or it could
   * overtake the records of its kind already here. Encoded again as a frame (rare: a topic's
   * first records), with its partition chosen.
   */
  produceOrdered(connNo: number, rec: RecordFields, partition: number): void {
    const ff = this.ff as KafkaFf;
    const hs: KafkaHeader[] = [];
    for (const h of rec.headers ?? []) for (const [n, v] of Object.entries(h)) hs.push([n, v]);
    const w = this.reencoder;
    w.truncate(0);
    const size = w.produce(0, { topic: rec.topic, partition, key: rec.key, value: rec.value, timestamp: rec.timestamp, headers: hs, ffOrdered: true });
    const frame = w.takeCopy();
    const r = ff.produce(frame, FRAME_HEADER_BYTES, size, connNo, KAFKA_FF_ACCEPT_ORDERED);
    if (r >= 0) return; // counted when taken; settled with its reports
    if (r === KAFKA_FF_REFUSED) {
      this.refused(ff, connNo, partition, rec.bytes);
      return;
    }
    // Not a record it takes (cannot happen for one encoded here): the main client.
    this.d.toMain(connNo, rec, partition);
  }

  /** It refused a record (lastError() says why): its outcome, now. */
  private refused(ff: KafkaFf, connNo: number, partition: number, bytes: number): void {
    const code = ff.lastError();
    this.d.ledger.refused(connNo, 0, partition, bytes, { code, message: ff.errorText(code) });
  }

  /**
   * Counts what it reported since the last call (each tick, and while shutting down), and
   * hands its errors, log lines and statistics on.
   */
  settle(): void {
    const ff = this.ff;
    if (ff === null) return;
    const o = ff.takeOutcomes();
    for (let i = 0; i + 4 < o.length; i += 5) {
      const ok = o[i + 1] as number;
      const failed = o[i + 2] as number;
      this.d.ledger.ffSettledTotal(ok + failed, failed, o[i + 3] as number);
      if (failed > 0) this.d.log.debug('fire-and-forget records failed', { failed, code: o[i + 4], reason: ff.errorText(o[i + 4] as number) });
      const conn = this.d.links.get(o[i] as number);
      // A link that is gone: its worker counts the records as unknown.
      if (conn !== undefined) this.d.ledger.ffSettledOn(conn, ok, failed, 0);
    }
    const lost = ff.takeDroppedEvents();
    if (lost > 0) this.d.log.warn('librdkafka errors and log lines dropped (more than 1000 between two ticks)', { client: 'ff-native', dropped: lost });
    for (const ev of ff.takeEvents()) {
      if (ev.kind === 'error') this.d.events.clientError({ code: ev.code, message: ev.message, isFatal: false } as LibrdKafkaError, 'ff-native');
      else this.d.events.clientLog({ severity: ev.code, fac: ev.fac, message: ev.message }, 'ff-native');
    }
    const stats = ff.takeStats();
    if (stats !== null) this.d.events.clientStats({ message: stats }, 'ff-native');
  }

  /** Shutdown: what it holds leaves at once (no linger). */
  startFlushing(): void {
    this.ff?.startFlushing();
  }

  get queueLength(): number {
    return this.ff?.outqLen() ?? 0;
  }

  /** Shutdown, last: fails what is left and destroys it. */
  close(): void {
    this.ff?.close(0);
    this.ff = null;
  }
}
