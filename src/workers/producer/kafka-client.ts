/**
 * The one module of Sluice that loads @confluentinc/kafka-javascript (a unit test holds
 * every other module to that: loaded in a worker thread the client aborts the process). It
 * makes the librdkafka clients the others use (main, transactional, the JavaScript
 * fire-and-forget pair) with Sluice's fixed settings: `dr_cb`, the event handlers, the poll
 * mode; and wraps the client's callbacks (connect, flush, disconnect) as promises.
 *
 * Must never: hold a client of its own, decide which client a record takes, or count records.
 */
import { Producer, type DeliveryReport, type LibrdKafkaError, type Metadata, type ProducerGlobalConfig } from '@confluentinc/kafka-javascript';

import type { KafkaConfig, LibrdkafkaConfig } from '../../shared/kafka-config';
import type { PollMode } from '../../shared/kafka-messages';

export { Producer };
export type { DeliveryReport, LibrdKafkaError, Metadata };

/** connect()'s timeout, and the floor of initTransactions' (transactions.ts). */
export const CONNECT_TIMEOUT_MS = 5000;
const POLL_INTERVAL_MS = 50;
/** Bound on a client's disconnect at shutdown: librdkafka may wait for in-flight requests. */
const DISCONNECT_WAIT_MS = 3000;

export type OnDelivery = (err: LibrdKafkaError | null, r: DeliveryReport) => void;

/** Where every client's errors, log lines and statistics go (the broker state, broker.ts). */
export interface ClientEvents {
  clientError(e: LibrdKafkaError, client: string): void;
  clientLog(ev: unknown, client: string): void;
  clientStats(ev: unknown, client: string): void;
}

/**
 * The fire-and-forget clients' properties: the main client's, with their own linger, and
 * reports for failed records only (the JavaScript ones) or for all (the native one).
 */
export function fireAndForgetConf(cfg: KafkaConfig, conf: LibrdkafkaConfig, onlyErrors: boolean): LibrdkafkaConfig {
  return { ...conf, 'linger.ms': cfg.fireAndForgetLingerMs, 'delivery.report.only.error': onlyErrors };
}

/** Throws librdkafka's message when it refuses the properties (constructs a client, no connection). */
export function checkClientConf(conf: LibrdkafkaConfig, reports: boolean): void {
  new Producer((reports ? { ...conf, dr_cb: true } : conf) as ProducerGlobalConfig);
}

export class KafkaClients {
  constructor(
    private readonly pollMode: PollMode,
    private readonly events: ClientEvents,
  ) {}

  create(conf: LibrdkafkaConfig, onDelivery: OnDelivery, name: string): Producer {
    const p = new Producer({ ...conf, dr_cb: true } as ProducerGlobalConfig);
    p.on('delivery-report', onDelivery);
    p.on('event.error', (e) => this.events.clientError(e, name));
    p.on('event.stats', (ev: unknown) => this.events.clientStats(ev, name));
    p.on('event.log', (ev: unknown) => this.events.clientLog(ev, name));
    return p;
  }

  async connect(p: Producer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      p.connect({ allTopics: false, timeout: CONNECT_TIMEOUT_MS }, (err) => (err ? reject(err) : resolve()));
    });
    if (this.pollMode === 'background') p.setPollInBackground(true);
    else p.setPollInterval(POLL_INTERVAL_MS);
  }
}

/** Disconnects a client that failed to come up, if it got that far. */
export function disconnectQuietly(p: Producer): void {
  try {
    if (p.isConnected()) p.disconnect(() => undefined);
  } catch {
    // already gone
  }
}

/** A librdkafka callback as a promise. */
export function call(fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

/** flush() as a promise that always resolves (a timeout or a gone client end it too). */
export function flushQuietly(p: Producer, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    try {
      p.flush(ms, () => resolve());
    } catch {
      resolve();
    }
  });
}

/** Lets a client go at shutdown, bounded. */
export function disconnectBounded(c: Producer | null): Promise<void> {
  return new Promise<void>((resolve) => {
    if (c === null || !c.isConnected()) return resolve();
    const t = setTimeout(resolve, DISCONNECT_WAIT_MS);
    try {
      c.disconnect(0, () => {
        clearTimeout(t);
        resolve();
      });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}
