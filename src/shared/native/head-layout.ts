/**
 * What production needs of the response-head parser's interface: the `out` layout, flags and
 * error codes `parseResponseHead` (the addon's, native/core/src/head.rs) reports, the results
 * of `compactResponseHead`, and the two field tests the worker applies to parsed heads
 * (`isResponseHopBytes`, `connectionListsOnlyKnown`). The JavaScript parser these describe,
 * the reference the addon is tested against, is test/oracles/head-parser.ts.
 */

// ---- `out` layout ------------------------------------------------------------------------
/** Status code (100..999). */
export const OUT_STATUS = 0;
/** Minor version digit (1 for HTTP/1.1, 0 for HTTP/1.0). */
export const OUT_VERSION_MINOR = 1;
/** Number of header lines reported from OUT_HEADERS on. */
export const OUT_HEADER_COUNT = 2;
/** Content-Length high 21 bits (value = hi * 2^32 + lo); valid with FLAG_CONTENT_LENGTH. */
export const OUT_CONTENT_LENGTH_HI = 3;
/** Content-Length low 32 bits. */
export const OUT_CONTENT_LENGTH_LO = 4;
/** FLAG_* bits. */
export const OUT_FLAGS = 5;
/** `Keep-Alive: timeout=N` seconds; valid with FLAG_KEEP_ALIVE_TIMEOUT. */
export const OUT_KEEP_ALIVE_TIMEOUT = 6;
/** Reason phrase [start, end) offsets in buf (equal when the reason is empty). */
export const OUT_REASON_START = 7;
export const OUT_REASON_END = 8;
/** On an error return: offset in buf where the error was found. */
export const OUT_ERROR_OFFSET = 9;
/** Header i occupies out[OUT_HEADERS + 4i .. + 4): name start, name end, value start, value end. */
export const OUT_HEADERS = 10;
export const HEADER_SLOTS = 4;

/** Size of an `out` array with room for `maxHeaders` headers. */
export function headOutLength(maxHeaders: number): number {
  return OUT_HEADERS + HEADER_SLOTS * maxHeaders;
}

// ---- flags --------------------------------------------------------------------------------
/** Transfer-Encoding's final coding is chunked. */
export const FLAG_CHUNKED = 1 << 0;
export const FLAG_CONNECTION_CLOSE = 1 << 1;
export const FLAG_CONNECTION_KEEP_ALIVE = 1 << 2;
export const FLAG_CONNECTION_UPGRADE = 1 << 3;
export const FLAG_KEEP_ALIVE_TIMEOUT = 1 << 4;
export const FLAG_HTTP_1_0 = 1 << 5;
export const FLAG_CONTENT_LENGTH = 1 << 6;
/** Transfer-Encoding present; without FLAG_CHUNKED the body runs to connection close. */
export const FLAG_TRANSFER_ENCODING = 1 << 7;
/** An Upgrade header is present. */
export const FLAG_UPGRADE = 1 << 8;
/** The head has a byte >= 0x80 (reason phrase or a field value): forward it as bytes, not text. */
export const FLAG_NON_ASCII = 1 << 9;

// ---- return codes ---------------------------------------------------------------------------
export const HEAD_NEED_MORE = 0;
export const ERR_BAD_STATUS_LINE = -1;
export const ERR_BAD_HEADER_NAME = -2;
export const ERR_BAD_HEADER_VALUE = -3;
export const ERR_OBS_FOLD = -4;
export const ERR_TOO_MANY_HEADERS = -5;
export const ERR_HEAD_TOO_LARGE = -6;
export const ERR_BAD_CONTENT_LENGTH = -7;
export const ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING = -8;

/** Stable names of the error codes (for logs and error reasons). */
export const HEAD_ERROR_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [ERR_BAD_STATUS_LINE]: 'bad status line',
  [ERR_BAD_HEADER_NAME]: 'bad header name',
  [ERR_BAD_HEADER_VALUE]: 'bad header value',
  [ERR_OBS_FOLD]: 'obsolete line folding',
  [ERR_TOO_MANY_HEADERS]: 'too many headers',
  [ERR_HEAD_TOO_LARGE]: 'head too large',
  [ERR_BAD_CONTENT_LENGTH]: 'bad content-length',
  [ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING]: 'content-length with transfer-encoding',
});

export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024;
const TWO32 = 4294967296;

/** Content-Length from a successful parse, or -1 when absent. */
export function contentLengthOf(out: Uint32Array): number {
  return ((out[OUT_FLAGS] as number) & FLAG_CONTENT_LENGTH) === 0
    ? -1
    : (out[OUT_CONTENT_LENGTH_HI] as number) * TWO32 + (out[OUT_CONTENT_LENGTH_LO] as number);
}

// ---- fields of a parsed head ----------------------------------------------------------------

const SP = 0x20, HTAB = 0x09, COMMA = 0x2c;

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** buf[a..b) equals the lowercase ASCII `lit`, case-insensitively. */
export function eqLower(buf: Uint8Array, a: number, b: number, lit: string): boolean {
  if (b - a !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) {
    if (lower(buf[a + i] as number) !== lit.charCodeAt(i)) return false;
  }
  return true;
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

function indexOf(buf: Uint8Array, a: number, b: number, c: number): number {
  for (let i = a; i < b; i++) if (buf[i] === c) return i;
  return b;
}

// Bounds of the last trim (module-level registers: no allocation).
let tA = 0;
let tB = 0;

function trim(buf: Uint8Array, a: number, b: number): void {
  while (a < b && isOws(buf[a] as number)) a++;
  while (b > a && isOws(buf[b - 1] as number)) b--;
  tA = a;
  tB = b;
}


/** compactResponseHead: a Connection header names a field other than close/keep-alive/upgrade. */
export const COMPACT_NOT_SIMPLE = -1;
/** compactResponseHead: the block does not fit in `dst`. */
export const COMPACT_TOO_LARGE = -2;

/** buf[a..b) is a response field never forwarded: hop-by-hop (RFC 9110 §7.6.1), Date, Content-Length. */
export function isResponseHopBytes(buf: Uint8Array, a: number, b: number): boolean {
  switch (b - a) {
    case 2:
      return eqLower(buf, a, b, 'te');
    case 4:
      return eqLower(buf, a, b, 'date');
    case 7:
      return eqLower(buf, a, b, 'upgrade') || eqLower(buf, a, b, 'trailer');
    case 10:
      return eqLower(buf, a, b, 'connection') || eqLower(buf, a, b, 'keep-alive');
    case 14:
      return eqLower(buf, a, b, 'content-length');
    case 16:
      return eqLower(buf, a, b, 'proxy-connection');
    case 17:
      return eqLower(buf, a, b, 'transfer-encoding');
    default:
      return false;
  }
}

/** The Connection value buf[a..b) lists only close, keep-alive and upgrade (fields dropped anyway). */
export function connectionListsOnlyKnown(buf: Uint8Array, a: number, b: number): boolean {
  let e = a;
  for (;;) {
    const comma = indexOf(buf, e, b, COMMA);
    trim(buf, e, comma);
    if (tA < tB && !eqLower(buf, tA, tB, 'close') && !eqLower(buf, tA, tB, 'keep-alive') && !eqLower(buf, tA, tB, 'upgrade')) return false;
    if (comma === b) return true;
    e = comma + 1;
  }
}
