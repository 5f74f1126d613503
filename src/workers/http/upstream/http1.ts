/**
 * HTTP/1.1 response framing for the upstream client, in JS: the response-head parser (one
 * call per head, on the bytes of the socket buffer) and a chunked-body decoder. The native
 * addon provides a twin of the head parser; this one is the reference.
 *
 * Strict where leniency enables smuggling or desync: CRLF line ends, no obs-fold, token
 * header names, one consistent Content-Length, Transfer-Encoding only with chunked last and
 * never together with Content-Length.
 */

import * as H from '../../../shared/native/head-layout';
import type { NativeAddon, NativeApi } from '../../../shared/native';

export const HEAD_INCOMPLETE = 0;

export type HeadError =
  | 'bad status line'
  | 'bad header line'
  | 'bad header name'
  | 'bad header value'
  | 'bad content-length'
  | 'bad transfer-encoding'
  | 'head too large';

export interface ParsedHead {
  readonly headLength: number;
  readonly status: number;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Flat [name, value, ...] as received (names in the upstream's case), values trimmed. */
  readonly headers: string[];
  /** Lower-case names of all headers, parallel to headers' names (index i/2). */
  readonly lowerNames: string[];
  /** -1 when absent. */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** The connection must not be reused after this response. */
  readonly close: boolean;
  /** `Keep-Alive: timeout=N` hint in seconds, -1 when absent. */
  readonly keepAliveTimeoutS: number;
  readonly upgrade: boolean;
  /** Lower-case tokens listed in Connection (they are hop-by-hop too), or null. Shared: never modify. */
  readonly connectionTokens: readonly string[] | null;
  /** The head has bytes ≥ 0x80 (a header value or the reason phrase): forward it as latin1 bytes, not strings. */
  readonly nonAscii: boolean;
}


// ---------------------------------------------------------------- chunked decoding

const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_TRAILER_START = 6;
const S_TRAILER_LINE = 7;
const S_TRAILER_LF = 8;
const S_END_LF = 9;
const S_DONE = 10;

const MAX_CHUNK_SIZE = 2 ** 48;
const MAX_TRAILER_BYTES = 16 * 1024;

export const CHUNKED_ERROR = -1;

/**
 * Incremental decoder for a chunked body. `feed` calls `onData` with views of the chunk
 * data (no copies) and returns the offset just past the terminating CRLF once the body is
 * complete, `buf.length`-or-less consumed otherwise (check `done`), or CHUNKED_ERROR.
 * Trailers are read and dropped (the downstream server cannot send them).
 */
export class ChunkedDecoder {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private trailerBytes = 0;
  done = false;

  reset(): void {
    this.state = S_SIZE;
    this.size = 0;
    this.digits = 0;
    this.trailerBytes = 0;
    this.done = false;
  }

  feed(buf: Buffer, start: number, onData: (chunk: Buffer) => void): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case S_SIZE: {
          const c = buf[i] as number;
          const d = hexValue(c);
          if (d !== -1) {
            this.size = this.size * 16 + d;
            if (++this.digits > 12 || this.size > MAX_CHUNK_SIZE) return CHUNKED_ERROR;
            i++;
          } else if (this.digits === 0) {
            return CHUNKED_ERROR;
          } else if (c === 0x0d) {
            this.state = S_SIZE_LF;
            i++;
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.state = S_EXT;
            i++;
          } else return CHUNKED_ERROR;
          break;
        }
        case S_EXT: {
          const cr = buf.indexOf(0x0d, i);
          const stop = cr === -1 ? n : cr;
          const lf = buf.indexOf(0x0a, i);
          if (lf !== -1 && lf < stop) return CHUNKED_ERROR; // bare LF inside an extension
          this.trailerBytes += stop - i;
          if (this.trailerBytes > MAX_TRAILER_BYTES) return CHUNKED_ERROR;
          i = stop;
          if (cr !== -1) {
            i++;
            this.state = S_SIZE_LF;
          }
          break;
        }
        case S_SIZE_LF:
          if (buf[i] !== 0x0a) return CHUNKED_ERROR;
          i++;
          this.digits = 0;
          this.trailerBytes = 0;
          this.state = this.size === 0 ? S_TRAILER_START : S_DATA;
          break;
        case S_DATA: {
          const take = Math.min(this.size, n - i);
          onData(buf.subarray(i, i + take));
          i += take;
          this.size -= take;
          if (this.size === 0) this.state = S_DATA_CR;
          break;
        }
        case S_DATA_CR:
          if (buf[i] !== 0x0d) return CHUNKED_ERROR;
          i++;
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (buf[i] !== 0x0a) return CHUNKED_ERROR;
          i++;
          this.state = S_SIZE;
          break;
        case S_TRAILER_START:
          if (buf[i] === 0x0d) {
            this.state = S_END_LF;
            i++;
          } else this.state = S_TRAILER_LINE;
          break;
        case S_TRAILER_LINE: {
          const cr = buf.indexOf(0x0d, i);
          const stop = cr === -1 ? n : cr;
          this.trailerBytes += stop - i;
          if (this.trailerBytes > MAX_TRAILER_BYTES) return CHUNKED_ERROR;
          i = stop;
          if (cr !== -1) {
            i++;
            this.state = S_TRAILER_LF;
          }
          break;
        }
        case S_TRAILER_LF:
          if (buf[i] !== 0x0a) return CHUNKED_ERROR;
          i++;
          this.state = S_TRAILER_START;
          break;
        case S_END_LF:
          if (buf[i] !== 0x0a) return CHUNKED_ERROR;
          i++;
          this.state = S_DONE;
          this.done = true;
          return i;
        case S_DONE:
          return i;
      }
    }
    return i;
  }
}


function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** Response statuses and request methods whose responses carry no body whatever the headers say. */
export function responseHasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

// ---------------------------------------------------------------- native head parsing

const NATIVE_ERRORS: Readonly<Record<number, HeadError>> = {
  [H.ERR_BAD_STATUS_LINE]: 'bad status line',
  [H.ERR_BAD_HEADER_NAME]: 'bad header name',
  [H.ERR_BAD_HEADER_VALUE]: 'bad header value',
  [H.ERR_OBS_FOLD]: 'bad header line',
  [H.ERR_TOO_MANY_HEADERS]: 'head too large',
  [H.ERR_HEAD_TOO_LARGE]: 'head too large',
  [H.ERR_BAD_CONTENT_LENGTH]: 'bad content-length',
  [H.ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING]: 'bad transfer-encoding',
};

/** The tokens of the usual `Connection: keep-alive` and `close`, shared by every head that has only that line. */
const KEEP_ALIVE_TOKENS: readonly string[] = Object.freeze(['keep-alive']);
const CLOSE_TOKENS: readonly string[] = Object.freeze(['close']);

/** `tokens` plus the lower-case tokens of one Connection value (no split for the usual single token). */
function addConnectionTokens(tokens: readonly string[] | null, value: string): readonly string[] | null {
  if (tokens === null) {
    if (value === 'keep-alive' || value === 'Keep-Alive') return KEEP_ALIVE_TOKENS;
    if (value === 'close' || value === 'Close') return CLOSE_TOKENS;
  }
  let out: string[] | null = tokens === null ? null : [...tokens];
  for (const tok of value.toLowerCase().split(',')) {
    const t = tok.trim();
    if (t !== '') (out ??= []).push(t);
  }
  return out;
}

const MAX_NATIVE_HEADERS = 100;
const nativeOut = new Uint32Array(H.headOutLength(MAX_NATIVE_HEADERS));

/**
 * The same result as parseResponseHead, from the native addon's parser (one N-API call per
 * head, offsets back); only the header strings are made here, as substrings of one latin1
 * string of the whole head: one Buffer call instead of two per header (each costs about as
 * much as the native parse itself). The tests hold it to the JS parser; the worker uses
 * parseResponseHeadLazy, which makes the strings only when asked.
 */
export function parseResponseHeadNative(
  parse: NativeApi['parseResponseHead'],
  buf: Buffer,
  start: number,
  end: number,
  maxHeadBytes: number,
): ParsedHead | typeof HEAD_INCOMPLETE | HeadError {
  const h = parseResponseHeadLazy(parse, buf, start, end, maxHeadBytes);
  if (!(h instanceof NativeHead)) return h;
  return {
    headLength: h.headLength,
    status: h.status,
    minor: h.minor,
    headers: h.headers,
    lowerNames: h.lowerNames,
    contentLength: h.contentLength,
    chunked: h.chunked,
    close: h.close,
    keepAliveTimeoutS: h.keepAliveTimeoutS,
    upgrade: h.upgrade,
    connectionTokens: h.connectionTokens,
    nonAscii: h.nonAscii,
  };
}

/** parseResponseHeadNative without the strings: a NativeHead, valid until the next parse. */
export function parseResponseHeadLazy(
  parse: NativeApi['parseResponseHead'],
  buf: Buffer,
  start: number,
  end: number,
  maxHeadBytes: number,
): NativeHead | typeof HEAD_INCOMPLETE | HeadError {
  return lazyHead(parse(buf, start, end, nativeOut, maxHeadBytes), buf, start);
}

/** A native parse's result (`nativeOut` filled) as parseResponseHeadLazy gives it. */
function lazyHead(r: number, buf: Buffer, start: number): NativeHead | typeof HEAD_INCOMPLETE | HeadError {
  if (r === 0) return HEAD_INCOMPLETE;
  if (r < 0) return NATIVE_ERRORS[r] ?? 'bad header line';
  return new NativeHead(buf, start, r);
}

/**
 * parseResponseHeadLazy over the reader's arena, through the addon's bound form
 * (`parseArenaHead`: no typed-array argument; `headBind(nativeHeadOut(), block)` first).
 */
export function parseArenaHeadLazy(
  parseAt: NativeAddon['parseArenaHead'],
  arena: Buffer,
  start: number,
  end: number,
  maxHeadBytes: number,
): NativeHead | typeof HEAD_INCOMPLETE | HeadError {
  return lazyHead(parseAt(start, end, maxHeadBytes), arena, start);
}

/** The offsets every native parse of this thread writes (for the addon's `headBind`). */
export function nativeHeadOut(): Uint32Array {
  return nativeOut;
}

/**
 * The hop-by-hop names of RFC 9110 §7.6.1 (lower case). A switch on the length, not a Set:
 * names are new strings on every request, and a Set lookup first hashes the whole string.
 */
function isHopByHop(n: string): boolean {
  switch (n.length) {
    case 2:
      return n === 'te';
    case 7:
      return n === 'upgrade' || n === 'trailer';
    case 10:
      return n === 'connection' || n === 'keep-alive';
    case 16:
      return n === 'proxy-connection';
    case 17:
      return n === 'transfer-encoding';
    default:
      return false;
  }
}

/** Request headers never forwarded: hop-by-hop, plus what uWS consumed (Expect) and HTTP2-Settings. */
export function isRequestHop(n: string): boolean {
  return isHopByHop(n) || n === 'expect' || n === 'http2-settings';
}

/** Response headers never forwarded (lower-case names); uWS writes its own Date and Content-Length. The bytes twin is isResponseHopBytes. */
export function isResponseHop(n: string): boolean {
  return isHopByHop(n) || n === 'date' || n === 'content-length';
}

interface HeadStrings {
  readonly headers: string[];
  readonly lowerNames: string[];
  readonly connectionTokens: readonly string[] | null;
}

/**
 * A head the native parser just described in the shared `nativeOut`, over the caller's
 * buffer: the numbers at once, the header strings when first read. Valid only until the next
 * parse and while `buf` holds the head (the worker uses it within the read that parsed it):
 * it reads both lazily. `offsets` and `buf` let the worker forward the head's bytes
 * without making strings at all (compactResponseHead).
 */
export class NativeHead implements ParsedHead {
  readonly headLength: number;
  readonly status: number;
  readonly minor: number;
  readonly contentLength: number;
  readonly chunked: boolean;
  readonly close: boolean;
  readonly keepAliveTimeoutS: number;
  readonly upgrade: boolean;
  readonly nonAscii: boolean;
  private strings: HeadStrings | null = null;
  /** connectionListsOnlyKnown(): -1 until computed, then 0 or 1. */
  private simpleConnection = -1;

  constructor(
    readonly buf: Buffer,
    readonly start: number,
    length: number,
  ) {
    const out = nativeOut;
    const flags = out[H.OUT_FLAGS] as number;
    const http10 = (flags & H.FLAG_HTTP_1_0) !== 0;
    const chunked = (flags & H.FLAG_CHUNKED) !== 0;
    const te = (flags & H.FLAG_TRANSFER_ENCODING) !== 0;
    this.headLength = length;
    this.status = out[H.OUT_STATUS] as number;
    this.minor = http10 ? 0 : 1;
    this.contentLength =
      (flags & H.FLAG_CONTENT_LENGTH) !== 0 ? (out[H.OUT_CONTENT_LENGTH_HI] as number) * 4294967296 + (out[H.OUT_CONTENT_LENGTH_LO] as number) : -1;
    this.chunked = chunked;
    this.close = (flags & H.FLAG_CONNECTION_CLOSE) !== 0 || (http10 && (flags & H.FLAG_CONNECTION_KEEP_ALIVE) === 0) || (te && !chunked);
    this.keepAliveTimeoutS = (flags & H.FLAG_KEEP_ALIVE_TIMEOUT) !== 0 ? (out[H.OUT_KEEP_ALIVE_TIMEOUT] as number) : -1;
    this.upgrade = (flags & H.FLAG_CONNECTION_UPGRADE) !== 0;
    // Over the whole head (the reason phrase too): at worst a head is sent as latin1 bytes
    // when only its reason phrase needed it, which is the same bytes.
    this.nonAscii = (flags & H.FLAG_NON_ASCII) !== 0;
  }

  /** The parse's offsets (nativeOut): valid until the next parse. */
  get offsets(): Uint32Array {
    return nativeOut;
  }

  get headers(): string[] {
    return (this.strings ??= this.makeStrings()).headers;
  }

  get lowerNames(): string[] {
    return (this.strings ??= this.makeStrings()).lowerNames;
  }

  get connectionTokens(): readonly string[] | null {
    return (this.strings ??= this.makeStrings()).connectionTokens;
  }

  /**
   * Whether a header the client would get (not hop-by-hop, Date or Content-Length) is named
   * `lowerName`, read from the bytes; null when only the strings can tell (it is there, but a
   * Connection header names fields other than close/keep-alive/upgrade: those are dropped too).
   */
  hasForwarded(lowerName: string): boolean | null {
    if (isResponseHop(lowerName)) return false;
    const out = nativeOut;
    const buf = this.buf;
    const n = out[H.OUT_HEADER_COUNT] as number;
    const len = lowerName.length;
    for (let i = 0; i < n; i++) {
      const b = H.OUT_HEADERS + H.HEADER_SLOTS * i;
      const a = out[b] as number;
      if ((out[b + 1] as number) - a !== len) continue;
      let j = 0;
      while (j < len) {
        const c = buf[a + j] as number;
        if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lowerName.charCodeAt(j)) break;
        j++;
      }
      if (j === len) return this.connectionListsOnlyKnown() ? true : null;
    }
    return false;
  }

  /** No Connection header names a field other than close, keep-alive and upgrade (computed once). */
  private connectionListsOnlyKnown(): boolean {
    if (this.simpleConnection === -1) {
      const out = nativeOut;
      const buf = this.buf;
      const n = out[H.OUT_HEADER_COUNT] as number;
      let simple = 1;
      for (let i = 0; i < n && simple === 1; i++) {
        const b = H.OUT_HEADERS + H.HEADER_SLOTS * i;
        const a = out[b] as number;
        const e = out[b + 1] as number;
        // Connection and Keep-Alive are the hop-by-hop names of 10 bytes.
        if (e - a === 10 && ((buf[a] as number) | 0x20) === 0x63 && H.isResponseHopBytes(buf, a, e)) {
          if (!H.connectionListsOnlyKnown(buf, out[b + 2] as number, out[b + 3] as number)) simple = 0;
        }
      }
      this.simpleConnection = simple;
    }
    return this.simpleConnection === 1;
  }

  private makeStrings(): HeadStrings {
    const out = nativeOut;
    const buf = this.buf;
    const start = this.start;
    const n = out[H.OUT_HEADER_COUNT] as number;
    // Buffer#latin1Slice is the untyped fast path behind toString('latin1'): no argument checks.
    const text = (buf as unknown as { latin1Slice(a: number, b: number): string }).latin1Slice(start, start + this.headLength);
    const headers: string[] = new Array<string>(2 * n);
    const lowerNames: string[] = new Array<string>(n);
    let connectionTokens: readonly string[] | null = null;
    for (let i = 0; i < n; i++) {
      const b = H.OUT_HEADERS + H.HEADER_SLOTS * i;
      const name = text.substring((out[b] as number) - start, (out[b + 1] as number) - start);
      const value = text.substring((out[b + 2] as number) - start, (out[b + 3] as number) - start);
      headers[2 * i] = name;
      headers[2 * i + 1] = value;
      const lower = name.toLowerCase();
      lowerNames[i] = lower;
      if (lower === 'connection') connectionTokens = addConnectionTokens(connectionTokens, value);
    }
    return { headers, lowerNames, connectionTokens };
  }
}
