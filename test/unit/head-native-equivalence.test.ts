/**
 * The worker's two response-head parsers (JS reference and native addon) give the same
 * ParsedHead for valid heads, both say "incomplete" at every truncation, and both refuse
 * malformed heads (the error wording may differ).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadNative } from '../../src/shared/native';
import { HEAD_INCOMPLETE, parseResponseHead, parseResponseHeadNative } from '../../src/workers/http1';

const parse = loadNative().parseResponseHead;
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
