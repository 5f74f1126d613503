/**
 * IPC between the primary's ProducerSupervisor and the Kafka producer process (a child process:
 * the Kafka client cannot run in a worker thread, confluent-kafka-javascript issue #258): the
 * start-up hand-off in an environment variable, and one discriminated union per direction.
 * Records never travel here (they go over the Unix socket, ./kafka-frames.ts).
 *
 * Must never: import the Kafka client or anything outside src/shared.
 */
import type { KafkaConfig } from './kafka-config';
import type { LogLevel } from './config';

/** The environment variable that carries ProducerInit (JSON) to the producer process. */
export const PRODUCER_INIT_ENV = 'SLUICE_PRODUCER_INIT';

export type PollMode = 'background' | 'interval';

export interface ProducerInit {
  readonly config: KafkaConfig;
  readonly socketPath: string;
  readonly logLevel: LogLevel;
  /**
   * SIGTERM (not the supervisor's message): how long to keep serving open links before
   * flushing, so that draining workers can still hand records over.
   */
  readonly sigtermWaitMs: number;
  /** How delivery reports reach JS: librdkafka's background thread, or a 50 ms poll timer. */
  readonly pollMode?: PollMode;
  /** STATUS frame period (ms). */
  readonly statusIntervalMs?: number;
}

/** A summary of librdkafka's statistics JSON (statistics.interval.ms), for /metrics. */
export interface LibrdkafkaStatsSummary {
  /** When librdkafka produced it (ms since the epoch). */
  readonly at: number;
  /** Records and bytes in the producer queues (msg_cnt, msg_size) and their limits. */
  readonly msgCount: number;
  readonly msgBytes: number;
  readonly msgMax: number;
  readonly msgBytesMax: number;
  /** Totals sent to brokers (txmsgs, txmsg_bytes) and requests (tx), request errors (txerrs). */
  readonly txMessages: number;
  readonly txMessageBytes: number;
  readonly txRequests: number;
  readonly txErrors: number;
  /** Brokers (with a node id) in state UP, and all of them. */
  readonly brokersUp: number;
  readonly brokers: number;
  /** Averages over the brokers of the window averages, in ms (rtt, int_latency, outbuf_latency). */
  readonly rttAvgMs: number;
  readonly queueLatencyAvgMs: number;
  readonly outbufLatencyAvgMs: number;
  /** Average batch size in bytes and records across topics (batchsize.avg, batchcnt.avg). */
  readonly batchBytesAvg: number;
  readonly batchCountAvg: number;
}

/** Producer-wide counters, sent to the supervisor every second (and kept for /metrics). */
export interface ProducerStats {
  readonly at: number;
  readonly pid: number;
  readonly kafkaConnected: boolean;
  readonly brokerUp: boolean;
  readonly txnReady: boolean;
  readonly connections: number;
  /** Records read from all links. */
  readonly received: number;
  readonly delivered: number;
  /** Every record that failed, including `queueFull`. */
  readonly failed: number;
  readonly queueFull: number;
  /** Records taken and not yet reported, and their key+value+header bytes. */
  readonly queueMessages: number;
  readonly queueBytes: number;
  readonly deliveredPerSec: number;
  readonly txnCommitted: number;
  readonly txnAborted: number;
  /** Main Kafka clients replaced (wedged or fatal) since the producer started. */
  readonly clientReplacements: number;
  readonly librdkafka: LibrdkafkaStatsSummary | null;
}

export interface ConnectionShutdownReport {
  readonly workerId: number;
  readonly received: number;
  readonly delivered: number;
  readonly failed: number;
  /** Taken but not delivered when the flush deadline passed. */
  readonly undelivered: number;
}

export interface ProducerShutdownReport {
  readonly reason: string;
  readonly delivered: number;
  readonly failed: number;
  readonly undelivered: number;
  readonly flushMs: number;
  readonly flushTimedOut: boolean;
  readonly connections: readonly ConnectionShutdownReport[];
}

export type SupervisorToProducer = { readonly type: 'shutdown'; readonly reason: string; readonly waitForLinksMs: number };

export type ProducerToSupervisor =
  | { readonly type: 'ready'; readonly pid: number; readonly socketPath: string }
  | { readonly type: 'fatal'; readonly message: string }
  | { readonly type: 'stats'; readonly stats: ProducerStats }
  | { readonly type: 'shutdown-report'; readonly report: ProducerShutdownReport };
