/**
 * The JavaScript twin of the upstream response-head parse (the reference the native parser is
 * held to in head-native-equivalence.test.ts and http1.test.ts): the same ParsedHead from
 * strings and regular expressions. Production parses every head natively
 * (src/workers/http/response-head.ts); this lives here as an oracle only.
 */
import { HEAD_INCOMPLETE, type HeadError, type ParsedHead } from '../../src/workers/http/upstream/http1';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const NON_ASCII = /[\x80-\xff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;

/**
 * Parses a response head at buf[start..end). Returns the head, HEAD_INCOMPLETE when the
 * blank line has not arrived yet, or an error string for malformed heads.
 */
export function parseResponseHead(buf: Buffer, start: number, end: number, maxHeadBytes: number): ParsedHead | typeof HEAD_INCOMPLETE | HeadError {
  const term = buf.indexOf('\r\n\r\n', start, 'latin1');
  if (term === -1 || term + 4 > end) {
    return end - start > maxHeadBytes ? 'head too large' : HEAD_INCOMPLETE;
  }
  const headLength = term + 4 - start;
  if (headLength > maxHeadBytes) return 'head too large';
  const text = buf.toString('latin1', start, term);
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  const m = STATUS_LINE.exec(text.slice(0, eol));
  if (m === null) return 'bad status line';
  const minor = Number(m[1]);
  const status = Number(m[2]);
  const headers: string[] = [];
  const lowerNames: string[] = [];
  let contentLength = -1;
  let chunked = false;
  let sawTE = false;
  let sawClose = false;
  let sawKeepAlive = false;
  let keepAliveTimeoutS = -1;
  let upgrade = false;
  let connectionTokens: string[] | null = null;
  let pos = eol + 2;
  while (pos < text.length) {
    let next = text.indexOf('\r\n', pos);
    if (next === -1) next = text.length;
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon > next) return 'bad header line';
    const name = text.slice(pos, colon);
    if (!TOKEN.test(name)) return name.length > 0 && (name[0] === ' ' || name[0] === '\t') ? 'bad header line' : 'bad header name';
    const raw = text.slice(colon + 1, next);
    // Checked before trimming: only SP and HTAB are optional whitespace (RFC 9110 §5.5);
    // String.trim would also strip VT, FF, CR and NBSP and let them through.
    if (BAD_VALUE.test(raw)) return 'bad header value';
    const value = trimOws(raw);
    const lower = name.toLowerCase();
    headers.push(name, value);
    lowerNames.push(lower);
    switch (lower) {
      case 'content-length': {
        // A list of identical values ("5, 5") is tolerated (RFC 9110 §8.6); anything else is not.
        let n = -1;
        for (const part of value.split(',')) {
          const t = part.trim();
          if (!/^\d{1,15}$/.test(t)) return 'bad content-length';
          const v = Number(t);
          if (n !== -1 && v !== n) return 'bad content-length';
          n = v;
        }
        if (contentLength !== -1 && contentLength !== n) return 'bad content-length';
        contentLength = n;
        break;
      }
      case 'transfer-encoding': {
        sawTE = true;
        const codings = value.toLowerCase().split(',');
        const last = (codings[codings.length - 1] as string).trim();
        chunked = last === 'chunked';
        break;
      }
      case 'connection': {
        for (const tok of value.toLowerCase().split(',')) {
          const t = tok.trim();
          if (t === '') continue;
          if (t === 'close') sawClose = true;
          else if (t === 'keep-alive') sawKeepAlive = true;
          else if (t === 'upgrade') upgrade = true;
          (connectionTokens ??= []).push(t);
        }
        break;
      }
      case 'keep-alive': {
        const km = /(?:^|[,\s])timeout\s*=\s*(\d+)/i.exec(value);
        if (km !== null) keepAliveTimeoutS = Number(km[1]);
        break;
      }
    }
    pos = next + 2;
  }
  // `close` wins over `keep-alive` whatever the order; HTTP/1.0 closes unless asked not to.
  let close = sawClose || (minor === 0 && !sawKeepAlive);
  if (sawTE) {
    if (contentLength !== -1) return 'bad transfer-encoding';
    // A response with Transfer-Encoding whose last coding is not chunked is delimited by close.
    if (!chunked) close = true;
  }
  return {
    headLength,
    status,
    minor,
    headers,
    lowerNames,
    contentLength,
    chunked,
    close,
    keepAliveTimeoutS,
    upgrade,
    connectionTokens,
    nonAscii: NON_ASCII.test(text),
  };
}

function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && (v.charCodeAt(a) === 0x20 || v.charCodeAt(a) === 0x09)) a++;
  while (b > a && (v.charCodeAt(b - 1) === 0x20 || v.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}
