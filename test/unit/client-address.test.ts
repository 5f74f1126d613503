/**
 * The client address read through the addon (`uwsPeerAddress`, native/napi/src/uws20/socket.cc)
 * against uWS's own getRemoteAddress, on real uWS apps and real client sockets: IPv4, IPv6,
 * TLS, many connections at once; an aborted response; the addresses `accept` gave
 * (native/napi/src/uws20/accept_peers.rs) across descriptor reuse and two contexts; and the reader's
 * checks that fall back when the addon disagrees.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { createLogger } from '../../src/shared/log';
import { loadNative, PEER_FROM_ACCEPT } from '../../src/shared/native';
import { loadUws, uwsBinaryFile } from '../../src/shared/uws';
import { PeerReader, type PeerAddressFn } from '../../src/workers/http/downstream/client-address';
import { createCa, serverCert } from '../tls-helpers';

const uws = loadUws();
const addon = loadNative();

interface Seen {
  readonly native: number[] | number;
  readonly accepted: boolean;
  readonly uws: number[];
}

/**
 * Listens on `host` port 0; every request is answered with what both reads gave (`fromAccept`:
 * the addon may answer with the address accept gave, and `accepted` says it did).
 */
function listen(
  app: TemplatedApp,
  host: string,
  seen: Seen[],
  onRequest?: (res: HttpResponse) => void,
  fromAccept = false,
  onListen?: (token: unknown) => void,
): { port: number; close(): void } {
  app.any('/*', (res) => {
    const out = new Uint8Array(16);
    const n = addon.uwsPeerAddress(res, out, fromAccept);
    seen.push({
      native: n > 0 ? Array.from(out.subarray(0, n & (PEER_FROM_ACCEPT - 1))) : n,
      accepted: n > PEER_FROM_ACCEPT,
      uws: Array.from(new Uint8Array(res.getRemoteAddress())),
    });
    if (onRequest !== undefined) onRequest(res);
    else res.end('ok');
  });
  let token: unknown = false;
  app.listen(host, 0, (t) => {
    token = t;
  });
  assert.notEqual(token, false, `listen on ${host}`);
  onListen?.(token);
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

  test('reads the socket behind a TLS response too, and the address accept gave it', async () => {
    const ca = createCa();
    const cert = serverCert(ca, ['peer.test']);
    for (const fromAccept of [false, true]) {
      const seen: Seen[] = [];
      const onListen = fromAccept ? (token: unknown) => assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()) && addon.uwsAcceptPeersOn(token), true) : undefined;
      const s = listen(uws.SSLApp({ key_file_name: cert.keyFile, cert_file_name: cert.certFile }), '127.0.0.1', seen, undefined, fromAccept, onListen);
      try {
        assert.equal(await get(`https://127.0.0.1:${s.port}/`, { ca: ca.cert, servername: 'peer.test' }), 200);
        assert.equal(seen.length, 1);
        assert.deepEqual(seen[0]?.native, [127, 0, 0, 1]);
        assert.deepEqual(seen[0]?.native, seen[0]?.uws);
        assert.equal(seen[0]?.accepted, fromAccept);
      } finally {
        s.close();
      }
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

/**
 * Runs `plan` in a child process, one step after the other: `open` connects connection `id`
 * from `from` to `host`:`port`; `get` sends a request on it and waits for the answer; `close`
 * sends a last request with `Connection: close` and waits until the server closed. With the
 * clients in another process, this process opens no descriptor between two steps, so one the
 * server closed is the one its next accept gets.
 */
const CLIENT = `
const net = require('node:net');
const conns = new Map();
function answered(c) {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d) => { got += d; if (got.endsWith('ok')) { c.off('data', onData); resolve(); } };
    c.on('data', onData);
    c.once('error', reject);
  });
}
(async () => {
  for (const s of JSON.parse(process.argv[1])) {
    if (s.op === 'open') {
      const c = net.connect({ port: s.port, host: s.host, localAddress: s.from });
      await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject); });
      conns.set(s.id, c);
    } else if (s.op === 'get') {
      const c = conns.get(s.id);
      const a = answered(c);
      c.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
      await a;
    } else {
      const c = conns.get(s.id);
      const closed = new Promise((resolve) => c.once('close', resolve));
      c.resume();
      c.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n');
      await closed;
    }
  }
})().catch((e) => { console.error(e); process.exit(1); });
`;

type Step = { op: 'open'; id: string; port: number; host: string; from: string } | { op: 'get' | 'close'; id: string };

async function runClient(plan: readonly Step[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, ['-e', CLIENT, JSON.stringify(plan)], { timeout: 20_000 }, (err, _out, stderr) => (err === null ? resolve() : reject(new Error(`client: ${err.message} ${stderr}`))));
  });
}

describe('uwsPeerAddress with the addresses accept gave', () => {
  const v4 = (last: number): number[] => [127, 0, 0, last];
  const open = (id: string, app: { port: number }, last: number): Step => ({ op: 'open', id, port: app.port, host: '127.0.0.1', from: `127.0.0.${last}` });

  test('uwsAcceptPeers finds uSockets in the loaded uWS binary; a bad argument is a TypeError', () => {
    assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()), true);
    assert.throws(() => addon.uwsAcceptPeers(7 as unknown as string), TypeError);
  });

  test('answers from accept on connections accepted after its first call on a context, never with another connection\'s address', async () => {
    assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()), true);
    const seen1: Seen[] = [];
    const seen2: Seen[] = [];
    const app1 = listen(uws.App(), '127.0.0.1', seen1, undefined, true);
    const app2 = listen(uws.App(), '127.0.0.1', seen2, undefined, true);
    try {
      await runClient([
        // a: accepted before the first call on app1's context (which wraps it): getpeername.
        open('a', app1, 2),
        { op: 'get', id: 'a' },
        { op: 'close', id: 'a' },
        // b: accepted after it, in a's descriptor: from accept.
        open('b', app1, 3),
        { op: 'close', id: 'b' },
        // c: accepted by app2, not yet wrapped, in b's descriptor, whose note says 127.0.0.3.
        open('c', app2, 4),
        // d's request wraps app2; c's must still not be answered from b's note.
        open('d', app2, 5),
        { op: 'get', id: 'd' },
        { op: 'get', id: 'c' },
        { op: 'close', id: 'd' },
        { op: 'close', id: 'c' },
        // Both contexts wrapped: every new connection is answered from accept.
        ...[6, 7, 8, 9, 10, 11].flatMap((last): Step[] => [open(`n${last}`, last % 2 === 0 ? app2 : app1, last), { op: 'get', id: `n${last}` }, { op: 'close', id: `n${last}` }]),
      ]);
    } finally {
      app1.close();
      app2.close();
    }
    const summary = (seen: Seen[]): [number[] | number, boolean][] => seen.map((x) => [x.native, x.accepted]);
    for (const x of [...seen1, ...seen2]) assert.deepEqual(x.native, x.uws);
    assert.deepEqual(summary(seen1), [
      [v4(2), false],
      [v4(2), false],
      [v4(3), true],
      ...[7, 9, 11].flatMap((last) => [[v4(last), true] as [number[], boolean], [v4(last), true] as [number[], boolean]]),
    ]);
    assert.deepEqual(summary(seen2), [
      [v4(5), false],
      [v4(4), false],
      [v4(5), false],
      [v4(4), false],
      ...[6, 8, 10].flatMap((last) => [[v4(last), true] as [number[], boolean], [v4(last), true] as [number[], boolean]]),
    ]);
  });

  test('uwsAcceptPeersOn wraps a listener before it accepts: its first connection is answered from accept', async () => {
    assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()), true);
    const seen: Seen[] = [];
    let wrapped: boolean[] = [];
    const app = listen(uws.App(), '127.0.0.1', seen, undefined, true, (token) => {
      // Twice: the second finds it wrapped already. Anything but a listen token is refused.
      wrapped = [addon.uwsAcceptPeersOn(token), addon.uwsAcceptPeersOn(token), addon.uwsAcceptPeersOn({}), addon.uwsAcceptPeersOn(false)];
    });
    try {
      await runClient([open('a', app, 2), { op: 'get', id: 'a' }, { op: 'close', id: 'a' }]);
    } finally {
      app.close();
    }
    assert.deepEqual(wrapped, [true, true, false, false]);
    assert.deepEqual(
      seen.map((x) => [x.native, x.accepted, x.uws]),
      [
        [v4(2), true, v4(2)],
        [v4(2), true, v4(2)],
      ],
    );
  });

  test('gives 16 bytes for IPv6; without fromAccept it is getpeername', async () => {
    assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()), true);
    const seen: Seen[] = [];
    const plain: Seen[] = [];
    const app = listen(uws.App(), '::1', seen, undefined, true);
    const other = listen(uws.App(), '127.0.0.1', plain);
    try {
      await runClient([
        { op: 'open', id: 'a', port: app.port, host: '::1', from: '::1' },
        { op: 'close', id: 'a' },
        { op: 'open', id: 'b', port: app.port, host: '::1', from: '::1' },
        { op: 'close', id: 'b' },
        ...[1, 2].flatMap((i): Step[] => [{ op: 'open', id: `p${i}`, port: other.port, host: '127.0.0.1', from: '127.0.0.1' }, { op: 'close', id: `p${i}` }]),
      ]);
    } finally {
      app.close();
      other.close();
    }
    const loop6 = [...Array(15).fill(0), 1];
    assert.deepEqual(
      seen.map((x) => [x.native, x.accepted, x.uws]),
      [
        [loop6, false, loop6],
        [loop6, true, loop6],
      ],
    );
    assert.deepEqual(
      plain.map((x) => [x.native, x.accepted]),
      [
        [v4(1), false],
        [v4(1), false],
      ],
    );
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

  test('with fromAccept, uses the addresses accept gave once the first of them matched uWS', async () => {
    assert.equal(addon.uwsAcceptPeers(uwsBinaryFile()), true);
    const kinds: number[] = [];
    const counting: PeerAddressFn = (res, out, fromAccept) => {
      const n = addon.uwsPeerAddress(res, out, fromAccept);
      kinds.push(n);
      return n;
    };
    const reader = new PeerReader(counting, 'http', true);
    assert.deepEqual(await readAll(reader, 4), Array(4).fill([127, 0, 0, 1]));
    assert.equal(reader.trusted, true);
    assert.equal(reader.acceptTrusted, true);
    // The check of the socket read, the call that wrapped the context, then accept's answers
    // (one connection per request).
    assert.deepEqual(kinds, [4, 4, PEER_FROM_ACCEPT + 4, PEER_FROM_ACCEPT + 4]);
  });

  test('an address from accept that disagrees is logged once, and getpeername is used from then on', async () => {
    const asked: boolean[] = [];
    const wrongAccept: PeerAddressFn = (res, out, fromAccept) => {
      asked.push(fromAccept);
      if (!fromAccept) return addon.uwsPeerAddress(res, out, false);
      out.set([10, 9, 8, 7]);
      return PEER_FROM_ACCEPT + 4;
    };
    const reader = new PeerReader(wrongAccept, 'http', true);
    const { log, lines } = records();
    assert.deepEqual(await readAll(reader, 4, log), Array(4).fill([127, 0, 0, 1]));
    assert.deepEqual(asked, [false, true, false, false]);
    assert.equal(reader.trusted, true);
    assert.equal(reader.acceptTrusted, false);
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]?.msg), /the address accept gave disagrees/);
    assert.equal(errors[0]?.accept, '10.9.8.7');
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
