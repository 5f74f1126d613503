/**
 * The main librdkafka client: connected in a retry loop at start, it produces every record
 * that neither fire-and-forget client takes, one delivery report each (the opaque is link
 * number * 2^32 + record id), and is replaced when it is stuck: a fatal error, or nothing
 * delivered for the wedge window while the broker answers and its records time out
 * (docs/kafka.md, "A wedged or failed client"). A replaced client keeps reporting what it
 * holds, then goes.
 *
 * Must never: drop a replaced client before its records have their reports, swap in a
 * replacement that did not connect, or replace the client while shutting down.
 */
import { wedgedAfterMs, type KafkaConfig, type LibrdkafkaConfig } from '../../shared/kafka-config';
import { KERR } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import type { BrokerState } from './broker';
import { disconnectQuietly, flushQuietly, type DeliveryReport, type KafkaClients, type LibrdKafkaError, type Producer } from './kafka-client';
import type { Ledger } from './ledger';
import type { PartitionCounts } from './metadata';
import type { RecordFields } from './records';
import { TWO_32, backoff, errCode, errText, retryPause, sleep, type StopFlag } from './util';

/** Timed-out records before the main client can count as wedged (see wedgedAfterMs). */
const WEDGED_MIN_TIMEOUTS = 3;
/** A replaced client gets message.timeout.ms plus this to report its records. */
const RETIRE_GRACE_MS = 5000;

export interface MainClientDeps {
  readonly cfg: KafkaConfig;
  readonly conf: LibrdkafkaConfig;
  readonly log: Logger;
  readonly clients: KafkaClients;
  readonly ledger: Ledger;
  readonly broker: BrokerState;
  readonly counts: PartitionCounts;
  readonly stop: StopFlag;
  /** The first connection: records that waited for it go now, and the fire-and-forget clients start. */
  readonly onConnected: () => void;
}

/** The wedge check's memory: the last delivery, the timeouts since, the replacements that did not help. */
class WedgeWatch {
  /** The last delivered record (or the broker's return). */
  okAt = 0;
  /** Records that timed out since then. */
  timeouts = 0;
  /** Replacements since the last delivery (the wait doubles with each). */
  replacements = 0;

  delivered(now: number): void {
    this.okAt = now;
    this.timeouts = 0;
    this.replacements = 0;
  }

  /** A new window (broker back, client replaced): the count of replacements stays. */
  restart(now: number): void {
    this.okAt = now;
    this.timeouts = 0;
  }

  wedged(now: number, messageTimeoutMs: number): boolean {
    return this.timeouts >= WEDGED_MIN_TIMEOUTS && now - this.okAt >= wedgedAfterMs(messageTimeoutMs, this.replacements);
  }
}

export class MainClient {
  producer: Producer | null = null;
  /** Fire-and-forget records (id 0) it holds: ordered ones switch to the native client only at 0. */
  ffInFlight = 0;
  /** Replacements so far (sluice_kafka_client_replacements_total). */
  replacements = 0;
  private replacing = false;
  private readonly wedge = new WedgeWatch();
  /** Replaced clients still reporting their records. */
  private readonly retired = new Set<Producer>();

  constructor(private readonly d: MainClientDeps) {}

  /** Every client that may still hold records of the main path (for shutdown's disconnect). */
  get allProducers(): (Producer | null)[] {
    return [this.producer, ...this.retired];
  }

  /** The broker is reachable again: the wedge window starts over. */
  brokerBack(): void {
    this.wedge.okAt = Date.now();
  }

  /** Connects in the background (retrying with back-off until shutdown). */
  async connectLoop(): Promise<void> {
    const { cfg, log, ledger, broker } = this.d;
    for (let attempt = 0; !this.d.stop.stopping; attempt++) {
      const p = this.d.clients.create(this.d.conf, this.onDelivery, 'producer');
      try {
        await this.d.clients.connect(p);
      } catch (e) {
        await retryPause(log, 'cannot reach Kafka; retrying', attempt, e, Math.min(2000, backoff(attempt)), { brokers: cfg.brokers });
        continue;
      }
      if (this.d.stop.stopping && ledger.queued === 0) {
        p.disconnect(() => undefined);
        return;
      }
      this.producer = p;
      broker.connected = true;
      log.info('connected to Kafka', { brokers: cfg.brokers, attempts: attempt + 1 });
      broker.setUp(true);
      this.d.onConnected();
      return;
    }
  }

  produce(connNo: number, id: number, r: RecordFields, partition: number): void {
    const p = this.producer as Producer;
    try {
      p.produce(r.topic, partition, r.value, r.key, r.timestamp, connNo * TWO_32 + id, r.headers ?? undefined);
    } catch (e) {
      this.d.ledger.refused(connNo, id, partition, r.bytes, e);
      return;
    }
    if (id === 0) this.ffInFlight++;
  }

  private readonly onDelivery = (err: LibrdKafkaError | null, r: DeliveryReport): void => {
    const op = r.opaque as number;
    const connNo = Math.floor(op / TWO_32);
    const id = op - connNo * TWO_32;
    const bytes = r.size + (r.key == null ? 0 : r.key.length);
    if (id === 0) this.ffInFlight--;
    if (err) {
      if (err.code === KERR.UNKNOWN_PARTITION) this.d.counts.forget(r.topic);
      else if (err.code === KERR.MSG_TIMED_OUT) this.wedge.timeouts++;
      this.d.ledger.outcome(connNo, id, err.code, r.partition, -1, err.message, bytes);
    } else {
      if (!this.d.broker.up) this.d.broker.setUp(true);
      this.wedge.delivered(Date.now());
      this.d.ledger.outcome(connNo, id, 0, r.partition, r.offset, '', bytes);
    }
  };

  /**
   * Each tick: a client that delivered nothing for the wedge window while the broker
   * answered (its records time out) is replaced. The broker's return restarts the window.
   */
  checkWedged(now: number): void {
    if (this.replacing || this.d.stop.stopping || !this.d.broker.connected || !this.d.broker.up || this.producer === null) return;
    if (!this.wedge.wedged(now, this.d.cfg.messageTimeoutMs)) return;
    this.wedge.replacements++;
    void this.replace(`nothing delivered for ${now - this.wedge.okAt} ms while the broker answers; ${this.wedge.timeouts} records timed out`);
  }

  /**
   * A new client takes over (connected first; if it cannot connect the old one stays); the
   * old one reports what it holds (delivered, or failed by message.timeout.ms) and goes.
   */
  async replace(reason: string): Promise<void> {
    if (this.replacing || this.d.stop.stopping) return;
    this.replacing = true;
    try {
      this.d.log.warn('replacing the Kafka client', { reason, replacements: this.replacements });
      const p = this.d.clients.create(this.d.conf, this.onDelivery, 'producer');
      try {
        await this.d.clients.connect(p);
      } catch (e) {
        disconnectQuietly(p);
        this.d.log.warn('the replacement Kafka client did not connect; the old one stays', { code: errCode(e), reason: errText(e) });
        return;
      }
      if (this.d.stop.stopping) {
        disconnectQuietly(p);
        return;
      }
      const old = this.producer;
      this.producer = p;
      this.replacements++;
      this.wedge.restart(Date.now());
      if (old !== null) void this.retire(old);
    } finally {
      this.replacing = false;
    }
  }

  /** Flushes a replaced client until its records have their reports, then disconnects it. */
  private async retire(p: Producer): Promise<void> {
    this.retired.add(p);
    await flushQuietly(p, this.d.cfg.messageTimeoutMs + RETIRE_GRACE_MS);
    // The last reports reach JavaScript a few turns after the flush.
    await sleep(100);
    this.retired.delete(p);
    disconnectQuietly(p);
  }
}
