/**
 * parseResponseHead: the native addon against its JavaScript twin on the same inputs (valid
 * heads of many shapes, every truncation, mutations and random bytes, huge header counts,
 * non-ASCII bytes, adversarial Content-Length, size limits), plus the semantics both must
 * have. The twins must agree on the return value and on every slot of `out`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
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
  FLAG_TRANSFER_ENCODING,
  FLAG_NON_ASCII,
  FLAG_UPGRADE,
  HEAD_NEED_MORE,
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
  contentLengthOf,
  headOutLength,
  loadNative,
  type NativeApi,
} from '../../src/shared/native';
import { jsNative } from '../oracles/js-native';

const native = loadNative();

/** Deterministic PRNG (mulberry32) so that a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Result {
  ret: number;
  out: number[];
}

function run(api: NativeApi, buf: Uint8Array, start: number, end: number, outLen: number, max?: number): Result {
  // Same garbage in both arrays: the twins must write the same slots, not just the same values.
  const out = new Uint32Array(outLen).fill(0xdeadbeef);
  const ret = api.parseResponseHead(buf, start, end, out, max);
  return { ret, out: Array.from(out) };
}

/** Both implementations, asserting identical results; returns them. */
function both(buf: Uint8Array, start = 0, end = buf.length, outLen = headOutLength(32), max?: number): Result {
  const n = run(native, buf, start, end, outLen, max);
  const j = run(jsNative, buf, start, end, outLen, max);
  assert.deepEqual(j, n, `twins differ on ${JSON.stringify(Buffer.from(buf.subarray(start, end)).toString('latin1'))}`);
  return n;
}

function headerText(buf: Buffer, out: number[], i: number): [string, string] {
  const s = OUT_HEADERS + 4 * i;
  return [
    buf.toString('latin1', out[s] as number, out[s + 1] as number),
    buf.toString('latin1', out[s + 2] as number, out[s + 3] as number),
  ];
}

// ---- a corpus of heads --------------------------------------------------------------------

const STATUS_LINES = [
  'HTTP/1.1 200 OK',
  'HTTP/1.1 204 No Content',
  'HTTP/1.0 200 OK',
  'HTTP/1.1 100 Continue',
  'HTTP/1.1 101 Switching Protocols',
  'HTTP/1.1 304 Not Modified',
  'HTTP/1.1 404 ',
  'HTTP/1.1 500',
  'HTTP/1.1 502 Bad\tGateway ',
  'HTTP/1.1 999 Whatever Reason',
  'HTTP/1.1 200 \xe9t\xe9 \xff',
  'HTTP/1.9 200 OK',
];

const HEADER_POOL = [
  'Content-Type: text/html; charset=utf-8',
  'Content-Length: 0',
  'Content-Length: 12345',
  'content-length:  42 ',
  'CONTENT-LENGTH: 7, 7',
  'Content-Length: 9007199254740991',
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip, chunked',
  'transfer-encoding: chunked, gzip',
  'Transfer-Encoding: identity',
  'Connection: close',
  'Connection: keep-alive',
  'Connection: Upgrade',
  'connection: foo, Keep-Alive , close',
  'Keep-Alive: timeout=5, max=1000',
  'Keep-Alive: max=3; timeout = "17"',
  'Keep-Alive: timeout=x',
  'Upgrade: websocket',
  'Date: Tue, 26 Nov 2025 11:36:00 GMT',
  'Server: sluice-test',
  'Cache-Control: no-cache, no-store',
  'Set-Cookie: a=b; Path=/; HttpOnly',
  'X-Empty:',
  'X-Spaces:    \t  ',
  'X-Obs-Text: caf\xe9 \x80\xff',
  "X-Token-Chars!#$%&'*+-.^_`|~09azAZ: ok",
  'ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
  'Vary: Accept-Encoding',
];

function corpus(): Buffer[] {
  const r = rng(1);
  const heads: Buffer[] = [];
  for (const status of STATUS_LINES) {
    heads.push(Buffer.from(`${status}\r\n\r\n`, 'latin1'));
    for (let k = 0; k < 12; k++) {
      const n = 1 + Math.floor(r() * 10);
      const lines: string[] = [];
      for (let i = 0; i < n; i++) lines.push(HEADER_POOL[Math.floor(r() * HEADER_POOL.length)] as string);
      heads.push(Buffer.from(`${status}\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
    }
  }
  // A typical upstream response and a large one.
  heads.push(
    Buffer.from(
      'HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 26 Nov 2025 11:36:00 GMT\r\nContent-Type: application/json\r\n' +
        'Content-Length: 1024\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nCache-Control: no-cache\r\n' +
        'X-Request-Id: 5f0c8a5e-2b1d-4c1e-9b7a-0d9f3e2a1b4c\r\n\r\n',
    ),
  );
  const big = ['HTTP/1.1 200 OK'];
  for (let i = 0; i < 60; i++) big.push(`X-Header-${i}: ${'v'.repeat(i * 3)}`);
  big.push('Transfer-Encoding: chunked');
  heads.push(Buffer.from(`${big.join('\r\n')}\r\n\r\n`));
  return heads;
}

describe('parseResponseHead: native and JS twins agree', () => {
  const heads = corpus();

  test('on complete heads of many shapes, with body bytes after them', () => {
    let complete = 0;
    for (const head of heads) {
      const withBody = Buffer.concat([head, Buffer.from('body bytes')]);
      const res = both(withBody);
      if (res.ret > 0) {
        assert.equal(res.ret, head.length);
        complete++;
      } else {
        assert.ok(res.ret < 0, 'a complete head is never "need more"');
      }
    }
    assert.ok(complete > heads.length / 2, `${complete} of ${heads.length} parsed`);
  });

  test('on every truncation of every head: valid prefixes need more', () => {
    for (const head of heads) {
      const full = both(head).ret;
      for (let cut = 0; cut < head.length; cut++) {
        const res = both(head, 0, cut);
        if (full > 0) assert.equal(res.ret, HEAD_NEED_MORE, `cut ${cut} of ${head.toString('latin1')}`);
      }
    }
  });

  test('at any start offset inside a larger buffer (offsets are absolute)', () => {
    const head = heads[heads.length - 2] as Buffer;
    for (const pad of [1, 7, 100]) {
      const buf = Buffer.concat([Buffer.alloc(pad, 0x41), head, Buffer.alloc(5)]);
      const res = both(buf, pad, buf.length);
      assert.equal(res.ret, head.length);
      assert.deepEqual(headerText(buf, res.out, 0), ['Server', 'nginx']);
    }
  });

  test('on mutated heads (byte flips, inserts, deletions) and random bytes', () => {
    const r = rng(2);
    const interesting = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x3a, 0x3b, 0x22, 0x7f, 0x80, 0xff, 0x30, 0x39];
    for (let iter = 0; iter < 20_000; iter++) {
      const src = heads[Math.floor(r() * heads.length)] as Buffer;
      const bytes = Array.from(src);
      const edits = 1 + Math.floor(r() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * bytes.length);
        const b = r() < 0.6 ? (interesting[Math.floor(r() * interesting.length)] as number) : Math.floor(r() * 256);
        const op = r();
        if (op < 0.5) bytes[at] = b;
        else if (op < 0.8) bytes.splice(at, 0, b);
        else bytes.splice(at, 1);
      }
      const buf = Buffer.from(bytes);
      both(buf, 0, buf.length, headOutLength(1 + Math.floor(r() * 12)), r() < 0.2 ? 1 + Math.floor(r() * 300) : undefined);
    }
    for (let iter = 0; iter < 5_000; iter++) {
      const len = Math.floor(r() * 64);
      const buf = Buffer.alloc(len);
      for (let i = 0; i < len; i++) buf[i] = Math.floor(r() * 256);
      if (r() < 0.5) Buffer.from('HTTP/1.1 200 ').copy(buf);
      both(buf);
    }
  });

  test('on huge header counts, at and over the capacity of out', () => {
    const lines = ['HTTP/1.1 200 OK'];
    for (let i = 0; i < 2000; i++) lines.push(`H${i}: ${i}`);
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
    const ok = both(head, 0, head.length, headOutLength(2000), 1 << 20);
    assert.equal(ok.ret, head.length);
    assert.equal(ok.out[OUT_HEADER_COUNT], 2000);
    assert.deepEqual(headerText(head, ok.out, 1999), ['H1999', '1999']);
    const over = both(head, 0, head.length, headOutLength(1999), 1 << 20);
    assert.equal(over.ret, ERR_TOO_MANY_HEADERS);
    assert.equal(both(head, 0, head.length, headOutLength(0), 1 << 20).ret, ERR_TOO_MANY_HEADERS);
    // About 24 KiB: within the default 64 KiB cap.
    assert.equal(both(head, 0, head.length, headOutLength(2000)).ret, head.length);
  });

  test('on adversarial Content-Length values', () => {
    const r = rng(3);
    const values = [
      '0', '00', '1', '  1  ', '1,1', '1 , 1,1', '1,2', '', ',', '1,', ',1', '-1', '+1', '1.0', '1e3', '0x10',
      '９', '1 1', '4294967295', '4294967296', '9007199254740991', '9007199254740992',
      '18446744073709551615', '18446744073709551616', '99999999999999999999999999', '1\t', '\t1',
    ];
    for (let i = 0; i < 300; i++) {
      let s = '';
      const n = 1 + Math.floor(r() * 22);
      for (let k = 0; k < n; k++) s += '0123456789 ,'[Math.floor(r() * 12)];
      values.push(s);
    }
    for (const v of values) {
      for (const extra of ['', `\r\nContent-Length: ${v}`, '\r\nContent-Length: 5', '\r\nTransfer-Encoding: chunked']) {
        both(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${v}${extra}\r\n\r\n`, 'latin1'));
      }
    }
  });

  test('on the size limit at every boundary', () => {
    const head = heads[heads.length - 2] as Buffer;
    for (let max = 1; max <= head.length + 2; max += 1) {
      for (const end of [max - 1, max, max + 1, head.length]) {
        if (end < 0 || end > head.length) continue;
        const res = both(head, 0, end, headOutLength(16), max);
        if (max >= head.length && end === head.length) assert.equal(res.ret, head.length);
        if (max < head.length && end >= max) assert.equal(res.ret, ERR_HEAD_TOO_LARGE);
      }
    }
  });

  test('throw the same errors for impossible arguments', () => {
    const buf = Buffer.from('HTTP/1.1 200 OK\r\n\r\n');
    const cases: [number, number, number, number | undefined][] = [
      [5, 2, 10, undefined],
      [0, buf.length + 1, 10, undefined],
      [0, buf.length, 9, undefined],
      [0, buf.length, 10, 0],
      [-1, buf.length, 10, undefined],
    ];
    for (const [start, end, outLen, max] of cases) {
      let nativeMessage = '';
      assert.throws(() => native.parseResponseHead(buf, start, end, new Uint32Array(outLen), max), (e: Error) => {
        nativeMessage = e.message;
        return true;
      });
      assert.throws(() => jsNative.parseResponseHead(buf, start, end, new Uint32Array(outLen), max), RangeError);
      assert.throws(() => jsNative.parseResponseHead(buf, start, end, new Uint32Array(outLen), max), {
        message: nativeMessage,
      });
    }
  });
});

describe('parseResponseHead semantics (both implementations)', () => {
  for (const [name, api] of [['native', native], ['js', jsNative]] as const) {
    const parse = (text: string, outLen = headOutLength(16)): { ret: number; out: Uint32Array; buf: Buffer } => {
      const buf = Buffer.from(text, 'latin1');
      const out = new Uint32Array(outLen);
      return { ret: api.parseResponseHead(buf, 0, buf.length, out), out, buf };
    };

    test(`${name}: a typical head`, () => {
      const { ret, out, buf } = parse(
        'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n' +
          'Keep-Alive: timeout=5, max=100\r\n\r\nhello world!',
      );
      assert.equal(ret, buf.length - 12);
      assert.equal(out[OUT_STATUS], 200);
      assert.equal(out[OUT_VERSION_MINOR], 1);
      assert.equal(out[OUT_HEADER_COUNT], 4);
      assert.equal(contentLengthOf(out), 12);
      assert.equal(out[OUT_FLAGS], FLAG_CONTENT_LENGTH | FLAG_CONNECTION_KEEP_ALIVE | FLAG_KEEP_ALIVE_TIMEOUT);
      assert.equal(out[OUT_KEEP_ALIVE_TIMEOUT], 5);
      assert.equal(buf.toString('latin1', out[OUT_REASON_START], out[OUT_REASON_END]), 'OK');
      assert.deepEqual(headerText(buf, Array.from(out), 3), ['Keep-Alive', 'timeout=5, max=100']);
    });

    test(`${name}: FLAG_NON_ASCII marks a byte >= 0x80 in the head, not in the body`, () => {
      const nonAscii = (text: string): boolean => {
        const { ret, out } = parse(text);
        assert.ok(ret > 0, text);
        return ((out[OUT_FLAGS] as number) & FLAG_NON_ASCII) !== 0;
      };
      assert.equal(nonAscii('HTTP/1.1 200 OK\r\nA: b\r\n\r\n\xff'), false);
      assert.equal(nonAscii('HTTP/1.1 200 OK\r\nA: caf\xe9\r\n\r\n'), true);
      assert.equal(nonAscii('HTTP/1.1 200 \xe9t\xe9\r\n\r\n'), true);
    });

    test(`${name}: framing flags`, () => {
      const flags = (h: string): number => {
        const { ret, out } = parse(`HTTP/1.1 200 OK\r\n${h}\r\n\r\n`);
        assert.ok(ret > 0, h);
        return out[OUT_FLAGS] as number;
      };
      assert.equal(flags('Transfer-Encoding: gzip, chunked'), FLAG_TRANSFER_ENCODING | FLAG_CHUNKED);
      assert.equal(flags('Transfer-Encoding: chunked, gzip'), FLAG_TRANSFER_ENCODING);
      assert.equal(flags('Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked'), FLAG_TRANSFER_ENCODING | FLAG_CHUNKED);
      assert.equal(flags('Connection: close'), FLAG_CONNECTION_CLOSE);
      assert.equal(flags('Connection: Upgrade\r\nUpgrade: h2c'), FLAG_CONNECTION_UPGRADE | FLAG_UPGRADE);
      assert.equal(flags('X-A: b'), 0);
      const { out } = parse('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n');
      assert.equal(out[OUT_FLAGS], FLAG_HTTP_1_0 | FLAG_CONNECTION_KEEP_ALIVE);
      assert.equal(out[OUT_VERSION_MINOR], 0);
    });

    test(`${name}: large Content-Length splits into hi/lo exactly`, () => {
      const { out } = parse('HTTP/1.1 200 OK\r\nContent-Length: 1099511627781\r\n\r\n');
      assert.equal(out[OUT_CONTENT_LENGTH_HI], 256);
      assert.equal(out[OUT_CONTENT_LENGTH_LO], 5);
      assert.equal(contentLengthOf(out), 1099511627781);
      assert.equal(contentLengthOf(parse('HTTP/1.1 204 No Content\r\n\r\n').out), -1);
    });

    test(`${name}: error codes and offsets`, () => {
      const cases: [string, number, number][] = [
        ['HTTP/2 200 OK\r\n\r\n', ERR_BAD_STATUS_LINE, 5],
        ['HTTP/1.1 20x OK\r\n\r\n', ERR_BAD_STATUS_LINE, 11],
        ['HTTP/1.1 200 OK\nX: y\r\n\r\n', ERR_BAD_STATUS_LINE, 15],
        ['HTTP/1.1 200 OK\r\nX Y: z\r\n\r\n', ERR_BAD_HEADER_NAME, 18],
        ['HTTP/1.1 200 OK\r\nX : z\r\n\r\n', ERR_BAD_HEADER_NAME, 18],
        ['HTTP/1.1 200 OK\r\n\xe9: z\r\n\r\n', ERR_BAD_HEADER_NAME, 17],
        ['HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n', ERR_BAD_HEADER_VALUE, 21],
        ['HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n', ERR_BAD_HEADER_VALUE, 21],
        ['HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n', ERR_OBS_FOLD, 23],
        ['HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n', ERR_BAD_CONTENT_LENGTH, 33],
        ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', ERR_BAD_CONTENT_LENGTH, 52],
        ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING, 0],
      ];
      for (const [text, code, at] of cases) {
        const { ret, out } = parse(text);
        assert.equal(ret, code, text);
        assert.equal(out[OUT_ERROR_OFFSET], at, text);
      }
      // Errors are reported before the head is complete.
      assert.equal(parse('HTTP/1.1 200 OK\r\nX\x00').ret, ERR_BAD_HEADER_NAME);
      assert.equal(parse('HTTPS').ret, ERR_BAD_STATUS_LINE);
    });
  }
});
