/**
 * Request events as binary fields (a `PRODUCE` record with flag RF_EVENT): the HTTP worker
 * copies the event's strings and numbers (EventWriter), and the producer process writes the
 * JSON, hundreds of events per native call (`sluice_core::event_json`, the default path), or
 * with `formatEventJson` here when fire-and-forget records take the JavaScript clients. In
 * the worker, where an event is written once per request with every cache cold, the JSON
 * itself was most of an event's cost, the fields less (docs/kafka.md, "What events cost").
 *
 * Layout (little-endian; the Rust module's doc is the reference): numbers are f64; a string
 * is `u32 n` and its bytes, `n = 0xffffffff` for null, bit 31 set when the bytes are already a
 * JSON string literal (text with a non-ASCII character: JSON.stringify's own escaping,
 * lone surrogates included), else ASCII that the formatter escapes. Both formatters must give
 * JSON.stringify's text for the event object, byte for byte (test/unit/event-binary.test.ts).
 *
 * Must never: keep a reference to a view after the next event (the buffers are reused).
 */
import { JsonBytes, ReusedBytes } from './json-bytes';

export const EVENT_NULL = 0xffffffff;
const LITERAL = 0x80000000;
/** Longest string a field holds (the length keeps bit 31 for the literal mark). */
const MAX_STRING_BYTES = 0x7fffffff;

/** The worker's side: fields in the order of the layout, into one reused buffer. */
export class EventWriter extends ReusedBytes {
  constructor(initialBytes = 512) {
    super(initialBytes);
  }

  num(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
  }

  /** Bytes written before (a field encoded once, such as the instance name). */
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Overwrites the u32 written at `at` (a count known only after its items). */
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v >>> 0, at);
  }

  /** A string: its ASCII bytes, or (any other character) JSON.stringify's literal as UTF-8. */
  str(s: string): void {
    const n = s.length;
    this.ensure(n + 4);
    const b = this.buf;
    const at = this.len;
    let o = at + 4;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.literal(s, at);
        return;
      }
      b[o++] = c;
    }
    b.writeUInt32LE(n, at);
    this.len = o;
  }

  strOrNull(s: string | null): void {
    if (s === null) this.u32(EVENT_NULL);
    else this.str(s);
  }

  private literal(s: string, at: number): void {
    const j = JSON.stringify(s);
    this.len = at;
    this.ensure(4 + j.length * 3);
    const n = this.buf.write(j, at + 4, 'utf8');
    if (n > MAX_STRING_BYTES) throw new RangeError('event string too long');
    this.buf.writeUInt32LE((n | LITERAL) >>> 0, at);
    this.len = at + 4 + n;
  }
}

class Reader {
  p: number;
  constructor(
    readonly b: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.p = start;
  }
  need(n: number): boolean {
    return this.p + n <= this.end;
  }
  /** The next u32 (a count), or -1 past the end. */
  u32(): number {
    if (!this.need(4)) return -1;
    const v = this.b.readUInt32LE(this.p);
    this.p += 4;
    return v;
  }
}

const json = new JsonBytes(1024);

/**
 * The JSON of the binary event `b[start, end)` (a new Buffer), or null when it is malformed:
 * the JavaScript twin of `sluice_core::event_json::format_event`.
 */
export function formatEventJson(b: Buffer, start: number, end: number): Buffer | null {
  const r = new Reader(b, start, end);
  const j = json;
  j.reset();
  j.raw('{"seq":"');
  if (!num(r, j)) return null;
  j.raw('","instance":');
  if (!str(r, j)) return null;
  j.raw(',"worker":');
  if (!num(r, j)) return null;
  j.raw(',"ts":');
  if (!num(r, j)) return null;
  for (const key of STRING_KEYS) {
    j.raw(key);
    if (!str(r, j)) return null;
  }
  for (const key of NUMBER_KEYS) {
    j.raw(key);
    if (!num(r, j)) return null;
  }
  j.raw(',"latencyMs":');
  if (!milli(r, j)) return null;
  j.raw(',"attempts":');
  const tries = r.u32();
  if (tries < 0) return null;
  if (tries === EVENT_NULL) {
    j.raw('null');
  } else {
    j.raw('[');
    for (let i = 0; i < tries; i++) {
      j.raw(i === 0 ? '{"host":' : ',{"host":');
      if (!str(r, j)) return null;
      j.raw(',"at":');
      if (!milli(r, j)) return null;
      j.raw(',"ms":');
      if (!milli(r, j)) return null;
      j.raw(',"outcome":');
      if (!str(r, j)) return null;
      j.raw('}');
    }
    j.raw(']');
  }
  j.raw(',"flags":[');
  const flags = r.u32();
  if (flags < 0) return null;
  for (let i = 0; i < flags; i++) {
    if (i > 0) j.raw(',');
    if (!str(r, j)) return null;
  }
  j.raw('],"error":');
  if (!str(r, j)) return null;
  const headers = r.u32();
  if (headers < 0) return null;
  if (headers !== EVENT_NULL) {
    j.raw(',"headers":{');
    for (let i = 0; i < headers; i++) {
      if (i > 0) j.raw(',');
      if (!str(r, j)) return null;
      j.raw(':');
      if (!str(r, j)) return null;
    }
    j.raw('}');
  }
  j.raw('}');
  if (r.p !== end) return null;
  return Buffer.from(j.view());
}

const STRING_KEYS = [',"requestId":', ',"client":', ',"method":', ',"host":', ',"path":', ',"route":', ',"upstream":', ',"upstreamHost":', ',"lbKey":'];
const NUMBER_KEYS = [',"status":', ',"bytesIn":', ',"bytesOut":'];

function num(r: Reader, j: JsonBytes): boolean {
  if (!r.need(8)) return false;
  j.num(r.b.readDoubleLE(r.p));
  r.p += 8;
  return true;
}

function milli(r: Reader, j: JsonBytes): boolean {
  if (!r.need(8)) return false;
  j.milli(r.b.readDoubleLE(r.p));
  r.p += 8;
  return true;
}

function str(r: Reader, j: JsonBytes): boolean {
  const n = r.u32();
  if (n < 0) return false;
  if (n === EVENT_NULL) {
    j.raw('null');
    return true;
  }
  const len = n & MAX_STRING_BYTES;
  if (!r.need(len)) return false;
  const from = r.p;
  r.p += len;
  if ((n & LITERAL) !== 0) j.bytes(r.b, from, from + len);
  else j.str(r.b.toString('latin1', from, from + len));
  return true;
}
