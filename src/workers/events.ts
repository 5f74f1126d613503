/**
 * Request events: the logging phase that turns every finished request into one JSON record
 * for Kafka (DESIGN §4), written straight into bytes (event-json.ts). It only encodes and
 * hands the record to the worker's KafkaLink, which batches it (fire-and-forget records wait
 * up to 20 ms for more); the request path never waits on Kafka. When the
 * link's bounded buffer is full the event is dropped and counted (the sequence number it took
 * stays unused, so consumers see the gap).
 *
 * Must never: block, wait for a delivery report, or copy Authorization/Cookie unless the
 * config explicitly allows it (the schema refuses them otherwise).
 */
import type { EventsConfig } from '../shared/config';
import type { SluiceError } from '../shared/errors';
import type { KafkaHeader } from '../shared/kafka-frames';
import type { ProxyPhases, Session, TryRecord } from '../shared/phases';
import { nextEventSeq } from '../shared/sab-layout';
import { JsonBytes } from './event-json';
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
  private readonly json = new JsonBytes();
  private readonly workerField: string;
  private readonly requestIdHeader: [string, string] = ['x-request-id', ''];
  /** The record handed to the link, reused: the link encodes it before produce() returns. */
  private readonly rec: { readonly topic: string; value: Uint8Array | null; key: string | null; readonly headers: KafkaHeader[]; readonly unordered: true };

  constructor(
    private readonly cfg: EventsConfig,
    private readonly link: KafkaLink,
    private readonly counters: BigInt64Array,
    private readonly instance: string,
    workerId: number,
    readonly stats: EventCounters,
  ) {
    this.keyOf = compileEventKey(cfg.key);
    // Header names are object keys in the event: a name given twice appears once (as in
    // an object literal), at its first place.
    this.headerNames = [...new Set((cfg.headers ?? []).map((h) => h.toLowerCase()))];
    this.workerField = `,"worker":${JSON.stringify(workerId)},"ts":`;
    this.rec = {
      topic: cfg.topic,
      value: null,
      key: null,
      headers: [this.requestIdHeader],
      // Events carry their own `seq`: they take the producer's cheaper path, which does not
      // keep their order against other records (docs/kafka.md, "Fire-and-forget records").
      unordered: true,
    };
  }

  logging(s: Session, err: SluiceError | null): void {
    const status = s.status;
    if (this.cfg.policy === 'sample' && status < 500 && Math.random() >= this.cfg.sampleRate) {
      this.stats.sampledOut++;
      return;
    }
    const seq = nextEventSeq(this.counters);
    const rec = this.rec;
    rec.value = this.eventJson(s, err, seq);
    rec.key = this.keyOf === null ? null : this.keyOf(s);
    this.requestIdHeader[1] = s.requestId;
    const ok = this.link.produce(rec);
    if (ok) this.stats.produced++;
    else this.stats.dropped++;
  }

  /**
   * The event as JSON bytes (a view of the reused buffer, valid until the next event): the
   * text JSON.stringify gives for `{ seq, instance, worker, ts, requestId, client, method,
   * host, path, route, upstream, upstreamHost, lbKey, status, bytesIn, bytesOut, latencyMs,
   * attempts, flags, error, headers? }` (docs/kafka.md lists the fields). Public for the
   * unit test that holds it to JSON.stringify.
   */
  eventJson(s: Session, err: SluiceError | null, seq: number): Buffer {
    const j = this.json;
    j.reset();
    j.raw('{"seq":"');
    j.int(seq);
    j.raw('","instance":');
    j.str(this.instance);
    j.raw(this.workerField);
    j.num(Date.now());
    j.raw(',"requestId":');
    j.str(s.requestId);
    j.raw(',"client":');
    j.str(s.clientAddress);
    j.raw(',"method":');
    j.str(s.method);
    j.raw(',"host":');
    j.str(headerValue(s, 'host'));
    j.raw(',"path":');
    j.str(s.path);
    j.raw(',"route":');
    j.str(s.routeName);
    j.raw(',"upstream":');
    j.str(s.upstreamName);
    j.raw(',"upstreamHost":');
    j.str(s.upstreamHost);
    j.raw(',"lbKey":');
    j.strOrNull(s.lbKey === '' ? null : s.lbKey);
    j.raw(',"status":');
    j.num(s.status);
    j.raw(',"bytesIn":');
    j.num(s.bytesIn);
    j.raw(',"bytesOut":');
    j.num(s.bytesOut);
    j.raw(',"latencyMs":');
    j.milli(Math.round((performance.now() - s.startedAt) * 1000));
    j.raw(',"attempts":');
    const tries = s.tries;
    if (tries === null) {
      j.raw('null');
    } else {
      j.raw('[');
      for (let i = 0; i < tries.length; i++) {
        const t = tries[i] as TryRecord;
        j.raw(i === 0 ? '{"host":' : ',{"host":');
        j.str(t.host);
        j.raw(',"at":');
        j.milli(Math.round(t.at * 1000));
        j.raw(',"ms":');
        // t.ms is Math.round(x * 1000) / 1000 (or -1): k / 1000 for the integer k recovered here.
        j.milli(Math.round(t.ms * 1000));
        j.raw(',"outcome":');
        j.str(t.outcome);
        j.raw('}');
      }
      j.raw(']');
    }
    j.raw(',"flags":');
    j.strArray(s.flags);
    j.raw(',"error":');
    j.strOrNull(err === null ? null : err.code);
    const names = this.headerNames;
    if (names.length > 0) {
      j.raw(',"headers":{');
      let first = true;
      for (const n of names) {
        const v = headerValue(s, n);
        if (v === '') continue;
        if (!first) j.raw(',');
        first = false;
        j.str(n);
        j.raw(':');
        j.str(v);
      }
      j.raw('}');
    }
    j.raw('}');
    return j.view();
  }
}
