/**
 * Upstream HTTP/1.1 response framing (src/workers/http/upstream/http1.ts): the response-head parser on
 * valid, truncated, oversized and malformed heads, and the incremental chunked decoder on
 * whole bodies and on every way of splitting them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHUNKED_ERROR,
  ChunkedDecoder,
  HEAD_INCOMPLETE,
  responseHasNoBody,
  type HeadError,
  type ParsedHead,
} from '../../src/workers/http/upstream/http1';
import { parseResponseHead } from '../oracles/parsed-head';

const MAX = 8192;

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function parse(s: string, max = MAX): ParsedHead | typeof HEAD_INCOMPLETE | HeadError {
  const b = bytes(s);
  return parseResponseHead(b, 0, b.length, max);
}

function head(s: string): ParsedHead {
  const r = parse(s);
  assert.ok(typeof r === 'object', `expected a parsed head for ${JSON.stringify(s)}, got ${JSON.stringify(r)}`);
  return r;
}

/** Deterministic uniform draws in [0, 1) (32-bit LCG). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('parseResponseHead: valid heads', () => {
  test('a typical head, every field', () => {
    const s = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: a\r\nx-multi: b\r\n\r\n';
    assert.deepEqual(head(s), {
      headLength: s.length,
      status: 200,
      minor: 1,
      headers: ['Content-Type', 'text/plain', 'Content-Length', '5', 'X-Multi', 'a', 'x-multi', 'b'],
      lowerNames: ['content-type', 'content-length', 'x-multi', 'x-multi'],
      contentLength: 5,
      chunked: false,
      close: false,
      keepAliveTimeoutS: -1,
      upgrade: false,
      connectionTokens: null,
      nonAscii: false,
    });
  });

  test('no headers at all', () => {
    const h = head('HTTP/1.1 204 No Content\r\n\r\n');
    assert.equal(h.status, 204);
    assert.equal(h.headLength, 27);
    assert.deepEqual(h.headers, []);
    assert.deepEqual(h.lowerNames, []);
    assert.equal(h.contentLength, -1);
  });

  test('status line variants the parser accepts', () => {
    const ok: [string, number, number][] = [
      ['HTTP/1.1 200 OK', 1, 200],
      ['HTTP/1.0 404 Not Found', 0, 404],
      ['HTTP/1.1 200', 1, 200],
      ['HTTP/1.1 200 ', 1, 200],
      ['HTTP/1.1 503 Service Unavailable, try later', 1, 503],
      ['HTTP/1.1 100 Continue', 1, 100],
      ['HTTP/1.1 599 x', 1, 599],
      ['HTTP/1.1 200 \t odd\ttabs', 1, 200],
    ];
    for (const [line, minor, status] of ok) {
      const h = head(`${line}\r\n\r\n`);
      assert.equal(h.minor, minor, line);
      assert.equal(h.status, status, line);
    }
  });

  test('values are trimmed of SP and HTAB, inner whitespace kept, empty values allowed', () => {
    const h = head('HTTP/1.1 200 OK\r\nA:   spaced  out \t\r\nB:\r\nC:x\r\nD: \t \r\nE: a\tb\r\n\r\n');
    assert.deepEqual(h.headers, ['A', 'spaced  out', 'B', '', 'C', 'x', 'D', '', 'E', 'a\tb']);
  });

  test('a value may contain colons', () => {
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nLocation: http://a:80/x\r\n\r\n').headers, ['Location', 'http://a:80/x']);
  });

  test('names keep their case in headers, lowerNames are parallel', () => {
    const h = head('HTTP/1.1 200 OK\r\nX-UPPER: 1\r\nmixed-Case: 2\r\n!#$%&\'*+.^_`|~: 3\r\n\r\n');
    assert.deepEqual(h.headers, ['X-UPPER', '1', 'mixed-Case', '2', "!#$%&'*+.^_`|~", '3']);
    assert.deepEqual(h.lowerNames, ['x-upper', 'mixed-case', "!#$%&'*+.^_`|~"]);
    assert.equal(h.lowerNames.length * 2, h.headers.length);
  });

  test('content-length forms', () => {
    const cl = (v: string) => head(`HTTP/1.1 200 OK\r\nContent-Length: ${v}\r\n\r\n`).contentLength;
    assert.equal(cl('0'), 0);
    assert.equal(cl('123'), 123);
    assert.equal(cl('007'), 7);
    assert.equal(cl('5, 5'), 5);
    assert.equal(cl('5,5 ,5'), 5);
    assert.equal(cl('999999999999999'), 999999999999999);
    assert.equal(head('HTTP/1.1 200 OK\r\ncontent-length: 9\r\nCONTENT-LENGTH: 9\r\n\r\n').contentLength, 9);
  });

  test('transfer-encoding: chunked last', () => {
    for (const te of ['chunked', 'Chunked', 'CHUNKED', 'gzip, chunked', 'gzip,chunked', 'deflate , gzip ,  chunked']) {
      const h = head(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n`);
      assert.equal(h.chunked, true, te);
      assert.equal(h.close, false, te);
      assert.equal(h.contentLength, -1, te);
    }
  });

  test('transfer-encoding without chunked last: read until close', () => {
    for (const te of ['gzip', 'chunked, gzip', 'identity']) {
      const h = head(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n`);
      assert.equal(h.chunked, false, te);
      assert.equal(h.close, true, te);
    }
  });

  test('transfer-encoding over several header lines: the last coding overall decides', () => {
    assert.equal(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n').chunked, true);
    const h = head('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n');
    assert.equal(h.chunked, false);
    assert.equal(h.close, true);
  });

  test('connection persistence for 1.0 and 1.1', () => {
    const close = (v: string, conn: string | null) =>
      head(`HTTP/1.${v} 200 OK\r\n${conn === null ? '' : `Connection: ${conn}\r\n`}Content-Length: 0\r\n\r\n`).close;
    assert.equal(close('1', null), false);
    assert.equal(close('1', 'keep-alive'), false);
    assert.equal(close('1', 'close'), true);
    assert.equal(close('1', 'Close'), true);
    assert.equal(close('1', 'x-foo, close'), true);
    assert.equal(close('0', null), true);
    assert.equal(close('0', 'keep-alive'), false);
    assert.equal(close('0', 'Keep-Alive'), false);
    assert.equal(close('0', 'close'), true);
    assert.equal(close('0', 'keep-alive, close'), true);
  });

  test(
    'HTTP/1.0: close wins over keep-alive whatever the order',
    () => {
      assert.equal(head('HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\nContent-Length: 0\r\n\r\n').close, true);
      assert.equal(head('HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').close, true);
    },
  );

  test('connection tokens are listed lower-case, empty ones skipped', () => {
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nConnection: Keep-Alive, X-Foo,, \r\n\r\n').connectionTokens, ['keep-alive', 'x-foo']);
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nConnection: a\r\nConnection: B\r\n\r\n').connectionTokens, ['a', 'b']);
    assert.equal(head('HTTP/1.1 200 OK\r\nConnection: ,\r\n\r\n').connectionTokens, null);
    assert.equal(head('HTTP/1.1 200 OK\r\n\r\n').connectionTokens, null);
  });

  test('upgrade', () => {
    const h = head('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    assert.equal(h.status, 101);
    assert.equal(h.upgrade, true);
    assert.deepEqual(h.connectionTokens, ['upgrade']);
    assert.equal(head('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n').upgrade, false, 'Upgrade without the Connection token');
  });

  test('keep-alive timeout hint', () => {
    const ka = (v: string) => head(`HTTP/1.1 200 OK\r\nKeep-Alive: ${v}\r\n\r\n`).keepAliveTimeoutS;
    assert.equal(ka('timeout=5'), 5);
    assert.equal(ka('timeout=5, max=100'), 5);
    assert.equal(ka('max=100, timeout=7'), 7);
    assert.equal(ka('max=100,timeout=9'), 9);
    assert.equal(ka('Timeout = 4'), 4);
    assert.equal(ka('timeout=0'), 0);
    assert.equal(ka('max=100'), -1);
    assert.equal(ka('xtimeout=5'), -1);
    assert.equal(ka('timeout=abc'), -1);
    assert.equal(head('HTTP/1.1 200 OK\r\n\r\n').keepAliveTimeoutS, -1);
  });

  test('nonAscii flag and latin1 values', () => {
    const h = head('HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\n\r\n');
    assert.equal(h.nonAscii, true);
    assert.deepEqual(h.headers, ['X-Name', 'caf\xe9']);
    assert.equal(head('HTTP/1.1 200 OK\r\nX-Name: cafe\r\n\r\n').nonAscii, false);
    assert.equal(head('HTTP/1.1 200 OK\r\nX: \x80\xff\r\n\r\n').nonAscii, true);
  });

  test('parses at an offset and stops at the blank line', () => {
    const prefix = 'garbage-before';
    const s = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n';
    const b = bytes(`${prefix}${s}body`);
    const r = parseResponseHead(b, prefix.length, b.length, MAX);
    assert.ok(typeof r === 'object');
    assert.equal(r.headLength, s.length);
    assert.equal(r.contentLength, 4);
    assert.equal(b.toString('latin1', prefix.length + r.headLength), 'body');
  });

  test('the body after the head is not parsed', () => {
    const h = head('HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nBad Name: \x00\r\n\r\n');
    assert.equal(h.headLength, 'HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n'.length);
    assert.deepEqual(h.lowerNames, ['content-length']);
  });
});

describe('parseResponseHead: incomplete and too large', () => {
  const heads = [
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n',
    'HTTP/1.0 304 Not Modified\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nX-Empty:\r\n\r\n',
  ];

  test('every truncation of a valid head is incomplete (short buffer)', () => {
    for (const s of heads) {
      const b = bytes(s);
      assert.equal(typeof parseResponseHead(b, 0, b.length, MAX), 'object');
      for (let k = 0; k < b.length; k++) {
        assert.equal(parseResponseHead(b.subarray(0, k), 0, k, MAX), HEAD_INCOMPLETE, `${JSON.stringify(s)} cut at ${k}`);
      }
    }
  });

  test('every truncation is incomplete when `end` stops short of a complete buffer', () => {
    for (const s of heads) {
      const b = bytes(`xx${s}body`);
      for (let k = 2; k < 2 + s.length; k++) {
        assert.equal(parseResponseHead(b, 2, k, MAX), HEAD_INCOMPLETE, `${JSON.stringify(s)} end at ${k}`);
      }
      assert.equal(typeof parseResponseHead(b, 2, 2 + s.length, MAX), 'object');
    }
  });

  test('a head exactly at the limit passes, one byte over is too large', () => {
    const s = 'HTTP/1.1 200 OK\r\nX-Pad: aaaaaaaaaa\r\n\r\n';
    assert.equal(typeof parse(s, s.length), 'object');
    assert.equal(parse(s, s.length - 1), 'head too large');
  });

  test('an incomplete head past the limit is too large; at the limit it is incomplete', () => {
    const partial = `HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(100)}`;
    assert.equal(parse(partial, partial.length), HEAD_INCOMPLETE);
    assert.equal(parse(partial, partial.length - 1), 'head too large');
  });

  test('an empty buffer is incomplete', () => {
    assert.equal(parseResponseHead(Buffer.alloc(0), 0, 0, MAX), HEAD_INCOMPLETE);
  });
});

describe('parseResponseHead: malformed heads', () => {
  const cases: [string, string, HeadError][] = [
    ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n', 'bad status line'],
    ['HTTP/2', 'HTTP/2 200 OK\r\n\r\n', 'bad status line'],
    ['HTTP/1.1 without status', 'HTTP/1.1\r\n\r\n', 'bad status line'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', 'bad status line'],
    ['four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', 'bad status line'],
    ['non-digit status', 'HTTP/1.1 2x0 OK\r\n\r\n', 'bad status line'],
    ['reason without space', 'HTTP/1.1 200OK\r\n\r\n', 'bad status line'],
    ['lower-case protocol', 'http/1.1 200 OK\r\n\r\n', 'bad status line'],
    ['leading space', ' HTTP/1.1 200 OK\r\n\r\n', 'bad status line'],
    ['two spaces', 'HTTP/1.1  200 OK\r\n\r\n', 'bad status line'],
    ['ICY', 'ICY 200 OK\r\n\r\n', 'bad status line'],
    ['empty head', '\r\n\r\n', 'bad status line'],
    ['bare LF after the status line', 'HTTP/1.1 200 OK\nX: y\r\n\r\n', 'bad status line'],
    ['obs-fold (space)', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'bad header line'],
    ['obs-fold (tab)', 'HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n', 'bad header line'],
    ['obs-fold with a colon', 'HTTP/1.1 200 OK\r\nX: a\r\n y: b\r\n\r\n', 'bad header line'],
    ['header without colon', 'HTTP/1.1 200 OK\r\nNoColon\r\n\r\n', 'bad header line'],
    ['colon only on the next line', 'HTTP/1.1 200 OK\r\nA\r\nB: c\r\n\r\n', 'bad header line'],
    ['space in name', 'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'bad header name'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n', 'bad header name'],
    ['empty name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n', 'bad header name'],
    ['parenthesis in name', 'HTTP/1.1 200 OK\r\nX(y): 1\r\n\r\n', 'bad header name'],
    ['non-ASCII name', 'HTTP/1.1 200 OK\r\nN\xe4me: 1\r\n\r\n', 'bad header name'],
    ['NUL in value', 'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n', 'bad header value'],
    ['SOH in value', 'HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n', 'bad header value'],
    ['DEL in value', 'HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n', 'bad header value'],
    ['VT inside value', 'HTTP/1.1 200 OK\r\nX: a\x0bb\r\n\r\n', 'bad header value'],
    ['ESC in value', 'HTTP/1.1 200 OK\r\nX: a\x1bb\r\n\r\n', 'bad header value'],
    ['bare CR inside value', 'HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n', 'bad header value'],
    ['bare LF inside a header line', 'HTTP/1.1 200 OK\r\nX: a\nContent-Length: 5\r\n\r\n', 'bad header value'],
    ['conflicting content-length list', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n', 'bad content-length'],
    ['conflicting content-length headers', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 'bad content-length'],
    ['non-numeric content-length', 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n', 'bad content-length'],
    ['negative content-length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'bad content-length'],
    ['signed content-length', 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n', 'bad content-length'],
    ['fractional content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 5.0\r\n\r\n', 'bad content-length'],
    ['hex content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n', 'bad content-length'],
    ['empty content-length', 'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n', 'bad content-length'],
    ['content-length with inner space', 'HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n', 'bad content-length'],
    ['content-length list with an empty item', 'HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n', 'bad content-length'],
    ['16-digit content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n', 'bad content-length'],
    ['CL then TE', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 'bad transfer-encoding'],
    ['TE then CL', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n', 'bad transfer-encoding'],
    ['CL with non-chunked TE', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n', 'bad transfer-encoding'],
  ];
  for (const [name, s, want] of cases) {
    test(`${name} → ${want}`, () => {
      assert.equal(parse(s), want);
    });
  }

  test('the first error wins', () => {
    assert.equal(parse('HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: x\r\n\r\n'), 'bad header name');
    assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: x\r\nBad Name: 1\r\n\r\n'), 'bad content-length');
  });

  test(
    'control bytes at the edges of a value are refused, not trimmed away',
    () => {
      assert.equal(parse('HTTP/1.1 200 OK\r\nContent-Length: 5\x0b\r\n\r\n'), 'bad header value');
      assert.equal(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0c\r\n\r\n'), 'bad header value');
      assert.equal(parse('HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n'), 'bad header value');
      assert.equal(parse('HTTP/1.1 200 OK\r\nX: \x0ba\r\n\r\n'), 'bad header value');
    },
  );

  test(
    'only SP and HTAB are trimmed: obs-text 0xA0 at the edges is kept',
    () => {
      const h = head('HTTP/1.1 200 OK\r\nX: \xa0a\xa0\r\n\r\n');
      assert.deepEqual(h.headers, ['X', '\xa0a\xa0']);
    },
  );
});

// ---------------------------------------------------------------- chunked

interface Decoded {
  data: string;
  /** Return value of the last feed call. */
  ret: number;
  /** Index of the piece on which the decoder finished (or failed), -1 if neither. */
  at: number;
  done: boolean;
}

function decodePieces(pieces: readonly Buffer[], dec = new ChunkedDecoder()): Decoded {
  const out: Buffer[] = [];
  let ret = 0;
  for (let i = 0; i < pieces.length; i++) {
    ret = dec.feed(pieces[i] as Buffer, 0, (c) => out.push(Buffer.from(c)));
    if (ret === CHUNKED_ERROR || dec.done) return { data: Buffer.concat(out).toString('latin1'), ret, at: i, done: dec.done };
  }
  return { data: Buffer.concat(out).toString('latin1'), ret, at: -1, done: dec.done };
}

function splitAt(b: Buffer, cuts: readonly number[]): Buffer[] {
  const pts = [0, ...cuts, b.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < pts.length; i++) out.push(b.subarray(pts[i], pts[i + 1]));
  return out;
}

function randomCuts(len: number, rnd: () => number): number[] {
  const n = Math.floor(rnd() * 8);
  const cuts = new Set<number>();
  for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(rnd() * Math.max(1, len - 1)));
  return [...cuts].filter((c) => c < len).sort((a, b) => a - b);
}

const BODIES: [string, string, string][] = [
  // name, encoded, decoded
  ['simple', '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'hello world'],
  ['empty', '0\r\n\r\n', ''],
  ['hex sizes, both cases, leading zeros', `A\r\n${'x'.repeat(10)}\r\nf\r\n${'y'.repeat(15)}\r\n000b\r\n${'z'.repeat(11)}\r\n0000\r\n\r\n`, `${'x'.repeat(10)}${'y'.repeat(15)}${'z'.repeat(11)}`],
  ['extensions', '5;name=value\r\nhello\r\n3;a;b="q;\\"x"\r\nabc\r\n0;last\r\n\r\n', 'helloabc'],
  ['whitespace before extension', '5 ;x=1\r\nhello\r\n2\t;y\r\nhi\r\n0\r\n\r\n', 'hellohi'],
  ['trailers', '4\r\nwiki\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n', 'wiki'],
  ['data with CRLF and hex inside', '8\r\n\r\n0\r\n\r\nA\r\n0\r\n\r\n', '\r\n0\r\n\r\nA'],
  ['binary data', '4\r\n\x00\xff\r\x80\r\n0\r\n\r\n', '\x00\xff\r\x80'],
  ['big chunk', `ffff\r\n${'q'.repeat(0xffff)}\r\n0\r\n\r\n`, 'q'.repeat(0xffff)],
];

describe('ChunkedDecoder', () => {
  for (const [name, enc, dec] of BODIES) {
    test(`whole: ${name}`, () => {
      const b = bytes(enc);
      assert.deepEqual(decodePieces([b]), { data: dec, ret: b.length, at: 0, done: true });
    });
  }

  for (const [name, enc, dec] of BODIES) {
    if (enc.length > 1000) continue;
    test(`byte by byte: ${name}`, () => {
      const b = bytes(enc);
      const pieces = Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
      assert.deepEqual(decodePieces(pieces), { data: dec, ret: 1, at: b.length - 1, done: true });
    });
  }

  test('every single split point, and every pair of split points', () => {
    for (const [name, enc, dec] of BODIES) {
      if (enc.length > 200) continue;
      const b = bytes(enc);
      for (let i = 1; i < b.length; i++) {
        const r = decodePieces(splitAt(b, [i]));
        assert.deepEqual(r, { data: dec, ret: b.length - i, at: 1, done: true }, `${name} split at ${i}`);
        for (let j = i + 1; j < b.length; j++) {
          const r2 = decodePieces(splitAt(b, [i, j]));
          assert.deepEqual(r2, { data: dec, ret: b.length - j, at: 2, done: true }, `${name} split at ${i},${j}`);
        }
      }
    }
  });

  test('random splits (seeded)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rnd = lcg(seed);
      for (const [name, enc, dec] of BODIES) {
        const b = bytes(enc);
        const cuts = randomCuts(b.length, rnd);
        const pieces = splitAt(b, cuts);
        const r = decodePieces(pieces);
        const last = pieces[pieces.length - 1] as Buffer;
        assert.deepEqual(r, { data: dec, ret: last.length, at: pieces.length - 1, done: true }, `${name} seed ${seed} cuts ${cuts.join(',')}`);
      }
    }
  });

  test('returns the offset just past the end; bytes after it are left alone', () => {
    const body = '3\r\nabc\r\n0\r\nT: 1\r\n\r\n';
    const b = bytes(`${body}HTTP/1.1 200 OK\r\n`);
    const d = new ChunkedDecoder();
    const seen: string[] = [];
    assert.equal(d.feed(b, 0, (c) => seen.push(c.toString('latin1'))), body.length);
    assert.equal(d.done, true);
    assert.deepEqual(seen, ['abc']);
  });

  test('starts at the given offset', () => {
    const pre = 'HTTP/1.1 200 OK\r\n\r\n';
    const b = bytes(`${pre}2\r\nok\r\n0\r\n\r\n`);
    const d = new ChunkedDecoder();
    const seen: string[] = [];
    assert.equal(d.feed(b, pre.length, (c) => seen.push(c.toString('latin1'))), b.length);
    assert.deepEqual(seen, ['ok']);
  });

  test('data are views of the input, not copies', () => {
    const b = bytes('5\r\nhello\r\n0\r\n\r\n');
    const views: Buffer[] = [];
    new ChunkedDecoder().feed(b, 0, (c) => views.push(c));
    assert.equal(views.length, 1);
    assert.equal(views[0]?.buffer, b.buffer);
    assert.equal(views[0]?.byteOffset, b.byteOffset + 3);
  });

  test('a zero-length body calls onData never', () => {
    let calls = 0;
    const d = new ChunkedDecoder();
    assert.equal(d.feed(bytes('0\r\n\r\n'), 0, () => calls++), 5);
    assert.equal(calls, 0);
  });

  test('not done until the final CRLF; returns the bytes consumed so far', () => {
    const d = new ChunkedDecoder();
    const partial = bytes('5\r\nhello\r\n0\r\n');
    assert.equal(d.feed(partial, 0, () => undefined), partial.length);
    assert.equal(d.done, false);
    assert.equal(d.feed(bytes('\r'), 0, () => undefined), 1);
    assert.equal(d.done, false);
    assert.equal(d.feed(bytes('\nrest'), 0, () => undefined), 1);
    assert.equal(d.done, true);
  });

  test('after done, feed consumes nothing', () => {
    const d = new ChunkedDecoder();
    d.feed(bytes('0\r\n\r\n'), 0, () => undefined);
    assert.equal(d.done, true);
    let calls = 0;
    assert.equal(d.feed(bytes('5\r\nhello\r\n0\r\n\r\n'), 2, () => calls++), 2);
    assert.equal(calls, 0);
  });

  test('reset allows decoding another body', () => {
    const d = new ChunkedDecoder();
    assert.equal(decodePieces([bytes('1\r\na\r\n0\r\n\r\n')], d).done, true);
    d.reset();
    assert.equal(d.done, false);
    assert.deepEqual(decodePieces([bytes('2\r\nbc\r\n0\r\n\r\n')], d), { data: 'bc', ret: 12, at: 0, done: true });
  });

  test('reset mid-body discards the partial state', () => {
    const d = new ChunkedDecoder();
    d.feed(bytes('a'), 0, () => undefined);
    d.reset();
    assert.deepEqual(decodePieces([bytes('1\r\nx\r\n0\r\n\r\n')], d), { data: 'x', ret: 11, at: 0, done: true });
  });

  const BAD: [string, string][] = [
    ['no size', '\r\n'],
    ['bad hex', 'g\r\n'],
    ['extension without size', ';x\r\n'],
    ['size then junk', '5x\r\nhello\r\n0\r\n\r\n'],
    ['size then LF only', '5\nhello\r\n0\r\n\r\n'],
    ['CR not followed by LF after size', '5\rXhello\r\n0\r\n\r\n'],
    ['data longer than the size', '5\r\nhelloX\r\n0\r\n\r\n'],
    ['data then CR without LF', '5\r\nhello\rX0\r\n\r\n'],
    ['data then LF only', '5\r\nhello\n0\r\n\r\n'],
    ['negative size', '-5\r\nhello\r\n'],
    ['size with 0x prefix', '0x5\r\nhello\r\n'],
    ['13 hex digits', '0000000000001\r\nx\r\n0\r\n\r\n'],
    ['last chunk without final LF', '0\r\n\rX'],
    ['trailer line without LF', '0\r\nX: y\rZ\r\n\r\n'],
    ['leading space before size', ' 5\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [name, enc] of BAD) {
    test(`error: ${name} (whole and byte by byte)`, () => {
      const b = bytes(enc);
      assert.equal(decodePieces([b]).ret, CHUNKED_ERROR);
      const r = decodePieces(Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1)));
      assert.equal(r.ret, CHUNKED_ERROR);
      assert.equal(r.done, false);
    });
  }

  test('12 hex digits is the largest size accepted', () => {
    const d = new ChunkedDecoder();
    const b = bytes('ffffffffffff\r\nabc');
    assert.equal(d.feed(b, 0, () => undefined), b.length);
    assert.equal(d.done, false);
  });

  test('trailers over 16 KiB are refused, however they arrive', () => {
    const ok = bytes(`0\r\nX: ${'a'.repeat(16 * 1024 - 10)}\r\n\r\n`);
    assert.equal(decodePieces([ok]).done, true);
    const big = bytes(`0\r\nX: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    assert.equal(decodePieces([big]).ret, CHUNKED_ERROR);
    assert.equal(decodePieces(splitAt(big, [10, 100, 5000])).ret, CHUNKED_ERROR);
    const many = bytes(`0\r\n${'T: 123456789012345\r\n'.repeat(1000)}\r\n`);
    assert.equal(decodePieces([many]).ret, CHUNKED_ERROR, 'the limit is on all trailer lines together');
  });

  test('a chunk extension over 16 KiB is refused when it arrives in pieces', () => {
    const b = bytes(`1;${'x'.repeat(20000)}\r\na\r\n0\r\n\r\n`);
    assert.equal(decodePieces(splitAt(b, [5, 10000, 19000])).ret, CHUNKED_ERROR);
  });

  test(
    'a chunk extension over 16 KiB is refused when it arrives in one buffer',
    () => {
      const b = bytes(`1;${'x'.repeat(20000)}\r\na\r\n0\r\n\r\n`);
      assert.equal(decodePieces([b]).ret, CHUNKED_ERROR);
    },
  );

  test(
    'a bare LF inside a chunk extension is refused',
    () => {
      assert.equal(decodePieces([bytes('1;a\nb\r\nX\r\n0\r\n\r\n')]).ret, CHUNKED_ERROR);
    },
  );
});

describe('responseHasNoBody', () => {
  test('HEAD never has a body', () => {
    for (const st of [200, 201, 301, 404, 500]) assert.equal(responseHasNoBody('HEAD', st), true, String(st));
  });

  test('1xx, 204 and 304 never have a body', () => {
    for (const st of [100, 101, 103, 199, 204, 304]) assert.equal(responseHasNoBody('GET', st), true, String(st));
  });

  test('other statuses with other methods may have one', () => {
    for (const [m, st] of [
      ['GET', 200],
      ['POST', 201],
      ['GET', 205],
      ['GET', 303],
      ['DELETE', 404],
      ['GET', 500],
      ['GET', 99],
      ['GET', 200],
    ] as const) {
      assert.equal(responseHasNoBody(m, st), false, `${m} ${st}`);
    }
  });
});
