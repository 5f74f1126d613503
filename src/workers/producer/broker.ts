/**
 * What the clients say about Kafka: whether the broker is reachable (and the main client
 * connected), librdkafka's errors, log lines and statistics from every client, and the probe
 * that notices the broker's return while it is down. A change of state goes to every link
 * as STATUS.
 *
 * Must never: produce, replace a client itself (a fatal error of the main client is handed
 * to `onMainFatal`), or log one error code more than once per 10 s.
 */
import type { LibrdkafkaStatsSummary } from '../../shared/kafka-messages';
import { KERR } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';
import type { ClientEvents, LibrdKafkaError, Producer } from './kafka-client';
import type { Links } from './links';
import { mergeStats, summarizeStats, type RdStats } from './stats';
import { sleep, type StopFlag } from './util';

const ERROR_LOG_EVERY_MS = 10000;

export class BrokerState implements ClientEvents {
  up = false;
  /** The main client connected once (records no longer wait for it). */
  connected = false;
  private probing = false;
  private readonly errorLogAt = new Map<number, number>();
  /** The latest statistics of each client, merged into `stats`. */
  private readonly statsBy = new Map<string, LibrdkafkaStatsSummary>();
  stats: LibrdkafkaStatsSummary | null = null;
  /** The broker became reachable. */
  onUp: () => void = () => undefined;
  /** The main client reported a fatal error. */
  onMainFatal: (reason: string) => void = () => undefined;

  constructor(
    private readonly brokers: string,
    private readonly log: Logger,
    private readonly links: Links,
    /** The client the probe asks (the main one), null before it exists. */
    private readonly probeClient: () => Producer | null,
    private readonly stop: StopFlag,
  ) {}

  setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    if (up) this.onUp();
    this.log[up ? 'info' : 'warn'](up ? 'Kafka broker reachable' : 'Kafka broker unreachable', { brokers: this.brokers });
    this.links.broadcastStatus();
    if (!up) void this.probe();
  }

  /** A record was delivered: the broker answers. */
  readonly sawDelivery = (): void => {
    if (!this.up) this.setUp(true);
  };

  /** While the broker is down: a metadata request every second; the first answer means up. */
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      while (!this.up && !this.stop.stopping) {
        const p = this.probeClient();
        if (p === null) break;
        const ok = await new Promise<boolean>((resolve) => {
          try {
            p.getMetadata({ allTopics: false, timeout: 2000 }, (err: LibrdKafkaError | null) => resolve(!err));
          } catch {
            resolve(false);
          }
        });
        if (ok) this.setUp(true);
        else await sleep(1000);
      }
    } finally {
      this.probing = false;
    }
  }

  clientError(e: LibrdKafkaError, name: string): void {
    // The client's `event.error` carries librdkafka's message but code -1, so the
    // all-brokers-down condition is recognised by its text too (test/integration/kafka-resilience).
    const allDown = e.code === KERR.ALL_BROKERS_DOWN || /all broker connections are down/i.test(String(e.message));
    if (allDown && this.connected) this.setUp(false);
    if (e.isFatal === true && name === 'producer' && this.connected) this.onMainFatal(`fatal error: ${e.message}`);
    // One line per code per 10 s: a dead broker makes librdkafka repeat itself.
    const now = Date.now();
    const last = this.errorLogAt.get(e.code) ?? 0;
    if (now - last < ERROR_LOG_EVERY_MS) return;
    this.errorLogAt.set(e.code, now);
    this.log.warn('Kafka client error', { client: name, code: e.code, reason: e.message, fatal: e.isFatal === true });
  }

  /**
   * librdkafka's own log lines (syslog severities; debug ones only with its `debug`
   * property, set through `kafka.extra`) into the structured log, which would otherwise
   * never show them: 0-3 error, 4 warn, 5-6 info, 7 debug.
   */
  clientLog(ev: unknown, client: string): void {
    const e = ev as { severity?: unknown; fac?: unknown; message?: unknown } | null;
    const sev = typeof e?.severity === 'number' ? e.severity : 7;
    const level = sev <= 3 ? 'error' : sev === 4 ? 'warn' : sev <= 6 ? 'info' : 'debug';
    if (!this.log.enabled(level)) return;
    this.log[level]('librdkafka', { client, fac: String(e?.fac ?? ''), reason: String(e?.message ?? '') });
  }

  clientStats(ev: unknown, client: string): void {
    const text = (ev as { message?: unknown } | null)?.message;
    if (typeof text !== 'string') return;
    let sum: LibrdkafkaStatsSummary;
    try {
      sum = summarizeStats(JSON.parse(text) as RdStats);
    } catch (e) {
      this.log.debug('unreadable librdkafka statistics', { err: e });
      return;
    }
    this.statsBy.set(client, sum);
    this.stats = mergeStats(this.statsBy);
    // The main client speaks for the broker (it exists first and carries the sync records).
    if (client === 'producer' && this.connected && sum.brokers > 0) this.setUp(sum.brokersUp > 0);
  }
}
