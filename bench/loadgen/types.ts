/** What a load generator is asked to do and what it reports, whichever tool it is. */

export type LoadGenName = 'autocannon' | 'wrk';
export const LOADGEN_NAMES: readonly LoadGenName[] = ['autocannon', 'wrk'];

export interface LoadSpec {
  readonly url: string;
  readonly method: 'GET' | 'POST';
  /** Request body ('' for none). */
  readonly body: string;
  readonly contentType?: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly varyHeader?: { readonly name: string; readonly keys: number };
  /** Fixed total request rate (req/s); absent: as fast as the connections go. */
  readonly rate?: number;
}

export interface LoadResult {
  readonly tool: LoadGenName;
  /** Completed responses (any status). */
  readonly requests: number;
  readonly durationSec: number;
  readonly rps: number;
  /** Latency percentiles in microseconds. */
  readonly latencyUs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Connection errors, resets and timeouts. */
  readonly errors: number;
  /** Responses whose status is not 2xx. */
  readonly non2xx: number;
  /** Responses per status code, when the tool says (autocannon does, wrk does not). */
  readonly statusCounts?: Readonly<Record<string, number>>;
  /** CPU seconds the load generator itself used (all threads), null if unknown. */
  readonly cpuSeconds: number | null;
}
