/**
 * librdkafka's statistics JSON summarised for /metrics (`LibrdkafkaStatsSummary`), and the
 * clients' summaries merged into one.
 *
 * Must never: keep state, or read fields librdkafka does not document (STATISTICS.md).
 */
import type { LibrdkafkaStatsSummary } from '../../shared/kafka-messages';

/** The parts of librdkafka's statistics JSON that Sluice reads (STATISTICS.md). */
interface RdWindow {
  avg?: number;
}
export interface RdStats {
  ts?: number;
  time?: number;
  msg_cnt?: number;
  msg_size?: number;
  msg_max?: number;
  msg_size_max?: number;
  tx?: number;
  txmsgs?: number;
  txmsg_bytes?: number;
  brokers?: Record<string, { nodeid?: number; state?: string; txerrs?: number; rtt?: RdWindow; int_latency?: RdWindow; outbuf_latency?: RdWindow }>;
  topics?: Record<string, { batchsize?: RdWindow; batchcnt?: RdWindow }>;
}

/**
 * The clients' statistics as one: queue and traffic figures summed; broker state, limits and
 * latencies from the main client (the fire-and-forget clients share its brokers), batch
 * sizes averaged over the clients that sent batches.
 */
export function mergeStats(by: ReadonlyMap<string, LibrdkafkaStatsSummary>): LibrdkafkaStatsSummary | null {
  const all = [...by.values()];
  const main = by.get('producer') ?? all[0];
  if (main === undefined) return null;
  const sum = (f: (s: LibrdkafkaStatsSummary) => number): number => all.reduce((a, s) => a + f(s), 0);
  const batching = all.filter((s) => s.batchCountAvg > 0);
  return {
    ...main,
    at: Math.max(...all.map((s) => s.at)),
    msgCount: sum((s) => s.msgCount),
    msgBytes: sum((s) => s.msgBytes),
    txMessages: sum((s) => s.txMessages),
    txMessageBytes: sum((s) => s.txMessageBytes),
    txRequests: sum((s) => s.txRequests),
    txErrors: sum((s) => s.txErrors),
    batchBytesAvg: Math.round(mean(batching.map((s) => s.batchBytesAvg))),
    batchCountAvg: Math.round(mean(batching.map((s) => s.batchCountAvg))),
  };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function summarizeStats(j: RdStats): LibrdkafkaStatsSummary {
  const brokers = Object.values(j.brokers ?? {}).filter((b) => (b.nodeid ?? -1) >= 0);
  const topics = Object.values(j.topics ?? {});
  const us = (xs: (RdWindow | undefined)[]): number => Math.round(mean(xs.map((w) => w?.avg ?? 0)) / 10) / 100;
  return {
    at: j.time !== undefined ? j.time * 1000 : Date.now(),
    msgCount: j.msg_cnt ?? 0,
    msgBytes: j.msg_size ?? 0,
    msgMax: j.msg_max ?? 0,
    msgBytesMax: j.msg_size_max ?? 0,
    txMessages: j.txmsgs ?? 0,
    txMessageBytes: j.txmsg_bytes ?? 0,
    txRequests: j.tx ?? 0,
    txErrors: brokers.reduce((a, b) => a + (b.txerrs ?? 0), 0),
    brokersUp: brokers.filter((b) => b.state === 'UP').length,
    brokers: brokers.length,
    rttAvgMs: us(brokers.map((b) => b.rtt)),
    queueLatencyAvgMs: us(brokers.map((b) => b.int_latency)),
    outbufLatencyAvgMs: us(brokers.map((b) => b.outbuf_latency)),
    batchBytesAvg: Math.round(mean(topics.map((t) => t.batchsize?.avg ?? 0))),
    batchCountAvg: Math.round(mean(topics.map((t) => t.batchcnt?.avg ?? 0))),
  };
}

