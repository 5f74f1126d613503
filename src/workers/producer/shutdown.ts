/**
 * The producer's shutdown sequence, and its report (docs/kafka.md, "Restarts and shutdown"):
 *   1. stop accepting links; open ones may still hand over records (draining workers), up
 *      to `waitForLinksMs`;
 *   2. flush every client (main, both fire-and-forget paths) within flushTimeoutMs;
 *   3. read nothing more; records that never reached librdkafka fail;
 *   4. per-link accounting, final STATUS, links closed, the report logged;
 *   5. the clients let go (bounded).
 * The process entry (main.ts) sends the report to the supervisor and exits.
 *
 * Must never: wait past flushTimeoutMs for deliveries (what is left is `undelivered`), take
 * a record after step 3, or count a record twice (outcomes go through the ledger).
 */
import type { KafkaConfig } from '../../shared/kafka-config';
import type { ConnectionShutdownReport, ProducerShutdownReport } from '../../shared/kafka-messages';
import type { Logger } from '../../shared/log';
import type { EpochClients } from './epoch-clients';
import { disconnectBounded, flushQuietly } from './kafka-client';
import type { Ledger } from './ledger';
import type { Links } from './links';
import type { MainClient } from './main-client';
import type { PartitionCounts } from './metadata';
import type { NativeFfClient } from './native-client';
import type { RecordRouter } from './routing';
import type { Transactions } from './transactions';
import { waitFor, type StopFlag } from './util';

export interface ShutdownParts {
  readonly cfg: KafkaConfig;
  readonly log: Logger;
  readonly stop: StopFlag;
  readonly links: Links;
  readonly ledger: Ledger;
  readonly router: RecordRouter;
  readonly counts: PartitionCounts;
  readonly main: MainClient;
  readonly native: NativeFfClient;
  readonly epochs: EpochClients;
  readonly txns: Transactions;
  /** Stops the STATUS and stats timers. */
  readonly stopTimers: () => void;
}

export async function shutDown(p: ShutdownParts, reason: string, waitForLinksMs: number): Promise<ProducerShutdownReport> {
  const { cfg, log, links, ledger, router, counts, main, native, epochs, txns } = p;
  p.stop.stopping = true;
  const t0 = Date.now();
  log.info('producer shutting down', { reason, links: links.size, queued: ledger.queued, waitForLinksMs, flushTimeoutMs: cfg.flushTimeoutMs });
  links.stopAccepting();
  links.broadcastStatus();
  // 1. Links still open may hand over records (draining workers); they end when done.
  await waitFor(() => links.size === 0, waitForLinksMs, 20);
  // 2. Deliver what was taken, within flushTimeoutMs.
  const flushStart = Date.now();
  const flushEnd = flushStart + cfg.flushTimeoutMs;
  await waitFor(() => main.producer !== null || ledger.queued === 0, cfg.flushTimeoutMs, 20);
  // Fire-and-forget epochs: no new ones (late records go to the main client); both clients
  // are flushed alongside the main one.
  const ffDone = epochs.settleAll(flushEnd);
  // Only a native client already running when the flush begins is flushed, settled and
  // closed by this sequence.
  const nativeRan = native.running;
  let ffNativeDone: Promise<unknown> = Promise.resolve();
  if (nativeRan) {
    native.startFlushing();
    ffNativeDone = waitFor(() => native.queueLength === 0, Math.max(0, flushEnd - Date.now()), 5);
  }
  const mp = main.producer;
  if (mp !== null) await flushQuietly(mp, Math.max(0, flushEnd - Date.now()));
  await ffDone;
  await ffNativeDone;
  if (nativeRan) native.settle();
  await waitFor(() => (ledger.queued === 0 || router.waitingRecords + counts.waitingRecords === ledger.queued) && !txns.busy, Math.max(0, flushEnd - Date.now()) + 500, 5);
  const flushMs = Date.now() - flushStart;
  // 3. Take nothing more. Held records never reached librdkafka: they fail.
  links.pauseReading();
  router.failWaiting();
  counts.failWaiting();
  txns.failQueued();
  // What the native client reported meanwhile; what it still holds is undelivered.
  if (nativeRan) native.settle();
  // 4. Per-link accounting, final STATUS, close.
  const connections: ConnectionShutdownReport[] = [];
  const unknownAtShutdown = new Map<number, number>();
  for (const c of links.conns.values()) {
    if (c.ffUnknown > 0) unknownAtShutdown.set(c.workerId, c.ffUnknown);
    connections.push({ workerId: c.workerId, received: c.received, delivered: c.delivered, failed: c.failed, undelivered: c.pending + c.pendingTxn });
    links.finish(c);
  }
  const report: ProducerShutdownReport = {
    reason,
    delivered: ledger.delivered,
    failed: ledger.failed,
    undelivered: ledger.queued,
    flushMs,
    flushTimedOut: ledger.queued > 0,
    connections,
  };
  (report.undelivered > 0 ? log.warn : log.info).call(log, 'producer flushed', {
    ...report,
    connections: undefined,
    ffSettled: ledger.ffSettled,
    totalMs: Date.now() - t0,
  });
  for (const c of connections) {
    const unknown = unknownAtShutdown.get(c.workerId) ?? 0;
    log.info('link accounting at shutdown', { worker: c.workerId, received: c.received, delivered: c.delivered, failed: c.failed, undelivered: c.undelivered, ...(unknown > 0 ? { unknown } : {}) });
  }
  p.stopTimers();
  // 5. Let the clients go (bounded: librdkafka may wait for in-flight requests).
  if (nativeRan) native.close();
  await Promise.all([...main.allProducers, txns.producer, ...epochs.producers].map(disconnectBounded));
  return report;
}
