/**
 * The JavaScript fire-and-forget clients: the production path for unordered records (request
 * events) when the native client is off (kafka.nativeFireAndForget false) or cannot be made
 * (the addon cannot find the Kafka client's librdkafka, for one), and the reference the
 * integration tests hold the native client to. Two clients with `delivery.report.only.error`,
 * used in turn: a delivered record costs no report into JavaScript. Each client's records
 * form an *epoch*; when the other client takes over, the epoch is flushed, and once
 * librdkafka's queue for it is empty its records are settled: the error reports counted
 * failed, the rest delivered (docs/kafka.md, "The JavaScript clients").
 *
 * Must never: take a record someone waits for or an ordered one (epochs keep no order
 * against other records nor across epochs), or settle an epoch before its queue is empty
 * and its error reports have reached JavaScript.
 */
import type { KafkaConfig, LibrdkafkaConfig } from '../../shared/kafka-config';
import { KERR } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import { disconnectQuietly, fireAndForgetConf, type DeliveryReport, type KafkaClients, type LibrdKafkaError, type Producer } from './kafka-client';
import type { Ledger } from './ledger';
import type { Links } from './links';
import type { PartitionCounts } from './metadata';
import type { RecordFields } from './records';
import { backoff, retryPause, type StopFlag } from './util';

/** A client's flush waits in steps this long (to notice a shutdown deadline). */
const FF_FLUSH_STEP_MS = 1000;
/**
 * Event-loop turns without a new error report after a flush before an epoch is settled: the
 * client hands reports to JavaScript at most 100 per turn, and all of them were queued
 * before the flush completed (librdkafka counts a record queued until its report was taken).
 */
const FF_QUIET_TURNS = 2;

/**
 * The fire-and-forget records produced into one client between two turns: settled together
 * once the client's queue is empty.
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

export interface EpochDeps {
  readonly cfg: KafkaConfig;
  readonly conf: LibrdkafkaConfig;
  readonly log: Logger;
  readonly clients: KafkaClients;
  readonly ledger: Ledger;
  readonly links: Links;
  readonly counts: PartitionCounts;
  readonly stop: StopFlag;
}

export class EpochClients {
  /** None until both are connected. */
  private clients: FfClient[] = [];
  /** The one taking records (null: none, the main client takes them). */
  private current: FfClient | null = null;
  private starting = false;
  /** A settle gives up waiting past this (shutdown's flush deadline). */
  private deadline = Number.POSITIVE_INFINITY;

  constructor(private readonly d: EpochDeps) {}

  /** Whether an unordered fire-and-forget record goes here now. */
  get taking(): boolean {
    return this.current !== null;
  }

  get producers(): Producer[] {
    return this.clients.map((c) => c.producer);
  }

  /**
   * Connects the two clients (retrying with back-off); until both are up, fire-and-forget
   * records go to the main client with a report each, as sync ones do.
   */
  async start(): Promise<void> {
    if (this.starting || this.clients.length > 0) return;
    this.starting = true;
    try {
      for (let attempt = 0; !this.d.stop.stopping; attempt++) {
        const made: FfClient[] = [];
        try {
          for (const name of ['ff-producer-a', 'ff-producer-b']) {
            const c: FfClient = { name, producer: null as unknown as Producer, epoch: null, settling: null };
            (c as { producer: Producer }).producer = this.d.clients.create(fireAndForgetConf(this.d.cfg, this.d.conf, true), (err, r) => this.onDelivery(c, err, r), name);
            made.push(c);
            await this.d.clients.connect(c.producer);
          }
        } catch (e) {
          for (const c of made) disconnectQuietly(c.producer);
          await retryPause(this.d.log, 'fire-and-forget clients not connected; retrying', attempt, e, backoff(attempt));
          continue;
        }
        if (this.d.stop.stopping) {
          for (const c of made) c.producer.disconnect(() => undefined);
          return;
        }
        this.clients = made;
        this.current = made[0] as FfClient;
        this.d.log.debug('fire-and-forget clients connected');
        return;
      }
    } finally {
      this.starting = false;
    }
  }

  /**
   * A fire-and-forget record into the current epoch. No opaque: with only error reports,
   * the client would never release the handle it keeps for a delivered record's opaque.
   */
  produce(connNo: number, r: RecordFields, partition: number): void {
    const c = this.current as FfClient;
    try {
      c.producer.produce(r.topic, partition, r.value, r.key, r.timestamp, undefined, r.headers ?? undefined);
    } catch (e) {
      this.d.ledger.refused(connNo, 0, partition, r.bytes, e);
      return;
    }
    const ep = (c.epoch ??= { records: 0, bytes: 0, failed: 0, perConn: new Map() });
    ep.records++;
    ep.bytes += r.bytes;
    ep.perConn.set(connNo, (ep.perConn.get(connNo) ?? 0) + 1);
  }

  /** Only failed records are reported here (delivery.report.only.error). */
  private onDelivery(c: FfClient, err: LibrdKafkaError | null, r: DeliveryReport): void {
    if (!err) return;
    if (err.code === KERR.UNKNOWN_PARTITION) this.d.counts.forget(r.topic);
    const ep = c.epoch;
    if (ep === null) {
      // Cannot happen: an epoch is settled only after its queue emptied and its reports came.
      this.d.log.error('error report for a settled fire-and-forget epoch', { client: c.name, code: err.code });
      return;
    }
    ep.failed++;
  }

  /** Each tick: the idle client takes over and the current epoch is settled. */
  rotate(): void {
    const cur = this.current;
    if (cur === null || cur.epoch === null) return;
    const next = this.clients.find((c) => c !== cur);
    // The other client still settles its epoch: the current one grows until the next tick.
    if (next === undefined || next.epoch !== null) return;
    this.current = next;
    void this.settle(cur);
  }

  /**
   * Shutdown: no new epochs (late records go to the main client); both clients are flushed
   * until `deadline`, alongside the main one. Resolves once both epochs are settled or given up.
   */
  settleAll(deadline: number): Promise<unknown> {
    this.current = null;
    this.deadline = deadline;
    return Promise.all(this.clients.map((c) => (c.epoch === null ? c.settling : this.settle(c))));
  }

  private settle(c: FfClient): Promise<void> {
    c.settling ??= this.doSettle(c).finally(() => {
      c.settling = null;
    });
    return c.settling;
  }

  /**
   * Flushes `c` until its queue is empty (librdkafka fails what it cannot deliver within
   * message.timeout.ms, so this ends), lets the error reports reach JavaScript, then counts
   * the epoch. Past the deadline (shutdown) it gives up: the records stay undelivered.
   */
  private async doSettle(c: FfClient): Promise<void> {
    for (;;) {
      const step = Math.max(1, Math.min(FF_FLUSH_STEP_MS, this.deadline - Date.now()));
      const err = await new Promise<LibrdKafkaError | null>((resolve) => {
        try {
          c.producer.flush(step, (e) => resolve(e ?? null));
        } catch (e) {
          resolve(e as LibrdKafkaError);
        }
      });
      if (err === null) break;
      if (Date.now() >= this.deadline || !c.producer.isConnected()) return;
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
    if (ep !== null) this.count(ep);
  }

  /**
   * Counts an epoch: producer-wide exactly; per link exactly when none, all, or only one
   * link's records failed, else the link's records of the epoch are `unknown` to it.
   */
  private count(ep: FfEpoch): void {
    this.d.ledger.ffSettledTotal(ep.records, ep.failed, ep.bytes);
    for (const [connNo, n] of ep.perConn) {
      const conn = this.d.links.get(connNo);
      if (conn === undefined) continue; // the link is gone: its worker counts the records as unknown
      if (ep.failed === 0) {
        this.d.ledger.ffSettledOn(conn, n, 0, 0);
      } else if (ep.failed === ep.records || ep.perConn.size === 1) {
        const f = Math.min(n, ep.failed);
        this.d.ledger.ffSettledOn(conn, n - f, f, 0);
      } else {
        this.d.ledger.ffSettledOn(conn, 0, 0, n);
      }
    }
    if (ep.failed > 0) this.d.log.debug('fire-and-forget epoch settled with failures', { records: ep.records, failed: ep.failed, links: ep.perConn.size });
  }
}
