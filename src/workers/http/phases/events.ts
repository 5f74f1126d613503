/**
 * Request events: the logging phase that turns every finished request into one record for
 * Kafka (docs/kafka.md, "Request events"). It writes the event's fields in binary (src/shared/event-binary.ts; the
 * producer process writes the JSON that goes to Kafka) and hands the record to the worker's
 * KafkaLink, which batches it (fire-and-forget records wait up to kafka.linkLingerMs for
 * more); the request path never waits on Kafka. When the link's bounded buffer is full the
 * event is dropped and counted (the sequence number it took stays unused, so consumers see
 * the gap).
 *
 * Must never: block, wait for a delivery report, or copy Authorization/Cookie unless the
 * config explicitly allows it (the schema refuses them otherwise).
 */
import { performance } from 'node:perf_hooks';
import type { EventsConfig } from '../../../shared/config';
import { EVENT_NULL, EventWriter } from '../../../shared/event-binary';
import type { SluiceError } from '../../../shared/errors';
import type { KafkaHeader } from '../../../shared/kafka-frames';
import type { ProxyPhases } from '../pipeline';
import type { Session, TryRecord } from '../session';
import { nextEventSeq } from '../../../shared/sab-layout';
import type { KafkaLink } from '../kafka/link';
import type { RequestCtx } from '../context';

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
  private readonly bin = new EventWriter();
  /** The `instance` field as written (the same for every event). */
  private readonly instanceField: Buffer;
  private readonly requestIdHeader: [string, string] = ['x-request-id', ''];
  /** The record handed to the link, reused: the link encodes it before produce() returns. */
  private readonly rec: {
    readonly topic: string;
    value: Uint8Array | null;
    key: string | null;
    readonly headers: KafkaHeader[];
    readonly unordered: true;
    readonly event: true;
  };

  constructor(
    private readonly cfg: EventsConfig,
    private readonly link: KafkaLink,
    private readonly counters: BigInt64Array,
    instance: string,
    private readonly workerId: number,
    readonly stats: EventCounters,
  ) {
    this.keyOf = compileEventKey(cfg.key);
    // Header names are object keys in the event: a name given twice appears once (as in
    // an object literal), at its first place.
    this.headerNames = [...new Set((cfg.headers ?? []).map((h) => h.toLowerCase()))];
    const w = new EventWriter();
    w.str(instance);
    this.instanceField = Buffer.from(w.view());
    this.rec = {
      topic: cfg.topic,
      value: null,
      key: null,
      headers: [this.requestIdHeader],
      // Events carry their own `seq`: they take the producer's cheaper path, which does not
      // keep their order against other records (docs/kafka.md, "Fire-and-forget records").
      unordered: true,
      event: true,
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
    rec.value = this.eventBinary(s, err, seq);
    rec.key = this.keyOf === null ? null : this.keyOf(s);
    this.requestIdHeader[1] = s.requestId;
    const ok = this.link.produce(rec);
    if (ok) this.stats.produced++;
    else this.stats.dropped++;
  }

  /**
   * The event's fields in binary (a view of the reused buffer, valid until the next event),
   * for the JSON JSON.stringify gives for `{ seq, instance, worker, ts, requestId, client,
   * method, host, path, route, upstream, upstreamHost, lbKey, status, bytesIn, bytesOut,
   * latencyMs, attempts, flags, error, headers? }` (docs/kafka.md lists the fields). Public for
   * the unit test that holds its JSON to JSON.stringify.
   */
  eventBinary(s: Session, err: SluiceError | null, seq: number): Buffer {
    const w = this.bin;
    w.reset();
    w.num(seq);
    w.bytes(this.instanceField);
    w.num(this.workerId);
    w.num(Date.now());
    w.str(s.requestId);
    w.str(s.clientAddress);
    w.str(s.method);
    w.str(headerValue(s, 'host'));
    w.str(s.path);
    w.str(s.routeName);
    w.str(s.upstreamName);
    w.str(s.upstreamHost);
    w.strOrNull(s.lbKey === '' ? null : s.lbKey);
    w.num(s.status);
    w.num(s.bytesIn);
    w.num(s.bytesOut);
    // Durations in thousandths of a ms (written as k / 1000).
    w.num(Math.round((performance.now() - s.startedAt) * 1000));
    const tries = s.tries;
    if (tries === null) {
      w.u32(EVENT_NULL);
    } else {
      w.u32(tries.length);
      for (let i = 0; i < tries.length; i++) {
        const t = tries[i] as TryRecord;
        w.str(t.host);
        w.num(Math.round(t.at * 1000));
        // t.ms is Math.round(x * 1000) / 1000 (or -1): the integer k recovered here.
        w.num(Math.round(t.ms * 1000));
        w.str(t.outcome);
      }
    }
    const flags = s.flags;
    w.u32(flags.length);
    for (let i = 0; i < flags.length; i++) w.str(flags[i] as string);
    w.strOrNull(err === null ? null : err.code);
    const names = this.headerNames;
    if (names.length === 0) {
      w.u32(EVENT_NULL);
    } else {
      const countAt = w.len;
      w.u32(0);
      let count = 0;
      for (const n of names) {
        const v = headerValue(s, n);
        if (v === '') continue;
        w.str(n);
        w.str(v);
        count++;
      }
      w.patchU32(countAt, count);
    }
    return w.view();
  }
}
