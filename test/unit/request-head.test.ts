/**
 * The request head read through the addon (`uwsRequestHead`, native/napi/src/uws20/request.rs)
 * against uWS's own functions, on a real uWS app and raw client sockets: every header count
 * uWS accepts, empty values, queries (none, empty, several `?`), long URLs, lower-cased names,
 * several requests on one connection; a head with bytes >= 0x80 (the addon declines, the
 * reader asks uWS); and the reader's check, which keeps uWS's functions when the addon
 * disagrees.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { HttpRequest, TemplatedApp } from 'uWebSockets.js';
import { createLogger, type Logger } from '../../src/shared/log';
import { loadNative } from '../../src/shared/native';
import { loadUws, uwsVersion } from '../../src/shared/uws';
import { RequestReader, requestHeadAnswer, requestHeadsAvailable, requestReader, scanWithUws, type RequestHeadFn } from '../../src/workers/http/downstream/request-head';

const uws = loadUws();
const addon = loadNative();

interface Head {
  method: string;
  url: string;
  query: string;
  headers: string[];
  host: string;
  contentLength: number;
  xff: string;
}

function copy(h: ReturnType<typeof scanWithUws>): Head {
  return { method: h.method, url: h.url, query: h.query, headers: [...h.headers], host: h.host, contentLength: h.contentLength, xff: h.xff };
}

/** A uWS app on port 0 that hands every request to `onRequest` and answers 200. */
function listen(onRequest: (req: HttpRequest) => void): { port: number; close(): void } {
  const app: TemplatedApp = uws.App();
  app.any('/*', (res, req) => {
    onRequest(req);
    res.end('ok');
  });
  let token: unknown = false;
  app.listen('127.0.0.1', 0, (t) => {
    token = t;
  });
  assert.notEqual(token, false);
  return {
    port: uws.us_socket_local_port(token as never),
    close: () => {
      uws.us_listen_socket_close(token as never);
      (app as unknown as { close(): void }).close();
    },
  };
}

/** Sends raw request heads on one connection, one after the other, each after the previous answer. */
async function send(port: number, heads: readonly string[], encoding: BufferEncoding = 'latin1'): Promise<void> {
  const s: Socket = connect(port, '127.0.0.1');
  await once(s, 'connect');
  let closed = false;
  s.setMaxListeners(0);
  s.on('close', () => (closed = true));
  try {
    for (const [i, head] of heads.entries()) {
      s.write(Buffer.from(head, encoding));
      const answer = await Promise.race([once(s, 'data').then(([c]) => (c as Buffer).toString('latin1')), once(s, 'close').then(() => 'closed')]);
      assert.ok(!closed, `request ${i}: uWS closed the connection`);
      assert.match(answer, /^HTTP\/1\.1 200 OK/, `request ${i}`);
    }
  } finally {
    s.destroy();
  }
}

const native = addon.uwsRequestHead as RequestHeadFn;

/** A logger whose records are kept. */
function records(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger('info', {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
}

describe('uwsRequestHead', () => {
  test('is available with the uWS.js version it reads', () => {
    assert.match(uwsVersion(), /^20\.30\./, 'uWS.js was upgraded: check native/napi/src/uws20/request.rs against its HttpRequest layout');
    assert.equal(requestHeadsAvailable(), true);
  });

  test('reads what uWS reads: every header count it accepts, queries, empty values, long URLs, several requests per connection', async () => {
    const { log, lines } = records();
    const reader = requestReader('test');
    const seen: { trusted: boolean; addon: Head; uws: Head }[] = [];
    const server = listen((req) => {
      // Trusted after the first request: from then on `read` is the addon's reading.
      const trusted = reader.trusted;
      const addonHead = copy(reader.read(req, log));
      seen.push({ trusted, addon: addonHead, uws: copy(scanWithUws(req)) });
    });
    try {
      const heads: string[] = ['GET /first HTTP/1.1\r\nHost: a\r\n\r\n'];
      for (const n of [0, 1, 2, 9, 20, 47]) {
        const lines = Array.from({ length: n }, (_, i) => `X-Header-${i}: value ${'v'.repeat(i)}\r\n`).join('');
        heads.push(`GET /n/${n}?a=${n}&b=2 HTTP/1.1\r\nHost: h${n}.example\r\n${lines}\r\n`);
      }
      heads.push('GET /plain HTTP/1.1\r\nHost: a\r\n\r\n');
      heads.push('GET /empty-query? HTTP/1.1\r\nHost: a\r\n\r\n');
      heads.push('GET /two?x=1?y=2 HTTP/1.1\r\nHost: a\r\n\r\n');
      heads.push(`GET /${'long/'.repeat(600)}?q HTTP/1.1\r\nHost: a\r\n\r\n`);
      heads.push('GET /options HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   \r\nCONTENT-LENGTH: 0\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n');
      heads.push('POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n');
      await send(server.port, heads);
      assert.equal(seen.length, heads.length);
      assert.equal(seen[0]?.trusted, false);
      for (const [i, s] of seen.entries()) {
        if (i > 0) assert.equal(s.trusted, true, `request ${i} read by the addon`);
        assert.deepEqual(s.addon, s.uws, `request ${i}`);
      }
      assert.deepEqual(lines, [], 'nothing logged');
      const byUrl = (u: string): Head => (seen.find((s) => s.uws.url === u) as { uws: Head }).uws;
      assert.equal(byUrl('/options').xff, '10.0.0.1,10.0.0.2');
      assert.equal(byUrl('/options').contentLength, 0);
      assert.equal(byUrl('/n/47').headers.length, 2 * 48);
      assert.equal(byUrl('/n/47').query, 'a=47&b=2');
      assert.equal(byUrl('/empty-query').query, '');
      assert.equal(byUrl('/two').query, 'x=1?y=2');
    } finally {
      server.close();
    }
  });

  test('declines a head with bytes >= 0x80 (-2); the reader then gives what uWS gives', async () => {
    const { log } = records();
    const reader = requestReader('test');
    const got: { text: string | null; code: number; head: Head; uws: Head }[] = [];
    const server = listen((req) => {
      const text = native(req);
      const code = requestHeadAnswer();
      got.push({ text, code, head: copy(reader.read(req, log)), uws: copy(scanWithUws(req)) });
    });
    try {
      await send(server.port, ['GET /ascii HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /caf\u00e9 HTTP/1.1\r\nHost: a\r\nX-Name: un caf\u00e9 noir\r\n\r\n'], 'utf8');
      assert.equal(reader.trusted, true);
      const [ascii, utf8] = got as [(typeof got)[0], (typeof got)[0]];
      assert.notEqual(ascii.text, null);
      assert.equal(utf8.text, null);
      assert.equal(utf8.code, -2, 'NON_ASCII');
      assert.deepEqual(utf8.head, utf8.uws);
      assert.deepEqual(utf8.head.headers, ['host', 'a', 'x-name', 'un caf\u00e9 noir']);
      assert.equal(utf8.head.url, '/caf\u00e9');
    } finally {
      server.close();
    }
  });

  test('the reader trusts the addon only after its first answer matched uWS, and refuses it for good otherwise', async () => {
    const { log, lines } = records();
    // An addon that gets the URL wrong: the first check refuses it, and uWS answers from then on.
    const lying: RequestHeadFn = (req) => {
      const text = native(req);
      return text === null ? null : text.replace('/right', '/wrong');
    };
    const honest = requestReader('honest');
    const liar = new RequestReader(lying, 'liar');
    const got: string[] = [];
    const server = listen((req) => {
      got.push(`${honest.read(req, log).url} ${liar.read(req, log).url}`);
    });
    try {
      await send(server.port, ['GET /right HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /right?again HTTP/1.1\r\nHost: a\r\n\r\n']);
      assert.deepEqual(got, ['/right /right', '/right /right']);
      assert.equal(honest.trusted, true);
      assert.equal(liar.trusted, false);
      const errors = lines.filter((l) => l.level === 'error');
      assert.equal(errors.length, 1);
      assert.match(String(errors[0]?.msg), /disagrees with uWS/);
      assert.equal(errors[0]?.listener, 'liar');
    } finally {
      server.close();
    }
  });

  test('answers null ("not a request", -1) for an object that is none, and refuses a short array', () => {
    requestReader('test');
    assert.equal(native({}), null);
    assert.equal(requestHeadAnswer(), -1);
    assert.equal(native(new Uint8Array(4)), null);
    assert.throws(() => addon.uwsRequestBind(new Int32Array(3)), /uwsRequestBind: out must be an Int32Array/);
  });
});
