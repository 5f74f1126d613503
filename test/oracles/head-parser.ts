/**
 * HTTP/1.1 response-head parser in JavaScript: the reference (oracle) for the addon's
 * `parseResponseHead` and `compactResponseHead` (native/core/src/head.rs). Both must return
 * the same value and write the same `out` slots for every input, errors included; the
 * differential tests (test/unit/native-head.test.ts, head-native-equivalence.test.ts,
 * native-arena-head.test.ts) hold the addon to it. Production calls the addon only; the
 * layout and constants both share are src/shared/native/head-layout.ts.
 *
 * One call per head: the caller passes the socket bytes and a preallocated Uint32Array, and
 * gets back the head length (> 0), 0 (incomplete: call again from the same `start` when more
 * bytes arrived) or a negative ERR_* code. Offsets, never strings. Never throws for any byte
 * content (only for impossible arguments).
 */
import {
  COMPACT_NOT_SIMPLE,
  COMPACT_TOO_LARGE,
  connectionListsOnlyKnown,
  DEFAULT_MAX_HEAD_BYTES,
  ERR_BAD_CONTENT_LENGTH,
  ERR_BAD_HEADER_NAME,
  ERR_BAD_HEADER_VALUE,
  ERR_BAD_STATUS_LINE,
  ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING,
  ERR_HEAD_TOO_LARGE,
  ERR_OBS_FOLD,
  ERR_TOO_MANY_HEADERS,
  FLAG_CHUNKED,
  FLAG_CONNECTION_CLOSE,
  FLAG_CONNECTION_KEEP_ALIVE,
  FLAG_CONNECTION_UPGRADE,
  FLAG_CONTENT_LENGTH,
  FLAG_HTTP_1_0,
  FLAG_KEEP_ALIVE_TIMEOUT,
  FLAG_NON_ASCII,
  FLAG_TRANSFER_ENCODING,
  FLAG_UPGRADE,
  HEAD_NEED_MORE,
  HEADER_SLOTS,
  isResponseHopBytes,
  OUT_CONTENT_LENGTH_HI,
  OUT_CONTENT_LENGTH_LO,
  OUT_ERROR_OFFSET,
  OUT_FLAGS,
  OUT_HEADER_COUNT,
  OUT_HEADERS,
  OUT_KEEP_ALIVE_TIMEOUT,
  OUT_REASON_END,
  OUT_REASON_START,
  OUT_STATUS,
  OUT_VERSION_MINOR,
} from '../../src/shared/native/head-layout';

export * from '../../src/shared/native/head-layout';

const MAX_CONTENT_LENGTH = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;

// ---- byte classes ---------------------------------------------------------------------------
const TCHAR = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const isAlnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  TCHAR[c] = isAlnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)) ? 1 : 0;
}

/** Bytes allowed in a reason phrase or a field value: HTAB, SP, VCHAR, obs-text. */
const FIELD = new Uint8Array(256);
for (let c = 0; c < 256; c++) FIELD[c] = c === 0x09 || (c >= 0x20 && c !== 0x7f) ? 1 : 0;

const SP = 0x20, HTAB = 0x09, CR = 0x0d, LF = 0x0a, COLON = 0x3a, COMMA = 0x2c, SEMI = 0x3b, QUOTE = 0x22;

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** buf[a..b) equals the lowercase ASCII `lit`, case-insensitively. */
function eqLower(buf: Uint8Array, a: number, b: number, lit: string): boolean {
  if (b - a !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) {
    if (lower(buf[a + i] as number) !== lit.charCodeAt(i)) return false;
  }
  return true;
}

// Bounds of the last trim/element scan (module-level registers: no allocation).
let tA = 0;
let tB = 0;

function trim(buf: Uint8Array, a: number, b: number): void {
  while (a < b && isOws(buf[a] as number)) a++;
  while (b > a && isOws(buf[b - 1] as number)) b--;
  tA = a;
  tB = b;
}

function indexOf(buf: Uint8Array, a: number, b: number, c: number): number {
  for (let i = a; i < b; i++) if (buf[i] === c) return i;
  return b;
}

/** Content-Length list value → number, or -1 when invalid (prior: earlier value or -1). */
function parseContentLength(buf: Uint8Array, a: number, b: number, prior: number): number {
  let result = prior;
  let e = a;
  for (;;) {
    const comma = indexOf(buf, e, b, COMMA);
    trim(buf, e, comma);
    if (tA === tB) return -1;
    let n = 0;
    for (let i = tA; i < tB; i++) {
      const c = buf[i] as number;
      if (!isDigit(c)) return -1;
      n = n * 10 + (c - 0x30);
      if (n > MAX_CONTENT_LENGTH) return -1;
    }
    if (result >= 0 && result !== n) return -1;
    result = n;
    if (comma === b) return result;
    e = comma + 1;
  }
}

/** 1 if the line's last named coding is chunked, 0 if another, -1 if it names none. */
function lastCodingIsChunked(buf: Uint8Array, a: number, b: number): number {
  let last = -1;
  let e = a;
  for (;;) {
    const comma = indexOf(buf, e, b, COMMA);
    trim(buf, e, indexOf(buf, e, comma, SEMI));
    if (tA < tB) last = eqLower(buf, tA, tB, 'chunked') ? 1 : 0;
    if (comma === b) return last;
    e = comma + 1;
  }
}

function connectionFlags(buf: Uint8Array, a: number, b: number): number {
  let flags = 0;
  let e = a;
  for (;;) {
    const comma = indexOf(buf, e, b, COMMA);
    trim(buf, e, comma);
    if (eqLower(buf, tA, tB, 'close')) flags |= FLAG_CONNECTION_CLOSE;
    else if (eqLower(buf, tA, tB, 'keep-alive')) flags |= FLAG_CONNECTION_KEEP_ALIVE;
    else if (eqLower(buf, tA, tB, 'upgrade')) flags |= FLAG_CONNECTION_UPGRADE;
    if (comma === b) return flags;
    e = comma + 1;
  }
}

/** `timeout=N` from a Keep-Alive value, or -1. */
function keepAliveTimeout(buf: Uint8Array, a: number, b: number): number {
  let e = a;
  for (;;) {
    let sep = e;
    while (sep < b && buf[sep] !== COMMA && buf[sep] !== SEMI) sep++;
    const t = timeoutParam(buf, e, sep);
    if (t >= 0) return t;
    if (sep === b) return -1;
    e = sep + 1;
  }
}

function timeoutParam(buf: Uint8Array, a: number, b: number): number {
  trim(buf, a, b);
  let p = tA;
  const end = tB;
  if (end - p < 7 || !eqLower(buf, p, p + 7, 'timeout')) return -1;
  trim(buf, p + 7, end);
  p = tA;
  if (p >= end || buf[p] !== 0x3d /* = */) return -1;
  trim(buf, p + 1, end);
  let s = tA, f = tB;
  if (f - s >= 2 && buf[s] === QUOTE && buf[f - 1] === QUOTE) {
    s++;
    f--;
  }
  if (s === f) return -1;
  let t = 0;
  for (let i = s; i < f; i++) {
    const c = buf[i] as number;
    if (!isDigit(c)) return -1;
    t = Math.min(t * 10 + (c - 0x30), 0xffffffff);
  }
  return t;
}

/** Out of bytes at `limit`: wait for more, or the head is already too large. */
function needMore(out: Uint32Array, capped: boolean, limit: number): number {
  if (capped) {
    out[OUT_ERROR_OFFSET] = limit;
    return ERR_HEAD_TOO_LARGE;
  }
  return HEAD_NEED_MORE;
}

function fail(out: Uint32Array, code: number, at: number): number {
  out[OUT_ERROR_OFFSET] = at;
  return code;
}

/**
 * Parses one HTTP/1.1 response head in `buf[start .. end)`; see the module header and the
 * OUT_* / FLAG_* / ERR_* constants. Throws RangeError only for impossible arguments.
 */
export function parseResponseHead(
  buf: Uint8Array,
  start: number,
  end: number,
  out: Uint32Array,
  maxHeadBytes?: number,
): number {
  // Same coercions as the N-API glue (u32 arguments).
  let max = DEFAULT_MAX_HEAD_BYTES;
  if (maxHeadBytes !== undefined && maxHeadBytes !== null) {
    max = maxHeadBytes >>> 0;
    if (max === 0) throw new RangeError('parseResponseHead: maxHeadBytes must be >= 1');
  }
  start >>>= 0;
  end >>>= 0;
  if (start > end || end > buf.length) {
    throw new RangeError('parseResponseHead: need 0 <= start <= end <= buf.length');
  }
  if (out.length < OUT_HEADERS) throw new RangeError('parseResponseHead: out must hold at least 10 slots');
  out.fill(0, 0, OUT_HEADERS);
  return parse(buf, start, end, out, max);
}

function parse(buf: Uint8Array, start: number, end: number, out: Uint32Array, maxHeadBytes: number): number {
  const capped = end - start >= maxHeadBytes;
  const limit = capped ? start + maxHeadBytes : end;
  const maxHeaders = Math.floor((out.length - OUT_HEADERS) / HEADER_SLOTS);

  // ---- status line ----
  let p = start;
  const prefix = 'HTTP/1.';
  for (let k = 0; k < 7; k++) {
    if (p >= limit) return needMore(out, capped, limit);
    if (buf[p] !== prefix.charCodeAt(k)) return fail(out, ERR_BAD_STATUS_LINE, p);
    p++;
  }
  if (p >= limit) return needMore(out, capped, limit);
  if (!isDigit(buf[p] as number)) return fail(out, ERR_BAD_STATUS_LINE, p);
  const minor = (buf[p] as number) - 0x30;
  p++;
  if (p >= limit) return needMore(out, capped, limit);
  if (buf[p] !== SP) return fail(out, ERR_BAD_STATUS_LINE, p);
  p++;
  let status = 0;
  for (let k = 0; k < 3; k++) {
    if (p >= limit) return needMore(out, capped, limit);
    const c = buf[p] as number;
    if (!isDigit(c) || (k === 0 && c === 0x30)) return fail(out, ERR_BAD_STATUS_LINE, p);
    status = status * 10 + (c - 0x30);
    p++;
  }
  if (p >= limit) return needMore(out, capped, limit);
  if (buf[p] === SP) p++;
  else if (buf[p] !== CR) return fail(out, ERR_BAD_STATUS_LINE, p);
  const reasonStart = p;
  while (p < limit && FIELD[buf[p] as number] === 1) p++;
  if (p >= limit) return needMore(out, capped, limit);
  if (buf[p] !== CR) return fail(out, ERR_BAD_STATUS_LINE, p);
  const reasonEnd = p;
  p++;
  if (p >= limit) return needMore(out, capped, limit);
  if (buf[p] !== LF) return fail(out, ERR_BAD_STATUS_LINE, p - 1);
  p++;
  out[OUT_STATUS] = status;
  out[OUT_VERSION_MINOR] = minor;
  out[OUT_REASON_START] = reasonStart;
  out[OUT_REASON_END] = reasonEnd;

  // ---- header lines ----
  let flags = minor === 0 ? FLAG_HTTP_1_0 : 0;
  let contentLength = 0;
  let keepAlive = 0;
  let count = 0;
  for (;;) {
    if (p >= limit) return needMore(out, capped, limit);
    const first = buf[p] as number;
    if (first === CR) {
      p++;
      if (p >= limit) return needMore(out, capped, limit);
      if (buf[p] !== LF) return fail(out, ERR_BAD_HEADER_NAME, p - 1);
      p++;
      break;
    }
    if (isOws(first)) return fail(out, ERR_OBS_FOLD, p);
    if (count === maxHeaders) return fail(out, ERR_TOO_MANY_HEADERS, p);
    const nameStart = p;
    while (p < limit && TCHAR[buf[p] as number] === 1) p++;
    if (p >= limit) return needMore(out, capped, limit);
    if (buf[p] !== COLON) return fail(out, ERR_BAD_HEADER_NAME, p);
    if (p === nameStart) return fail(out, ERR_BAD_HEADER_NAME, p);
    const nameEnd = p;
    p++;
    for (;;) {
      if (p >= limit) return needMore(out, capped, limit);
      if (!isOws(buf[p] as number)) break;
      p++;
    }
    const valueStart = p;
    while (p < limit && FIELD[buf[p] as number] === 1) p++;
    if (p >= limit) return needMore(out, capped, limit);
    if (buf[p] !== CR) return fail(out, ERR_BAD_HEADER_VALUE, p);
    let valueEnd = p;
    while (valueEnd > valueStart && isOws(buf[valueEnd - 1] as number)) valueEnd--;
    p++;
    if (p >= limit) return needMore(out, capped, limit);
    if (buf[p] !== LF) return fail(out, ERR_BAD_HEADER_VALUE, p - 1);
    p++;

    const slot = OUT_HEADERS + count * HEADER_SLOTS;
    out[slot] = nameStart;
    out[slot + 1] = nameEnd;
    out[slot + 2] = valueStart;
    out[slot + 3] = valueEnd;
    count++;

    switch (nameEnd - nameStart) {
      case 14:
        if (eqLower(buf, nameStart, nameEnd, 'content-length')) {
          const prior = (flags & FLAG_CONTENT_LENGTH) !== 0 ? contentLength : -1;
          const n = parseContentLength(buf, valueStart, valueEnd, prior);
          if (n < 0) return fail(out, ERR_BAD_CONTENT_LENGTH, valueStart);
          contentLength = n;
          flags |= FLAG_CONTENT_LENGTH;
        }
        break;
      case 17:
        if (eqLower(buf, nameStart, nameEnd, 'transfer-encoding')) {
          flags |= FLAG_TRANSFER_ENCODING;
          const chunked = lastCodingIsChunked(buf, valueStart, valueEnd);
          if (chunked === 1) flags |= FLAG_CHUNKED;
          else if (chunked === 0) flags &= ~FLAG_CHUNKED;
        }
        break;
      case 10:
        if (eqLower(buf, nameStart, nameEnd, 'connection')) {
          flags |= connectionFlags(buf, valueStart, valueEnd);
        } else if (eqLower(buf, nameStart, nameEnd, 'keep-alive')) {
          if ((flags & FLAG_KEEP_ALIVE_TIMEOUT) === 0) {
            const t = keepAliveTimeout(buf, valueStart, valueEnd);
            if (t >= 0) {
              keepAlive = t;
              flags |= FLAG_KEEP_ALIVE_TIMEOUT;
            }
          }
        }
        break;
      case 7:
        if (eqLower(buf, nameStart, nameEnd, 'upgrade')) flags |= FLAG_UPGRADE;
        break;
      default:
        break;
    }
  }

  if ((flags & FLAG_CONTENT_LENGTH) !== 0 && (flags & FLAG_TRANSFER_ENCODING) !== 0) {
    return fail(out, ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING, start);
  }
  for (let i = start; i < p; i++) {
    if ((buf[i] as number) >= 0x80) {
      flags |= FLAG_NON_ASCII;
      break;
    }
  }
  out[OUT_HEADER_COUNT] = count;
  out[OUT_CONTENT_LENGTH_HI] = Math.floor(contentLength / TWO32);
  out[OUT_CONTENT_LENGTH_LO] = contentLength >>> 0;
  out[OUT_FLAGS] = flags;
  out[OUT_KEEP_ALIVE_TIMEOUT] = keepAlive;
  return p - start;
}

/**
 * The text uWS's writeStatus takes for the head parseResponseHead just described in `out`
 * (offsets into `buf`), written into `dst`: `statusLine` (latin1), then `\r\nName: value` for
 * every header as received except the hop-by-hop ones, Date and Content-Length, then `extra`
 * (UTF-8, `\r\n`-prefixed lines). Returns the length, COMPACT_NOT_SIMPLE or COMPACT_TOO_LARGE
 * (the caller then builds the block from strings). The addon's version is the one the worker
 * calls; like it, this one gives up when fewer than 5 bytes of `dst` would be left after
 * the status line or after `extra`.
 */
export function compactResponseHead(buf: Uint8Array, out: Uint32Array, dst: Uint8Array, statusLine: string, extra: string): number {
  const d = Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength);
  if (Buffer.byteLength(statusLine, 'latin1') + 5 > d.length) return COMPACT_TOO_LARGE;
  let at = d.write(statusLine, 0, 'latin1');
  const n = out[OUT_HEADER_COUNT] as number;
  for (let i = 0; i < n; i++) {
    const b = OUT_HEADERS + HEADER_SLOTS * i;
    const na = out[b] as number, nb = out[b + 1] as number, va = out[b + 2] as number, vb = out[b + 3] as number;
    if (isResponseHopBytes(buf, na, nb)) {
      if (nb - na === 10 && eqLower(buf, na, nb, 'connection') && !connectionListsOnlyKnown(buf, va, vb)) return COMPACT_NOT_SIMPLE;
      continue;
    }
    const len = 2 + (nb - na) + 2 + (vb - va);
    if (at + len > d.length) return COMPACT_TOO_LARGE;
    d[at++] = CR;
    d[at++] = LF;
    d.set(buf.subarray(na, nb), at);
    at += nb - na;
    d[at++] = COLON;
    d[at++] = SP;
    d.set(buf.subarray(va, vb), at);
    at += vb - va;
  }
  const e = Buffer.byteLength(extra, 'utf8');
  if (at + e + 5 > d.length) return COMPACT_TOO_LARGE;
  return at + d.write(extra, at, 'utf8');
}
