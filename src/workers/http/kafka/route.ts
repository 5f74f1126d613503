/**
 * HTTP → Kafka routes (docs/kafka.md): the request body becomes one record (raw), one per line
 * (NDJSON) or one per element (JSON array), produced through the worker's KafkaLink.
 *
 *   sync  → 200 once the broker acknowledged every record (acks=all on an idempotent
 *           producer), with topic/partition/offset per record in the JSON body and in the
 *           Kafka-Partition / Kafka-Offset headers (comma-separated, in record order);
 *   async → 202 once the records are queued (`Prefer: respond-async` selects it per request).
 *
 * Errors: 400 a body that is not the declared format, 413 a record over maxRecordBytes,
 * 503 + Retry-After when the producer or broker is down or the queue is full, 504 past the
 * route's delivery timeout. The body is buffered, bounded by the route's body limit.
 *
 * Must never: wait without a deadline, keep unbounded memory, or copy Authorization/Cookie
 * into Kafka headers unless the route allows it (the schema refuses them otherwise).
 */
import { coarseNow, track, untrack, type DeadlineHolder } from '../clock';
import type { KafkaRouteAction } from '../../../shared/config';
import { ERRORS, sluiceError, type ErrorCode, type SluiceError } from '../../../shared/errors';
import type { KafkaDeliveryError, KafkaHeader, KafkaLink, KafkaRecord } from './link';
import type { CompiledRoute } from '../router';

/** What the route needs from the proxied request (implemented by ProxyCall). */
export interface KafkaRouteHost {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly requestId: string;
  readonly requestIdHeader: string;
  respond(status: number, body: string, headers?: readonly string[]): void;
  /** Receives the request body chunk by chunk (already copied); called once with isLast. */
  setBodySink(sink: (chunk: Buffer | null, isLast: boolean) => void): void;
}

interface Result {
  partition: number;
  offset: number;
  error: string | null;
}

function header(hs: readonly string[], name: string): string | undefined {
  for (let i = 0; i < hs.length; i += 2) if (hs[i] === name) return hs[i + 1];
  return undefined;
}

function jsonField(v: unknown, path: readonly string[]): string | null {
  let cur: unknown = v;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return null;
    cur = (cur as Record<string, unknown>)[p];
  }
  if (cur === undefined || cur === null) return null;
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

class BadBody extends Error {}

/** Splits the body into record values (and JSON values for key extraction). */
export function splitBody(body: Buffer, format: KafkaRouteAction['format']): { values: Buffer[]; parsed: unknown[] | null } {
  switch (format) {
    case 'raw':
      if (body.length === 0) throw new BadBody('the body is empty');
      return { values: [body], parsed: null };
    case 'ndjson': {
      const values: Buffer[] = [];
      const parsed: unknown[] = [];
      let start = 0;
      let line = 0;
      while (start < body.length) {
        let nl = body.indexOf(0x0a, start);
        if (nl === -1) nl = body.length;
        let end = nl;
        if (end > start && body[end - 1] === 0x0d) end--;
        line++;
        const slice = body.subarray(start, end);
        start = nl + 1;
        if (slice.toString('latin1').trim() === '') continue;
        try {
          parsed.push(JSON.parse(slice.toString('utf8')));
        } catch (e) {
          throw new BadBody(`line ${line} is not JSON: ${(e as Error).message}`);
        }
        values.push(slice);
      }
      if (values.length === 0) throw new BadBody('the body has no NDJSON records');
      return { values, parsed };
    }
    case 'json-array': {
      let v: unknown;
      try {
        v = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new BadBody(`the body is not JSON: ${(e as Error).message}`);
      }
      if (!Array.isArray(v)) throw new BadBody('the body is not a JSON array');
      if (v.length === 0) throw new BadBody('the JSON array is empty');
      return { values: v.map((el) => Buffer.from(JSON.stringify(el))), parsed: v };
    }
  }
}

function errorBody(code: ErrorCode, message: string, extra?: Record<string, unknown>): string {
  return `${JSON.stringify({ error: code, message, ...extra })}\n`;
}

/**
 * Takes over a request whose route action is `kafka`: collects the body, then produces.
 * `link` is null when the worker has no producer connection configured.
 */
export class KafkaRouteCall implements DeadlineHolder {
  deadline = 0;
  trackSlot = -1;
  private readonly chunks: Buffer[] = [];
  private results: Result[] = [];
  private waiting = 0;
  private finished = false;
  private firstError: SluiceError | null = null;

  constructor(
    private readonly host: KafkaRouteHost,
    private readonly route: CompiledRoute,
    private readonly a: KafkaRouteAction,
    private readonly link: KafkaLink | null,
  ) {}

  start(): void {
    this.host.setBodySink((chunk, isLast) => {
      if (chunk !== null && chunk.length > 0) this.chunks.push(chunk);
      if (isLast) this.produce(this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks));
    });
  }

  private fail(code: ErrorCode, message: string, retryAfter = 0, extra?: Record<string, unknown>): void {
    if (this.finished) return;
    this.finished = true;
    this.disarm();
    const hs = ['content-type', 'application/json', 'x-sluice-error', code];
    if (retryAfter > 0) hs.push('retry-after', String(retryAfter));
    this.host.respond(ERRORS[code].status, errorBody(code, message, extra), hs);
  }

  private produce(body: Buffer): void {
    const a = this.a;
    const link = this.link;
    let split: { values: Buffer[]; parsed: unknown[] | null };
    try {
      split = splitBody(body, a.format);
    } catch (e) {
      if (e instanceof BadBody) return this.fail('SLUICE_ERR_BAD_REQUEST', `not ${a.format}: ${e.message}`);
      throw e;
    }
    const { values, parsed } = split;
    for (let i = 0; i < values.length; i++) {
      if ((values[i] as Buffer).length > a.maxRecordBytes) {
        return this.fail('SLUICE_ERR_KAFKA_RECORD_TOO_LARGE', `record ${i} is ${(values[i] as Buffer).length} bytes, over ${a.maxRecordBytes}`);
      }
    }
    if (link === null || !link.ready || !link.brokerUp) {
      const retry = link?.retryAfterSeconds() ?? 5;
      return this.fail('SLUICE_ERR_KAFKA_UNAVAILABLE', link === null ? 'no Kafka producer is configured' : 'the Kafka producer or broker is not available', retry);
    }
    const keys = this.keys(values.length, parsed);
    if (keys === null) return;
    const headers = this.kafkaHeaders();
    const partitioner = a.partitioner;
    // An async-only route has no sync records whose order its records must keep: they may take
    // the producer's native fire-and-forget client, which keeps their own order.
    const ffOrdered = a.mode === 'async' && !a.transactional;
    const recs: KafkaRecord[] = values.map((value, i) => ({ topic: a.topic, value, key: keys[i] ?? null, partitioner, headers, ffOrdered }));
    const prefer = header(this.host.headers, 'prefer');
    const async = a.mode === 'async' || (prefer !== undefined && /(^|[,;\s])respond-async($|[,;\s])/i.test(prefer));
    this.results = recs.map(() => ({ partition: -1, offset: -1, error: null }));

    if (a.transactional) {
      const ok = link.produceTransaction(recs, (err, partitions, offsets) => {
        if (err !== null) return this.fail(err.code, err.message, err.code === 'SLUICE_ERR_KAFKA_UNAVAILABLE' ? link.retryAfterSeconds() : 0);
        for (let i = 0; i < this.results.length; i++) {
          const r = this.results[i] as Result;
          r.partition = partitions[i] ?? -1;
          r.offset = offsets[i] ?? -1;
        }
        if (!async) this.succeed();
      });
      if (!ok) return this.refused(link);
      if (async) this.accepted(recs.length);
      else this.armDeadline();
      return;
    }

    if (async) {
      for (let i = 0; i < recs.length; i++) {
        if (!link.produce(recs[i] as KafkaRecord)) {
          // Records before i are queued and will be delivered; say so.
          return this.fail(link.refusal() ?? 'SLUICE_ERR_KAFKA_QUEUE_FULL', `queued ${i} of ${recs.length} records`, link.retryAfterSeconds(), { queued: i });
        }
      }
      return this.accepted(recs.length);
    }

    for (let i = 0; i < recs.length; i++) {
      const r = this.results[i] as Result;
      const ok = link.produce(recs[i] as KafkaRecord, (err: KafkaDeliveryError | null, partition, offset) => {
        this.waiting--;
        if (err !== null) {
          r.error = err.code;
          this.firstError ??= err;
        } else {
          r.partition = partition;
          r.offset = offset;
        }
        if (this.waiting === 0) this.settle();
      });
      if (!ok) {
        this.firstError ??= sluiceError(link.refusal() ?? 'SLUICE_ERR_KAFKA_QUEUE_FULL');
        for (let j = i; j < recs.length; j++) (this.results[j] as Result).error = this.firstError.code;
        break;
      }
      this.waiting++;
    }
    if (this.waiting === 0) this.settle();
    else this.armDeadline();
  }

  private keys(n: number, parsed: unknown[] | null): (string | null)[] | null {
    const k = this.a.key;
    if (k === undefined) return new Array<string | null>(n).fill(null);
    if (k.header !== undefined) {
      const v = header(this.host.headers, k.header.toLowerCase()) ?? null;
      return new Array<string | null>(n).fill(v);
    }
    if (k.pathParam !== undefined) {
      const m = this.route.pathRegex?.exec(this.host.path) ?? null;
      const v = m?.groups?.[k.pathParam] ?? null;
      return new Array<string | null>(n).fill(v);
    }
    const path = (k.jsonField as string).split('.');
    const out: (string | null)[] = [];
    for (let i = 0; i < n; i++) {
      const v = jsonField(parsed?.[i], path);
      if (v === null) {
        this.fail('SLUICE_ERR_BAD_REQUEST', `record ${i} has no key field ${k.jsonField}`);
        return null;
      }
      out.push(v);
    }
    return out;
  }

  private kafkaHeaders(): KafkaHeader[] {
    const hs: KafkaHeader[] = [[this.host.requestIdHeader, this.host.requestId]];
    for (const name of this.a.headers ?? []) {
      const v = header(this.host.headers, name.toLowerCase());
      if (v !== undefined) hs.push([name.toLowerCase(), v]);
    }
    const ct = header(this.host.headers, 'content-type');
    if (ct !== undefined) hs.push(['content-type', ct]);
    return hs;
  }

  private refused(link: KafkaLink): void {
    const code = link.refusal() ?? 'SLUICE_ERR_KAFKA_QUEUE_FULL';
    this.fail(code, ERRORS[code].message, ERRORS[code].status === 503 ? link.retryAfterSeconds() : 0);
  }

  private accepted(n: number): void {
    if (this.finished) return;
    this.finished = true;
    this.host.respond(202, `${JSON.stringify({ topic: this.a.topic, queued: n })}\n`, ['content-type', 'application/json']);
  }

  private settle(): void {
    if (this.firstError !== null) {
      const e = this.firstError;
      const retry = e.status === 503 && this.link !== null ? this.link.retryAfterSeconds() : 0;
      return this.fail(e.code, e.message, retry, { results: this.resultsJson() });
    }
    this.succeed();
  }

  private resultsJson(): unknown[] {
    return this.results.map((r) => (r.error === null ? { topic: this.a.topic, partition: r.partition, offset: r.offset } : { topic: this.a.topic, error: r.error }));
  }

  private succeed(): void {
    if (this.finished) return;
    this.finished = true;
    this.disarm();
    const body = `${JSON.stringify({ topic: this.a.topic, results: this.resultsJson() })}\n`;
    this.host.respond(200, body, [
      'content-type',
      'application/json',
      'kafka-topic',
      this.a.topic,
      'kafka-partition',
      this.results.map((r) => r.partition).join(', '),
      'kafka-offset',
      this.results.map((r) => r.offset).join(', '),
    ]);
  }

  private armDeadline(): void {
    if (this.finished) return;
    this.deadline = coarseNow() + this.a.deliveryTimeoutMs;
    track(this);
  }

  private disarm(): void {
    if (this.deadline !== 0) {
      this.deadline = 0;
      untrack(this);
    }
  }

  onDeadline(): void {
    this.deadline = 0;
    // Reports that come later are still counted by the link; the client hears 504 now.
    this.fail('SLUICE_ERR_KAFKA_TIMEOUT', `no acknowledgement within ${this.a.deliveryTimeoutMs} ms`, 0, { results: this.resultsJson() });
  }
}
