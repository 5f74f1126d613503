/**
 * Request events: the logging phase that turns every finished request into one JSON record
 * for Kafka (DESIGN §4). It only encodes and hands the record to the worker's KafkaLink,
 * which batches it per event-loop turn; the request path never waits on Kafka. When the
 * link's bounded buffer is full the event is dropped and counted (the sequence number it took
 * stays unused, so consumers see the gap).
 *
 * Must never: block, wait for a delivery report, or copy Authorization/Cookie unless the
 * config explicitly allows it (the schema refuses them otherwise).
 */
import type { EventsConfig } from '../shared/config';
import type { SluiceError } from '../shared/errors';
import type { ProxyPhases, Session } from '../shared/phases';
import { nextEventSeq } from '../shared/sab-layout';
import type { KafkaLink } from './kafka-link';
import type { RequestCtx } from './proxy';

export interface EventCounters {
  produced: number;
  dropped: number;
  sampledOut: number;
}

type KeyPart = (s: Session) => string;

function headerValue(s: Session, name: string): string {
  const hs = s.headers;
  for (let i = 0; i < hs.length; i += 2) if (hs[i] === name) return hs[i + 1] as string;
  return '';
}

/** Compiles `route+client+header:x-tenant` once. null = no key. */
export function compileEventKey(expr: string): ((s: Session) => string) | null {
  if (expr === 'none') return null;
  const parts: KeyPart[] = expr.split('+').map((p): KeyPart => {
    switch (p) {
      case 'route':
        return (s) => s.routeName;
      case 'client':
        return (s) => s.clientAddress;
      case 'upstream':
        return (s) => s.upstreamName;
      case 'host':
        return (s) => headerValue(s, 'host');
      case 'request_id':
        return (s) => s.requestId;
      default: {
        const n = p.slice('header:'.length).toLowerCase();
        return (s) => headerValue(s, n);
      }
    }
  });
  if (parts.length === 1) return parts[0] as KeyPart;
  // Per event on the hot path: concatenate without building an intermediate array.
  return (s) => {
    let k = (parts[0] as KeyPart)(s);
    for (let i = 1; i < parts.length; i++) k += `|${(parts[i] as KeyPart)(s)}`;
    return k;
  };
}

export class EventsPhase implements ProxyPhases<RequestCtx> {
  private readonly keyOf: ((s: Session) => string) | null;
  private readonly headerNames: readonly string[];

  constructor(
    private readonly cfg: EventsConfig,
    private readonly link: KafkaLink,
    private readonly counters: BigInt64Array,
    private readonly instance: string,
    private readonly workerId: number,
    readonly stats: EventCounters,
  ) {
    this.keyOf = compileEventKey(cfg.key);
    this.headerNames = (cfg.headers ?? []).map((h) => h.toLowerCase());
  }

  logging(s: Session, err: SluiceError | null): void {
    const status = s.status;
    if (this.cfg.policy === 'sample' && status < 500 && Math.random() >= this.cfg.sampleRate) {
      this.stats.sampledOut++;
      return;
    }
    const seq = nextEventSeq(this.counters);
    let headers: Record<string, string> | undefined;
    if (this.headerNames.length > 0) {
      headers = {};
      for (const n of this.headerNames) {
        const v = headerValue(s, n);
        if (v !== '') headers[n] = v;
      }
    }
    const value = JSON.stringify({
      seq: seq.toString(),
      instance: this.instance,
      worker: this.workerId,
      ts: Date.now(),
      requestId: s.requestId,
      client: s.clientAddress,
      method: s.method,
      host: headerValue(s, 'host'),
      path: s.path,
      route: s.routeName,
      upstream: s.upstreamName,
      upstreamHost: s.upstreamHost,
      status,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      latencyMs: Math.round((performance.now() - s.startedAt) * 1000) / 1000,
      attempts: s.tries,
      flags: s.flags,
      error: err === null ? null : err.code,
      headers,
    });
    const ok = this.link.produce({
      topic: this.cfg.topic,
      value,
      key: this.keyOf === null ? null : this.keyOf(s),
      headers: [['x-request-id', s.requestId]],
      // Events carry their own `seq`: they take the producer's cheaper path, which does not
      // keep their order against other records (docs/kafka.md, "Fire-and-forget records").
      unordered: true,
    });
    if (ok) this.stats.produced++;
    else this.stats.dropped++;
  }
}
