/**
 * The client address read through the addon (`uwsPeerAddress`, native/napi/src/uws_socket.cc)
 * against uWS's own getRemoteAddress, on real uWS apps and real client sockets: IPv4, IPv6,
 * TLS, many connections at once; an aborted response; and the reader's check that falls back
 * to uWS when the addon disagrees.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { createLogger } from '../../src/shared/log';
import { loadNative } from '../../src/shared/native';
import { loadUws } from '../../src/shared/uws';
import { PeerReader, type PeerAddressFn } from '../../src/workers/client-address';
import { createCa, serverCert } from '../tls-helpers';

const uws = loadUws();
const addon = loadNative();

interface Seen {
  readonly native: number[] | number;
  readonly uws: number[];
}

/** Listens on `host` port 0; every request is answered with what both reads gave. */
function listen(app: TemplatedApp, host: string, seen: Seen[], onRequest?: (res: HttpResponse) => void): { port: number; close(): void } {
  app.any('/*', (res) => {
    const out = new Uint8Array(16);
    const n = addon.uwsPeerAddress(res, out);
    seen.push({ native: n > 0 ? Array.from(out.subarray(0, n)) : n, uws: Array.from(new Uint8Array(res.getRemoteAddress())) });
    if (onRequest !== undefined) onRequest(res);
    else res.end('ok');
  });
  let token: unknown = false;
  app.listen(host, 0, (t) => {
    token = t;
  });
  assert.notEqual(token, false, `listen on ${host}`);
  return {
    port: uws.us_socket_local_port(token as never),
    close: () => {
      uws.us_listen_socket_close(token as never);
      (app as unknown as { close(): void }).close();
    },
  };
}

async function get(url: string, opts: Record<string, unknown> = {}): Promise<number> {
  const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { agent: false, ...opts });
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  res.resume();
  await once(res, 'end');
  return res.statusCode ?? 0;
}

describe('uwsPeerAddress', () => {
  test('gives the bytes getRemoteAddress gives, over IPv4 and IPv6, on many connections at once', async () => {
    for (const [host, url, len] of [
      ['127.0.0.1', 'http://127.0.0.1', 4],
      ['::1', 'http://[::1]', 16],
    ] as const) {
      const seen: Seen[] = [];
      const s = listen(uws.App(), host, seen);
      try {
        const codes = await Promise.all(Array.from({ length: 20 }, () => get(`${url}:${s.port}/`)));
        assert.deepEqual(codes, Array(20).fill(200));
        assert.equal(seen.length, 20);
        for (const x of seen) {
          assert.equal(x.uws.length, len, host);
          assert.deepEqual(x.native, x.uws, host);
        }
      } finally {
        s.close();
      }
    }
  });

  test('reads the socket behind a TLS response too', async () => {
    const ca = createCa();
    const cert = serverCert(ca, ['peer.test']);
    const seen: Seen[] = [];
    const s = listen(uws.SSLApp({ key_file_name: cert.keyFile, cert_file_name: cert.certFile }), '127.0.0.1', seen);
    try {
      assert.equal(await get(`https://127.0.0.1:${s.port}/`, { ca: ca.cert, servername: 'peer.test' }), 200);
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]?.native, [127, 0, 0, 1]);
      assert.deepEqual(seen[0]?.native, seen[0]?.uws);
    } finally {
      s.close();
    }
  });

  test('answers -1 for an aborted response and for objects that are no uWS response; refuses a short buffer', async () => {
    let atAbort = 0;
    let other: number[] = [];
    let short = '';
    const aborted = new Promise<void>((resolve) => {
      const s = listen(uws.App(), '127.0.0.1', [], (res) => {
        const out = new Uint8Array(16);
        other = [{}, new Uint8Array(16), Buffer.alloc(4), () => 1].map((o) => addon.uwsPeerAddress(o, out));
        try {
          addon.uwsPeerAddress(res, new Uint8Array(8));
        } catch (e) {
          short = (e as Error).message;
        }
        res.onAborted(() => {
          atAbort = addon.uwsPeerAddress(res, out);
          s.close();
          resolve();
        });
        // The client goes away once the request is in: uWS then aborts the response.
        setImmediate(() => c.destroy());
      });
      const c = connect(s.port, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      c.on('data', () => undefined);
    });
    await aborted;
    assert.equal(atAbort, -1);
    assert.deepEqual(other, [-1, -1, -1, -1]);
    assert.match(short, /at least 16 bytes/);
  });
});

describe('PeerReader', () => {
  function records(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    return { log: createLogger('info', {}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>)), lines };
  }

  async function readAll(reader: PeerReader, n: number, log = records().log): Promise<number[][]> {
    const got: number[][] = [];
    const s = listen(uws.App(), '127.0.0.1', [], (res) => {
      got.push(Array.from(reader.read(res, log)));
      res.end('ok');
    });
    try {
      for (let i = 0; i < n; i++) assert.equal(await get(`http://127.0.0.1:${s.port}/`), 200);
    } finally {
      s.close();
    }
    return got;
  }

  test('trusts the addon once its first answer matched uWS, then keeps giving the same bytes', async () => {
    const reader = new PeerReader(addon.uwsPeerAddress, 'http');
    assert.equal(reader.trusted, false);
    assert.deepEqual(await readAll(reader, 3), [
      [127, 0, 0, 1],
      [127, 0, 0, 1],
      [127, 0, 0, 1],
    ]);
    assert.equal(reader.trusted, true);
  });

  test('an addon that disagrees is logged once and never used again', async () => {
    let calls = 0;
    const wrong: PeerAddressFn = (_res, out) => {
      calls++;
      out.set([10, 9, 8, 7]);
      return 4;
    };
    const reader = new PeerReader(wrong, 'http');
    const { log, lines } = records();
    assert.deepEqual(await readAll(reader, 3, log), [
      [127, 0, 0, 1],
      [127, 0, 0, 1],
      [127, 0, 0, 1],
    ]);
    assert.equal(calls, 1);
    assert.equal(reader.trusted, false);
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]?.msg), /disagrees with uWS getRemoteAddress/);
    assert.equal(errors[0]?.addon, '10.9.8.7');
    assert.equal(errors[0]?.uws, '127.0.0.1');
  });

  test('without the addon (the listener front) it is uWS getRemoteAddress', async () => {
    const reader = new PeerReader(null, 'http');
    assert.deepEqual(await readAll(reader, 2), [
      [127, 0, 0, 1],
      [127, 0, 0, 1],
    ]);
    assert.equal(reader.trusted, false);
  });
});
