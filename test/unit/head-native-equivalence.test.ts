/**
 * The worker's two response-head parsers (JS reference and native addon) give the same
 * ParsedHead for valid heads, both say "incomplete" at every truncation, and both refuse
 * malformed heads (the error wording may differ).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMPACT_NOT_SIMPLE, COMPACT_TOO_LARGE, headOutLength, loadNative } from '../../src/shared/native';
import { compactResponseHead } from '../oracles/head-parser';
import { HEAD_INCOMPLETE, NativeHead, parseResponseHeadLazy, parseResponseHeadNative } from '../../src/workers/http/upstream/http1';
import { parseResponseHead } from '../oracles/parsed-head';

const parse = loadNative().parseResponseHead;
const compact = loadNative().compactResponseHead;
const MAX = 65536;

const VALID = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive, X-Private\r\n\r\n',
  'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n',
  'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=7, max=100\r\n\r\n',
  'HTTP/1.1 200 OK\r\nConnection: close\r\nServer: a b c\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
  'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nX-Latin: caf\xe9\r\n\r\n',
  'HTTP/1.1 200\r\nX-Empty:\r\nX-Spaces:   padded \t \r\n\r\n',
  `HTTP/1.1 200 OK\r\n${Array.from({ length: 40 }, (_, i) => `X-H${i}: v${i}\r\n`).join('')}\r\n`,
];

const INVALID = [
  'HTTP/1.1 2OO OK\r\n\r\n',
  'HTTP/2 200 OK\r\n\r\n',
  'HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n',
];

test('native and JS parsers agree on valid heads', () => {
  for (const text of VALID) {
    const buf = Buffer.from(text, 'latin1');
    const js = parseResponseHead(buf, 0, buf.length, MAX);
    const nat = parseResponseHeadNative(parse, buf, 0, buf.length, MAX);
    assert.equal(typeof js, 'object', text);
    assert.deepEqual(nat, js, JSON.stringify(text));
  }
});

test('both report incomplete at every truncation of a valid head', () => {
  for (const text of VALID) {
    const buf = Buffer.from(text, 'latin1');
    const end = buf.indexOf('\r\n\r\n') + 4;
    for (let cut = 0; cut < end; cut++) {
      assert.equal(parseResponseHead(buf, 0, cut, MAX), HEAD_INCOMPLETE);
      assert.equal(parseResponseHeadNative(parse, buf, 0, cut, MAX), HEAD_INCOMPLETE, `${JSON.stringify(text)} cut at ${cut}`);
    }
  }
});

test('both refuse malformed heads', () => {
  for (const text of INVALID) {
    const buf = Buffer.from(text, 'latin1');
    assert.equal(typeof parseResponseHead(buf, 0, buf.length, MAX), 'string', `js: ${JSON.stringify(text)}`);
    assert.equal(typeof parseResponseHeadNative(parse, buf, 0, buf.length, MAX), 'string', `native: ${JSON.stringify(text)}`);
  }
});

test('compactResponseHead: the addon and its JS twin write the same block, at every dst size', () => {
  const out = new Uint32Array(headOutLength(64));
  for (const text of VALID) {
    const buf = Buffer.from(`garbage${text}`, 'latin1');
    assert.ok(parse(buf, 7, buf.length, out) > 0, text);
    const extra = '\r\nvia: 1.1 sluice\r\nx-request-id: é-1';
    const full = Buffer.alloc(8192);
    const n = compact(buf, out, full, '200 OK', extra);
    const twinFull = Buffer.alloc(8192);
    assert.equal(compactResponseHead(buf, out, twinFull, '200 OK', extra), n, text);
    if (n < 0) continue;
    assert.deepEqual(twinFull.subarray(0, n), full.subarray(0, n), text);
    for (let size = 0; size <= n + 6; size++) {
      const a = Buffer.alloc(size);
      const b = Buffer.alloc(size);
      const na = compact(buf, out, a, '200 OK', extra);
      assert.equal(compactResponseHead(buf, out, b, '200 OK', extra), na, `${JSON.stringify(text)} in ${size} bytes`);
      if (na >= 0) assert.deepEqual(b.subarray(0, na), a.subarray(0, na));
      else assert.equal(na, COMPACT_TOO_LARGE);
    }
  }
});

test('compactResponseHead: the block uWS gets, and a Connection naming other fields refused', () => {
  const out = new Uint32Array(headOutLength(16));
  const block = (text: string, extra = ''): string | number => {
    const buf = Buffer.from(text, 'latin1');
    parse(buf, 0, buf.length, out);
    const dst = Buffer.alloc(1024);
    const n = compact(buf, out, dst, '200 OK', extra);
    return n < 0 ? n : dst.toString('latin1', 0, n);
  };
  assert.equal(
    block('HTTP/1.1 200 Whatever\r\nServer: up\r\nDate: d\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nX-A:  b \r\nTE: x\r\nX-L: caf\xe9\r\n\r\n', '\r\nvia: 1.1 s'),
    '200 OK\r\nServer: up\r\nX-A: b\r\nX-L: caf\xe9\r\nvia: 1.1 s',
  );
  assert.equal(block('HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n'), COMPACT_NOT_SIMPLE);
  assert.equal(block('HTTP/1.1 200 OK\r\nConnection: Upgrade, , close\r\nUpgrade: h2c\r\n\r\n'), '200 OK');
});

test('NativeHead: the same head as parseResponseHeadNative, strings made when read; hasForwarded from the bytes', () => {
  for (const text of VALID) {
    const buf = Buffer.from(text, 'latin1');
    const lazy = parseResponseHeadLazy(parse, buf, 0, buf.length, MAX);
    assert.ok(lazy instanceof NativeHead, text);
    const eager = parseResponseHeadNative(parse, buf, 0, buf.length, MAX);
    assert.ok(typeof eager === 'object');
    const fields = Object.keys(eager) as (keyof typeof eager)[];
    assert.deepEqual(Object.fromEntries(fields.map((k) => [k, lazy[k]])), eager, text);
  }
  const has = (text: string, name: string): boolean | null => {
    const buf = Buffer.from(text, 'latin1');
    const h = parseResponseHeadLazy(parse, buf, 0, buf.length, MAX);
    assert.ok(h instanceof NativeHead);
    return h.hasForwarded(name);
  };
  const head = 'HTTP/1.1 200 OK\r\nVIA: 1.0 a\r\nX-Request-Id: 1\r\nDate: d\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
  assert.equal(has(head, 'via'), true);
  assert.equal(has(head, 'x-request-id'), true);
  assert.equal(has(head, 'x-request-i'), false);
  assert.equal(has(head, 'date'), false, 'Date is never forwarded (uWS writes its own)');
  assert.equal(has(head, 'keep-alive'), false);
  assert.equal(has('HTTP/1.1 200 OK\r\nConnection: close, X-Request-Id\r\nX-Request-Id: 1\r\n\r\n', 'x-request-id'), null, 'only the strings can tell');
});
