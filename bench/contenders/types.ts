/**
 * What a contender is: something the load generator can hit, started and stopped by the
 * runner in its own process (or, for `direct`, nothing at all in front of the upstream).
 */
import type { Scenario } from '../scenarios';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface StartContext {
  /** Repository root (cwd for Sluice, where bench/ templates live). */
  readonly root: string;
  /** A fresh directory for this contender's config, logs and temp files. */
  readonly workDir: string;
  readonly scenario: Scenario;
  /** The upstream hosts to balance over (`scenario.upstreamHosts` of them). */
  readonly upstreams: readonly Endpoint[];
  /** taskset CPU list this contender must run on (see `Contender.pinning`). */
  readonly cpus: string;
  /** Number of CPUs in `cpus` (worker count for "all workers" contenders). */
  readonly cpuCount: number;
  /** Where to listen. */
  readonly listen: Endpoint;
  /** A free port for anything else the contender needs (Sluice's admin server, say). */
  readonly sparePort: number;
  /** For TLS scenarios: the bench certificate (PEM files; `combinedFile` = certificate + key, for HAProxy). */
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly combinedFile: string } | null;
}

export interface RunningContender {
  /** The address the load generator targets. */
  readonly target: Endpoint;
  /** Root of the process tree whose CPU and memory are measured; null: no proxy (direct). */
  readonly pid: number | null;
  /** Where its output goes. */
  readonly logFile: string | null;
  alive(): boolean;
  stop(): Promise<void>;
}

export interface Contender {
  readonly name: string;
  /** One line for the report: what it is and how it is configured. */
  readonly description: string;
  /** Which CPUs it gets: the proxy CPU only, all CPUs, or none (no proxy process). */
  readonly pinning: 'proxy' | 'all' | 'none';
  /** Whether this contender takes part in `scenario` (capability check). */
  supports(scenario: Scenario): boolean;
  start(ctx: StartContext): Promise<RunningContender>;
}
