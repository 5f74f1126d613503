/**
 * The bench's data: one record per measured run (raw JSON), and the per-row summary the
 * report and chart are drawn from (medians over rounds).
 */
import type { LoadGenName, LoadResult } from '../loadgen/types';
import type { ScenarioName } from '../scenarios';

export interface RunRecord {
  readonly scenario: ScenarioName;
  readonly contender: string;
  readonly loadgen: LoadGenName;
  readonly round: number;
  readonly startedAt: string;
  readonly wallSec: number;
  /** null when the run failed; `error` says why. */
  readonly load: LoadResult | null;
  readonly error?: string;
  /** CPU seconds of the proxy's process tree during the run; null: no proxy (direct). */
  readonly proxyCpuSec: number | null;
  readonly upstreamCpuSec: number;
  /** Peak RSS of the proxy's tree during the run (KiB), null when unknown. */
  readonly proxyPeakRssKb: number | null;
  /** Busy % per CPU number over the run. */
  readonly cpuBusy: Readonly<Record<string, number>>;
  /** Interrupt % per CPU over the run (part of cpuBusy, in no process's CPU time). */
  readonly cpuIrq?: Readonly<Record<string, number>>;
  /**
   * Process CPU time of the machine (interrupt time left out) not spent by the proxy, the
   * upstream or the load generator: other processes, noise that makes a run less trustworthy.
   */
  readonly otherCpuSec: number | null;
  /** Noisy attempts measured again before this one (`--retry-noisy`). */
  readonly retries?: number;
}

export interface ContenderStatus {
  readonly name: string;
  readonly description: string;
  readonly cpus: string;
  readonly state: 'ran' | 'failed' | 'not-in-scenario';
  readonly error?: string;
}

export interface SummaryRow {
  readonly contender: string;
  readonly loadgen: LoadGenName;
  readonly pinning: 'proxy' | 'all' | 'none';
  /** Successful rounds the medians are taken over. */
  readonly rounds: number;
  readonly rps: number;
  /** (max - min) / median of req/s over the rounds, in %. */
  readonly rpsSpreadPct: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  /** Summed over rounds. */
  readonly errors: number;
  readonly non2xx: number;
  readonly proxyCpuUsPerReq: number | null;
  /** Proxy CPU as % of one CPU (above 100 for multi-threaded contenders). */
  readonly proxyCpuPct: number | null;
  /** Largest per-run peak over the rounds, MiB. */
  readonly peakRssMiB: number | null;
  readonly upstreamCpuUsPerReq: number;
  /** Upstream CPU as % of one CPU. */
  readonly upstreamCpuPct: number;
  /** Non-2xx responses per status code, summed over rounds (autocannon only). */
  readonly non2xxByStatus: Readonly<Record<string, number>>;
  /** Load generator CPU as % of one CPU. */
  readonly loadgenCpuPct: number | null;
  readonly cpuBusy: Readonly<Record<string, number>>;
  /** Interrupt % per CPU (medians). */
  readonly cpuIrq: Readonly<Record<string, number>>;
  /** `RunRecord.otherCpuSec` as % of one CPU. */
  readonly otherCpuPct: number | null;
  /** Against the nginx row of the same scenario and load generator (see `vsNginx`). */
  readonly rpsVsNginx: number | null;
  readonly cpuVsNginx: number | null;
  /** Which nginx row the ratios are against (`nginx`, or `nginx-all` for all-CPU rows). */
  readonly vsNginx: string | null;
}

export interface ScenarioOutcome {
  readonly scenario: ScenarioName;
  readonly title: string;
  readonly note?: string;
  /** Set when the scenario did not run (a later feature Sluice does not support yet). */
  readonly notAvailable?: string;
  readonly contenders: readonly ContenderStatus[];
  readonly rows: readonly SummaryRow[];
  /**
   * `sluice-1w` CPU/request ÷ `sluice-1w-off` CPU/request, per round (the two ran back to
   * back in each round), per load generator: pairs cancel the slow drift of a shared machine.
   */
  readonly featurePairs?: readonly { readonly loadgen: string; readonly ratios: readonly number[] }[];
  /** Paired per-round ratios of sluice-1w over sluice-1w-base (another build), when both ran. */
  readonly basePairs?: readonly { readonly loadgen: string; readonly ratios: readonly number[] }[];
  /**
   * Each Sluice row's CPU/request ÷ its nginx row's, per round (same round, same load
   * generator): the same pairing for the comparison with nginx.
   */
  readonly nginxPairs?: readonly { readonly contender: string; readonly loadgen: string; readonly ratios: readonly number[] }[];
  /**
   * Kafka scenarios: Sluice's own record counters (its /metrics) after the last round, once
   * everything it took was settled or 10 s passed: proof that no event was lost on the way.
   */
  readonly kafkaCounts?: readonly KafkaCounts[];
  /** Runs that produced no result, or a result with an error attached. */
  readonly runErrors?: readonly { contender: string; loadgen: string; round: number; error: string }[];
}

export interface KafkaCounts {
  readonly contender: string;
  readonly eventsProduced: number;
  readonly eventsDropped: number;
  /** Link records: handed to the producer, refused by the link, and their outcomes. */
  readonly enqueued: number;
  readonly refused: number;
  readonly delivered: number;
  readonly failed: number;
  readonly unknown: number;
}

export interface BenchSettings {
  readonly command: string;
  readonly quick: boolean;
  readonly rounds: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly loadgens: readonly LoadGenName[];
  readonly upstream: string;
  readonly proxyCpus: string;
  readonly loadCpus: string;
  readonly allCpus: string;
  /** Longest wait for a quiet machine before each run (0: none). */
  readonly quietWaitSec: number;
  /** How many times a noisy run was measured again at most (absent in old raw files). */
  readonly retryNoisy?: number;
  /** Fixed request rate of every run (req/s); absent: closed loop, as fast as it goes. */
  readonly rate?: number;
  /** Busy % per CPU over a few seconds before anything was started. */
  readonly backgroundBusy: Readonly<Record<string, number>>;
  /** CPUs the local Kafka broker was pinned to for the run (absent: not pinned, or no Kafka scenario). */
  readonly kafkaBrokerCpus?: string;
}
