/**
 * The request head as uWS parsed it: method, URL, query and headers, read once per request
 * into `requestScan` with the facts the handler needs from the headers (Host,
 * Content-Length, Transfer-Encoding, X-Forwarded-For, their size).
 *
 * Two ways to read it, with the same result:
 * - uWS.js's own functions: `getCaseSensitiveMethod`, `getUrl`, `getQuery`, and `forEach`,
 *   which calls back into JavaScript once per header with two new strings. Four calls into
 *   uWS and one call back per header.
 * - the addon's `uwsRequestHead` (native/napi/src/uws20/request.rs): one call that reads
 *   uWS's parsed head and gives one Latin-1 string of its bytes with the offsets of every
 *   piece; the pieces are substrings of it. It answers only for heads of ASCII bytes that it
 *   can describe whole; otherwise (null) the handler asks uWS, as for every request when the
 *   addon's reading is not trusted.
 *
 * Trust, as for the client address (client-address.ts): the first answer of each listener is
 * compared with uWS's functions on the same request, and only a match turns the addon's
 * reading on; a mismatch logs one error and keeps uWS's functions. The addon reads uWS
 * 20.30's layout, so it is asked only under that version (`uwsVersion`). uWS's functions stay
 * the path for what the addon declines: heads with bytes >= 0x80 (uWS.js makes UTF-8 strings
 * of them, a Latin-1 string would differ) and layouts it does not recognise.
 *
 * Must never: keep `requestScan` past the handler's synchronous use (the next request
 * overwrites it); answer from the addon before the check passed.
 */
import type { HttpRequest } from 'uWebSockets.js';
import type { Logger } from '../../../shared/log';
import { loadNative } from '../../../shared/native';
import { uwsVersion } from '../../../shared/uws';

/** What the handler reads from a request head; one object per thread, refilled per request. */
export interface RequestScan {
  method: string;
  url: string;
  /** After the first `?` of the URL, '' when there is none. */
  query: string;
  /** Names (lower case, as uWS gives them) and values, alternating, in the client's order. */
  headers: string[];
  /** The header fields' size as the limit counts it: name, value and 4 bytes each. */
  headerBytes: number;
  host: string;
  /** -1 when absent. */
  contentLength: number;
  /** A second Content-Length, or one that is not 1 to 15 digits. */
  badLength: boolean;
  chunked: boolean;
  /** Every X-Forwarded-For value, joined with commas; '' when absent. */
  xff: string;
}

export const requestScan: RequestScan = {
  method: '',
  url: '',
  query: '',
  headers: [],
  headerBytes: 0,
  host: '',
  contentLength: -1,
  badLength: false,
  chunked: false,
  xff: '',
};

function startScan(): RequestScan {
  const h = requestScan;
  h.headers = [];
  h.headerBytes = 0;
  h.host = '';
  h.contentLength = -1;
  h.badLength = false;
  h.chunked = false;
  h.xff = '';
  return h;
}

/** One header into `requestScan` (also uWS's `forEach` callback: a module function, no closure per request). */
function scanHeader(k: string, v: string): void {
  const h = requestScan;
  h.headers.push(k, v);
  h.headerBytes += k.length + v.length + 4;
  if (k === 'host') h.host = v;
  else if (k === 'content-length') {
    if (h.contentLength !== -1 || !/^\d{1,15}$/.test(v)) h.badLength = true;
    h.contentLength = Number(v);
  } else if (k === 'transfer-encoding') h.chunked = true;
  else if (k === 'x-forwarded-for') h.xff = h.xff === '' ? v : `${h.xff},${v}`;
}

/** Reads `req` with uWS.js's own functions. */
export function scanWithUws(req: HttpRequest): RequestScan {
  const h = startScan();
  h.method = req.getCaseSensitiveMethod();
  h.url = req.getUrl();
  h.query = req.getQuery() ?? '';
  req.forEach(scanHeader);
  return h;
}

/** NativeAddon.uwsRequestHead: the head's text, with the bound `out` holding the count and offsets; or null. */
export type RequestHeadFn = (req: object) => string | null;

/** `out` slots (native/napi/src/uws20/request.rs). */
const OUT_COUNT = 0;
const OUT_METHOD = 1;
const OUT_URL = 3;
const OUT_QUERY = 5;
const OUT_HEADERS = 6;
/** uWS 20.30 closes a connection at its 49th header: room for all of them. */
const MAX_HEADERS = 64;

/** This thread's offsets, bound to the addon (uwsRequestBind) by the first reader that uses it. */
const requestOut = new Int32Array(OUT_HEADERS + 4 * MAX_HEADERS);
let requestOutBound = false;

/** The last `uwsRequestHead` answer on this thread: the header count, or why it gave null (< 0). */
export function requestHeadAnswer(): number {
  return requestOut[OUT_COUNT] as number;
}

/** Whether the addon may read request heads here: uWS 20.30, whose layout it reads. */
export function requestHeadsAvailable(): boolean {
  return uwsVersion().startsWith('20.30.');
}

const enum Trust {
  Unchecked = 0,
  Trusted = 1,
  Refused = 2,
}

export class RequestReader {
  private trust: Trust;
  private readonly out = requestOut;

  /**
   * `addon` null: always uWS's functions; otherwise it writes into this thread's offsets,
   * which `bind` hands to the addon (the first reader binds them). `listener` names the
   * reader in the log.
   */
  constructor(
    private readonly addon: RequestHeadFn | null,
    private readonly listener: string,
    bind: ((out: Int32Array) => void) | null = null,
  ) {
    this.trust = addon === null ? Trust.Refused : Trust.Unchecked;
    if (addon !== null && bind !== null && !requestOutBound) {
      bind(requestOut);
      requestOutBound = true;
    }
  }

  /** Whether the addon's answers are used (after the first check passed). */
  get trusted(): boolean {
    return this.trust === Trust.Trusted;
  }

  /** The head of `req` in `requestScan`, valid until the next call. */
  read(req: HttpRequest, log: Logger): RequestScan {
    if (this.trust === Trust.Trusted) {
      const text = (this.addon as RequestHeadFn)(req);
      if (text !== null) return this.scanText(text);
    } else if (this.trust === Trust.Unchecked) {
      return this.check(req, log);
    }
    return scanWithUws(req);
  }

  private scanText(text: string): RequestScan {
    const o = this.out;
    const h = startScan();
    h.method = text.substring(o[OUT_METHOD] as number, o[OUT_METHOD + 1] as number);
    const q = o[OUT_QUERY] as number;
    if (q === -1) {
      h.url = text.substring(o[OUT_URL] as number, o[OUT_URL + 1] as number);
      h.query = '';
    } else {
      h.url = text.substring(o[OUT_URL] as number, q);
      h.query = text.substring(q + 1, o[OUT_URL + 1] as number);
    }
    const n = o[OUT_COUNT] as number;
    for (let i = 0, b = OUT_HEADERS; i < n; i++, b += 4) {
      scanHeader(text.substring(o[b] as number, o[b + 1] as number), text.substring(o[b + 2] as number, o[b + 3] as number));
    }
    return h;
  }

  /** The first answer, held to uWS's functions on the same request; the result is uWS's. */
  private check(req: HttpRequest, log: Logger): RequestScan {
    const text = (this.addon as RequestHeadFn)(req);
    // No answer (a head with bytes >= 0x80, say) proves nothing either way: check the next one.
    if (text === null) return scanWithUws(req);
    const mine = this.scanText(text);
    const addon = { method: mine.method, url: mine.url, query: mine.query, headers: mine.headers };
    const uws = scanWithUws(req);
    const same =
      addon.method === uws.method &&
      addon.url === uws.url &&
      addon.query === uws.query &&
      addon.headers.length === uws.headers.length &&
      addon.headers.every((s, i) => s === uws.headers[i]);
    if (same) this.trust = Trust.Trusted;
    else {
      this.trust = Trust.Refused;
      log.error("request head: the addon's reading disagrees with uWS; using uWS's functions from now on", {
        listener: this.listener,
        addon: JSON.stringify(addon).slice(0, 500),
        uws: JSON.stringify({ method: uws.method, url: uws.url, query: uws.query, headers: uws.headers }).slice(0, 500),
      });
    }
    return uws;
  }
}

/** A reader for one listener's handler: the addon's when available, else uWS's functions only. */
export function requestReader(listener: string): RequestReader {
  if (!requestHeadsAvailable()) return new RequestReader(null, listener);
  const addon = loadNative();
  return new RequestReader(addon.uwsRequestHead, listener, addon.uwsRequestBind);
}
