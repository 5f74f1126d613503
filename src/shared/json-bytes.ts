/**
 * JSON written straight into bytes, for request events: the same text JSON.stringify gives
 * for the event object, without building the object, the JSON string and then its UTF-8
 * copy. The JavaScript formatter of events (event-binary.ts, the twin of the producer's
 * native one) writes with it.
 *
 * The output must equal JSON.stringify's byte for byte (test/unit/event-json.test.ts checks
 * it against JSON.stringify for ASCII, escapes, non-ASCII and lone surrogates): consumers
 * parse it, and a record's bytes should not depend on which encoder made them.
 *
 * Must never: keep a reference to what it wrote after `view()` is consumed (the buffer is
 * reused by the next event).
 */

/** A buffer of at least `need` bytes (doubling), holding the first `used` bytes of `buf`. */
export function grownBuffer(buf: Buffer, used: number, need: number): Buffer {
  let size = buf.length * 2;
  while (size < need) size *= 2;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, used);
  return next;
}

/** One reused, growable byte buffer: what the JSON and the binary event writers write into. */
export class ReusedBytes {
  protected buf: Buffer;
  len = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Starts over (the buffer is reused). */
  reset(): void {
    this.len = 0;
  }

  /** The bytes written since reset(); valid until the next reset(). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  protected ensure(extra: number): void {
    if (this.len + extra > this.buf.length) this.buf = grownBuffer(this.buf, this.len, this.len + extra);
  }
}

export class JsonBytes extends ReusedBytes {
  constructor(initialBytes = 1024) {
    super(initialBytes);
  }

  /** Text that is already JSON and ASCII (punctuation, keys with their quotes, literals). */
  raw(s: string): void {
    const n = s.length;
    this.ensure(n);
    const b = this.buf;
    let o = this.len;
    for (let i = 0; i < n; i++) b[o++] = s.charCodeAt(i);
    this.len = o;
  }

  /** Bytes that are already JSON (`src[from, to)`), copied as they are. */
  bytes(src: Uint8Array, from: number, to: number): void {
    this.ensure(to - from);
    this.buf.set(src.subarray(from, to), this.len);
    this.len += to - from;
  }

  /** A JSON string literal, escaped as JSON.stringify does. */
  str(s: string): void {
    const n = s.length;
    // Worst case of the ASCII path: every unit escaped as \u00XX (6 bytes), plus the quotes.
    this.ensure(n * 6 + 2);
    const b = this.buf;
    const start = this.len;
    let o = start;
    b[o++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) {
        b[o++] = c;
      } else if (c < 0x80) {
        o = escapeAscii(b, o, c);
      } else {
        // Non-ASCII (rare in events): JSON.stringify's own escaping (lone surrogates as
        // \udXXX), then its UTF-8, from the start of the literal.
        this.len = start;
        const j = JSON.stringify(s);
        this.ensure(j.length * 3);
        this.len += this.buf.write(j, this.len, 'utf8');
        return;
      }
    }
    b[o++] = 0x22;
    this.len = o;
  }

  /** A number as JSON.stringify writes it (non-finite ones as null). */
  num(v: number): void {
    if (Number.isSafeInteger(v)) this.int(v);
    else this.raw(Number.isFinite(v) ? String(v) : 'null');
  }

  /**
   * A safe integer in decimal, digit by digit: String(n) misses V8's number-string cache for
   * every new value, and writing the digits is far cheaper.
   */
  int(v: number): void {
    this.ensure(17);
    const b = this.buf;
    let o = this.len;
    if (v < 0) {
      b[o++] = 0x2d;
      v = -v;
    }
    if (v < 10) {
      b[o++] = 0x30 + v;
      this.len = o;
      return;
    }
    let digits = 0;
    for (let t = v; t >= 1; t = Math.floor(t / 10)) digits++;
    let at = o + digits;
    this.len = at;
    while (at > o) {
      const q = Math.floor(v / 10);
      b[--at] = 0x30 + (v - q * 10);
      v = q;
    }
  }

  /**
   * k / 1000 as JSON.stringify writes that number (for `Math.round(x * 1000) / 1000` values:
   * pass the integer k). The shortest round-trip text of a decimal with at most 15 significant
   * digits is that decimal, so this is k's digits with the point three places in and trailing
   * zeros dropped.
   */
  milli(k: number): void {
    if (!Number.isSafeInteger(k) || Math.abs(k) >= 1e15) {
      this.num(k / 1000);
      return;
    }
    if (k < 0) {
      this.raw('-');
      k = -k;
    }
    const whole = Math.floor(k / 1000);
    let frac = k - whole * 1000;
    this.int(whole);
    if (frac === 0) return;
    this.ensure(4);
    const b = this.buf;
    let o = this.len;
    b[o++] = 0x2e;
    let width = 3;
    while (frac % 10 === 0) {
      frac /= 10;
      width--;
    }
    for (let d = width - 1; d >= 0; d--) {
      const p = 10 ** d;
      const digit = Math.floor(frac / p);
      b[o++] = 0x30 + digit;
      frac -= digit * p;
    }
    this.len = o;
  }

  /** A string, or null. */
  strOrNull(s: string | null): void {
    if (s === null) this.raw('null');
    else this.str(s);
  }

  /** An array of strings. */
  strArray(a: readonly string[]): void {
    this.raw('[');
    for (let i = 0; i < a.length; i++) {
      if (i > 0) this.raw(',');
      this.str(a[i] as string);
    }
    this.raw(']');
  }
}

const HEX = '0123456789abcdef';

/** JSON.stringify's two-character escapes: the character, and the letter after the backslash. */
const SHORT_ESCAPED = '"\\\b\t\n\f\r';
const SHORT_LETTER = '"\\btnfr';
/** By ASCII code: the letter of its two-character escape, or 0 (escaped as \u00XX). */
const SHORT_ESCAPE = new Uint8Array(0x80);
for (let i = 0; i < SHORT_ESCAPED.length; i++) SHORT_ESCAPE[SHORT_ESCAPED.charCodeAt(i)] = SHORT_LETTER.charCodeAt(i);

/** Control characters (below 0x20), '"' and '\' as JSON.stringify escapes them. */
function escapeAscii(b: Buffer, o: number, c: number): number {
  b[o++] = 0x5c;
  const short = SHORT_ESCAPE[c] as number;
  if (short !== 0) {
    b[o++] = short;
    return o;
  }
  // The other control characters, below 0x20.
  b[o++] = 0x75; // u
  b[o++] = 0x30;
  b[o++] = 0x30;
  b[o++] = HEX.charCodeAt(c >> 4);
  b[o++] = HEX.charCodeAt(c & 15);
  return o;
}
