/**
 * Partition counts for `partitioner: hash` (jump consistent hash of the key's xxh3, see
 * partitions.ts): fetched from metadata, cached for PARTITION_COUNT_TTL_MS (refreshed in the
 * background while in use, dropped on an unknown-partition report), and the records that
 * wait for their topic's count, in arrival order, bounded by MAX_META_WAITING.
 *
 * Must never: produce (a record whose count arrives goes back through `redispatch`), or let a
 * record of a topic overtake an earlier one still waiting for that topic's count.
 */
import { KERR } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import type { LibrdKafkaError, Metadata, Producer } from './kafka-client';
import type { Ledger } from './ledger';
import { jumpConsistentHash, keyHasher } from './partitions';
import { hold, type HeldRecord, type RecordFields } from './records';
import { sleep } from './util';

const METADATA_TIMEOUT_MS = 5000;
const PARTITION_COUNT_TTL_MS = 60000;
/** Records waiting for a topic's partition count, over all topics. */
const MAX_META_WAITING = 10000;
const REFETCH_MS = 250;

export interface MetadataDeps {
  readonly log: Logger;
  readonly ledger: Ledger;
  /** The client background fetches ask (the main one). */
  readonly client: () => Producer | null;
  /** Any client that can answer (the main one, else the transactional one). */
  readonly anyClient: () => Producer | null;
  /** A record whose topic's count arrived, in order. */
  readonly redispatch: (h: HeldRecord) => void;
}

export class PartitionCounts {
  private readonly counts = new Map<string, { count: number; at: number }>();
  private readonly waiting = new Map<string, HeldRecord[]>();
  private waitingCount = 0;
  private readonly inFlight = new Set<string>();
  private readonly hashKey = keyHasher().hashKey;
  /** Every count learned or forgotten (0), for the native client's copy. */
  onCount: (topic: string, count: number) => void = () => undefined;

  constructor(private readonly d: MetadataDeps) {}

  /** Records waiting for a count, over all topics. */
  get waitingRecords(): number {
    return this.waitingCount;
  }

  /**
   * The partition of `r` (its own, or its key's place among the topic's partitions), or null
   * when it now waits for the count (or was refused: too many waiting).
   */
  place(connNo: number, r: RecordFields, held: HeldRecord | null): number | null {
    if (r.partition >= 0 || !r.hashKey || r.key === null) return r.partition;
    const known = this.counts.get(r.topic);
    const waiting = this.waiting.get(r.topic);
    if (known === undefined || waiting !== undefined) {
      // Unknown count (or records of this topic already waiting): keep the topic's order.
      if (this.waitingCount >= MAX_META_WAITING) {
        this.d.ledger.queueFull++;
        this.d.ledger.outcome(connNo, r.id, KERR.QUEUE_FULL, -1, -1, 'Local: Queue full (waiting for topic metadata)', r.bytes);
        return null;
      }
      const h = held ?? hold(connNo, r, Date.now());
      if (waiting === undefined) this.waiting.set(r.topic, [h]);
      else waiting.push(h);
      this.waitingCount++;
      this.fetch(r.topic);
      return null;
    }
    if (Date.now() - known.at > PARTITION_COUNT_TTL_MS) this.fetch(r.topic);
    return jumpConsistentHash(this.hashKey(r.key), known.count);
  }

  /** The key's partition among `count` (transactions place their records themselves). */
  hashPartition(key: Buffer, count: number): number {
    return jumpConsistentHash(this.hashKey(key), count);
  }

  /** Refreshes the counts older than the TTL (the native client places with them and never asks). */
  refreshStale(now: number): void {
    for (const [topic, c] of this.counts) if (now - c.at > PARTITION_COUNT_TTL_MS) this.fetch(topic);
  }

  /** Every known count (for a client that starts after some were learned). */
  known(): IterableIterator<[string, { count: number; at: number }]> {
    return this.counts.entries();
  }

  /** Fetches a topic's partition count (one request per topic at a time); retries while records wait. */
  fetch(topic: string): void {
    if (this.inFlight.has(topic)) return;
    const p = this.d.client();
    if (p === null) return;
    this.inFlight.add(topic);
    const done = (err: LibrdKafkaError | null, md: Metadata | undefined): void => {
      this.inFlight.delete(topic);
      const t = err ? undefined : md?.topics.find((x) => x.name === topic);
      const count = t?.partitions.length ?? 0;
      if (count > 0) this.set(topic, count);
      const list = this.waiting.get(topic);
      if (list === undefined) return;
      if (count === 0) {
        // Not known yet (broker down, or a topic being auto-created): the records keep waiting
        // until message.timeout.ms; ask again shortly.
        if (err) this.d.log.debug('no metadata for topic; retrying', { topic, code: err.code, reason: err.message });
        setTimeout(() => {
          if (this.waiting.has(topic)) this.fetch(topic);
        }, REFETCH_MS).unref();
        return;
      }
      this.waiting.delete(topic);
      this.waitingCount -= list.length;
      for (const h of list) this.d.redispatch(h);
    };
    try {
      p.getMetadata({ topic, allTopics: false, timeout: METADATA_TIMEOUT_MS }, done);
    } catch (e) {
      this.inFlight.delete(topic);
      this.d.log.debug('metadata request failed', { topic, err: e });
    }
  }

  /** A topic's partition count learned from metadata, for both paths (the native client places keyed records too). */
  private set(topic: string, count: number): void {
    this.counts.set(topic, { count, at: Date.now() });
    this.onCount(topic, count);
  }

  forget(topic: string): void {
    this.counts.delete(topic);
    this.onCount(topic, 0);
  }

  /** Promise form for transactions: the partition count of `topic`, bounded. */
  async count(topic: string, deadline: number): Promise<number> {
    for (;;) {
      const known = this.counts.get(topic);
      if (known !== undefined) return known.count;
      const p = this.d.anyClient();
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
          this.set(topic, count);
          return count;
        }
      }
      if (Date.now() >= deadline) return 0;
      await sleep(REFETCH_MS);
    }
  }

  /** Records that waited for a count longer than `limit` (message.timeout.ms) fail. */
  expire(now: number, limit: number): void {
    for (const [topic, list] of this.waiting) {
      let n = 0;
      while (n < list.length && now - (list[n] as HeldRecord).at >= limit) n++;
      if (n === 0) continue;
      for (const h of list.splice(0, n)) {
        this.waitingCount--;
        this.d.ledger.outcome(h.connNo, h.id, KERR.MSG_TIMED_OUT, -1, -1, `Local: Message timed out (no partition count for topic ${topic})`, h.bytes);
      }
      if (list.length === 0) this.waiting.delete(topic);
    }
  }

  /** Shutdown: the waiting records never reached librdkafka; they fail. */
  failWaiting(): void {
    for (const [, list] of this.waiting) {
      for (const h of list) this.d.ledger.outcome(h.connNo, h.id, KERR.PRODUCER_SHUTTING_DOWN, -1, -1, 'not produced: the producer shut down waiting for metadata', h.bytes);
    }
    this.waiting.clear();
    this.waitingCount = 0;
  }
}
