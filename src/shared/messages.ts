/**
 * Messages between the primary thread and HTTP workers: one discriminated union per
 * direction, handled with an exhaustive switch. A worker gets no traffic before READY
 * (it only listens once it is ready to serve), and the primary counts it as serving only
 * after READY.
 */
import type { SluiceConfig } from './config';
import type { TlsSnapshot } from './tls-certs';
import type { WorkerCounters } from './metrics';

export interface WorkerData {
  readonly workerId: number;
  readonly config: SluiceConfig;
  readonly configVersion: number;
  /** The port the primary probed and reserved for every worker (never 0). */
  readonly port: number;
  /** The HTTPS listener: its probed port (never 0) and validated certificate copies; null without `tls`. */
  readonly tls: { readonly port: number; readonly snapshot: TlsSnapshot } | null;
  /** The Kafka producer process's Unix socket, or null when nothing uses Kafka. */
  readonly kafkaSocket: string | null;
  /** Instance counters (src/shared/sab-layout.ts). */
  readonly counters: SharedArrayBuffer;
  /** Per-host health, breaker, ejection and concurrency state (src/shared/host-state.ts). */
  readonly hostState: SharedArrayBuffer;
  /** `group|address` → slot in hostState, for this config. */
  readonly hostSlots: Readonly<Record<string, number>>;
  /** Rate-limit buckets (src/shared/rate-limit.ts). */
  readonly rateLimits: SharedArrayBuffer;
}

export type PrimaryToWorker =
  /** `tls`: the certificates to serve from now on (same id = unchanged; null = no HTTPS listener). */
  | { readonly type: 'reload'; readonly config: SluiceConfig; readonly version: number; readonly hostSlots: Readonly<Record<string, number>>; readonly tls: TlsSnapshot | null }
  | { readonly type: 'drain'; readonly deadlineMs: number }
  | { readonly type: 'stats' }
  /** Fault injection: the worker throws an uncaught error (the real crash path). */
  | { readonly type: 'crash'; readonly reason: string };

export type WorkerToPrimary =
  | { readonly type: 'ready'; readonly workerId: number; readonly port: number }
  | { readonly type: 'reloaded'; readonly workerId: number; readonly version: number }
  | { readonly type: 'fatal'; readonly workerId: number; readonly message: string }
  | { readonly type: 'crashed'; readonly workerId: number; readonly message: string }
  | {
      readonly type: 'stats';
      readonly workerId: number;
      readonly inflight: number;
      readonly requests: number;
      readonly pools: readonly { address: string; open: number; idle: number }[];
      /** Cumulative request metrics, request-event and Kafka link counters (src/shared/metrics.ts). */
      readonly counters: WorkerCounters;
    }
  | {
      readonly type: 'drained';
      readonly workerId: number;
      readonly abandoned: number;
      /** Kafka records of this worker whose delivery failed or whose outcome is unknown (lifetime). */
      readonly kafkaUndelivered: number;
      readonly kafka: { readonly enqueued: number; readonly delivered: number; readonly failed: number; readonly unknown: number; readonly dropped: number } | null;
      /** Request events of this worker: produced (handed to the link), dropped (buffer full), sampled out. */
      readonly events: { readonly produced: number; readonly dropped: number; readonly sampledOut: number };
    };

export function assertNever(x: never): never {
  throw new Error(`unexpected message ${JSON.stringify(x)}`);
}
