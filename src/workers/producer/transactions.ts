/**
 * Transactions (kafka.transactions): a second, transactional producer
 * (`transactional.id = sluice-<instance>-txn`) that runs one PRODUCE_TXN batch at a time:
 * begin, produce all, commit; abort on any error. Its report carries one partition and
 * offset per record when committed (docs/kafka.md, "Delivery and acknowledgement").
 *
 * Must never: run two transactions at once, report a batch before its commit or abort
 * settled, or take a batch while transactions are off (refused at once).
 */
import * as os from 'node:os';

import { transactionalId, type KafkaConfig, type LibrdkafkaConfig } from '../../shared/kafka-config';
import { DecodedRecord, KERR, decodeProduceTxn } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import { CONNECT_TIMEOUT_MS, call, disconnectQuietly, type DeliveryReport, type KafkaClients, type LibrdKafkaError, type Producer } from './kafka-client';
import type { Ledger } from './ledger';
import type { Conn, Links } from './links';
import type { PartitionCounts } from './metadata';
import { hold, type HeldRecord } from './records';
import { Fifo, backoff, errCode, errText, retryPause, waitFor, type StopFlag } from './util';

/** Transactional opaque = job sequence * 2^21 + record index (MAX_TXN_RECORDS < 2^21). */
const TXN_INDEX_SPAN = 2097152;

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

export interface TransactionDeps {
  readonly cfg: KafkaConfig;
  readonly conf: LibrdkafkaConfig;
  readonly log: Logger;
  readonly clients: KafkaClients;
  readonly ledger: Ledger;
  readonly links: Links;
  readonly counts: PartitionCounts;
  readonly stop: StopFlag;
}

/** The transactional producer's properties. */
export function txnConf(cfg: KafkaConfig, conf: LibrdkafkaConfig): LibrdkafkaConfig {
  return {
    ...conf,
    'transactional.id': transactionalId(cfg, os.hostname()),
    'transaction.timeout.ms': cfg.transactionTimeoutMs,
    'enable.idempotence': true,
    acks: 'all',
    'max.in.flight.requests.per.connection': 5,
  };
}

export class Transactions {
  producer: Producer | null = null;
  ready = false;
  /** A batch is running (shutdown waits for it). */
  busy = false;
  private starting = false;
  private readonly queue = new Fifo<TxnJob>();
  private seq = 0;
  private current: TxnInFlight | null = null;
  private readonly rec = new DecodedRecord();

  constructor(private readonly d: TransactionDeps) {}

  async start(): Promise<void> {
    if (this.starting) return;
    this.starting = true;
    try {
      for (let attempt = 0; !this.d.stop.stopping; attempt++) {
        const conf = txnConf(this.d.cfg, this.d.conf);
        const p = this.d.clients.create(conf, this.onDelivery, 'txn-producer');
        try {
          await this.d.clients.connect(p);
          await call((cb) => p.initTransactions(Math.max(CONNECT_TIMEOUT_MS, 10000), cb));
        } catch (e) {
          disconnectQuietly(p);
          await retryPause(this.d.log, 'transactional producer not ready; retrying', attempt, e, backoff(attempt));
          continue;
        }
        this.producer = p;
        this.ready = true;
        this.d.log.info('transactional producer ready', { transactionalId: conf['transactional.id'] });
        this.d.links.broadcastStatus();
        void this.run();
        return;
      }
    } finally {
      this.starting = false;
    }
  }

  /** A PRODUCE_TXN frame: queued as one job, or refused at once when transactions are off. */
  take(conn: Conn, buf: Buffer, s: number, e: number): void {
    const { ledger } = this.d;
    const records: HeldRecord[] = [];
    const now = Date.now();
    const id = decodeProduceTxn(buf, s, e, this.rec, (r) => {
      records.push(hold(conn.no, r, now));
    });
    conn.received += records.length;
    ledger.received += records.length;
    if (!this.d.cfg.transactions) {
      ledger.failed += records.length;
      conn.failed += records.length;
      conn.writer.txnReport(id, KERR.TXN_DISABLED, 'transactions are off (kafka.transactions)', [], []);
      this.d.links.markDirty(conn);
      return;
    }
    conn.pendingTxn++;
    this.queue.push({ connNo: conn.no, id, records, at: now });
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.busy || !this.ready) return;
    this.busy = true;
    try {
      for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift()) {
        await this.runOne(job);
        if (!this.ready) break;
      }
    } finally {
      this.busy = false;
    }
  }

  private async runOne(job: TxnJob): Promise<void> {
    const { cfg, ledger, links } = this.d;
    const p = this.producer as Producer;
    const n = job.records.length;
    const cur: TxnInFlight = {
      seq: ++this.seq,
      n,
      got: 0,
      firstErr: 0,
      firstErrMsg: '',
      partitions: new Int32Array(n).fill(-1),
      offsets: new Float64Array(n).fill(-1),
    };
    const timeout = cfg.transactionTimeoutMs;
    let err = 0;
    let msg = '';
    let begun = false;
    try {
      if (Date.now() - job.at > cfg.messageTimeoutMs) throw Object.assign(new Error('Local: Message timed out (waited for the transactional producer)'), { code: KERR.MSG_TIMED_OUT });
      const parts = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const r = job.records[i] as HeldRecord;
        parts[i] = r.partition;
        if (r.partition < 0 && r.hashKey && r.key !== null) {
          const count = await this.d.counts.count(r.topic, job.at + cfg.messageTimeoutMs);
          if (count === 0) throw Object.assign(new Error(`no partition count for topic ${r.topic}`), { code: KERR.UNKNOWN_TOPIC_OR_PART });
          parts[i] = this.d.counts.hashPartition(r.key, count);
        }
      }
      this.current = cur;
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
          this.d.log.error('aborting a transaction failed; restarting the transactional producer', { code: errCode(ae), reason: errText(ae) });
          this.restart();
        }
      }
      if ((e as LibrdKafkaError).isFatal === true) this.restart();
    } finally {
      this.current = null;
    }
    if (err === 0) {
      ledger.txnCommitted++;
      ledger.delivered += n;
    } else {
      ledger.txnAborted++;
      ledger.failed += n;
      this.d.log.debug('transaction aborted', { records: n, code: err, reason: msg });
    }
    const conn = links.get(job.connNo);
    if (conn === undefined) return;
    conn.pendingTxn--;
    if (err === 0) conn.delivered += n;
    else conn.failed += n;
    if (job.id !== 0 && !conn.finished) {
      conn.writer.txnReport(job.id, err, msg, cur.partitions, cur.offsets);
      links.markDirty(conn);
    }
    if (conn.readEnded) links.maybeFinish(conn);
  }

  private readonly onDelivery = (err: LibrdKafkaError | null, r: DeliveryReport): void => {
    const cur = this.current;
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

  private restart(): void {
    const p = this.producer;
    this.producer = null;
    this.ready = false;
    if (p !== null) {
      try {
        p.disconnect(5000, () => undefined);
      } catch {
        // already gone
      }
    }
    if (!this.d.stop.stopping) void this.start();
  }

  /** Batches waiting for a transactional producer that cannot start (broker down) fail past `limit`. */
  expire(now: number, limit: number): void {
    if (this.busy) return;
    const { ledger, links } = this.d;
    for (let job = this.queue.peek(); job !== undefined && now - job.at >= limit; job = this.queue.peek()) {
      this.queue.shift();
      ledger.failed += job.records.length;
      const conn = links.get(job.connNo);
      if (conn === undefined) continue;
      conn.pendingTxn--;
      conn.failed += job.records.length;
      if (job.id !== 0 && !conn.finished) {
        conn.writer.txnReport(job.id, KERR.MSG_TIMED_OUT, 'Local: Message timed out (the transactional producer is not ready)', [], []);
        links.markDirty(conn);
      }
      if (conn.readEnded) links.maybeFinish(conn);
    }
  }

  /** Shutdown: the batches still queued never began; they fail (the final STATUS follows). */
  failQueued(): void {
    for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift()) {
      const conn = this.d.links.get(job.connNo);
      this.d.ledger.failed += job.records.length;
      if (conn !== undefined) {
        conn.pendingTxn--;
        conn.failed += job.records.length;
        if (job.id !== 0) conn.writer.txnReport(job.id, KERR.PRODUCER_SHUTTING_DOWN, 'not produced: the producer shut down', [], []);
      }
    }
  }
}
