/**
 * Bodies both ways through the real Sluice process: known-length, chunked and
 * close-delimited responses; uploads with Content-Length and chunked; HEAD, 204, 304;
 * Expect: 100-continue; and backpressure in both directions against real sockets.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { onRequestHead, request, sleep, startRawUpstream, startSluice, startUpstream, type Running, type Upstream } from '../helpers';

const BIG = randomBytes(5 * 1024 * 1024 + 17);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('bodies and streaming', () => {
  let up: Upstream;
  let s: Running;

  before(async () => {
    up = await startUpstream((req, res, body) => {
      const url = req.url ?? '/';
      if (url === '/big') {
        res.setHeader('content-length', BIG.length);
        res.end(BIG);
      } else if (url === '/chunked') {
        res.setHeader('content-type', 'text/plain');
        // No content-length: node sends chunked; several writes → several chunks.
        let i = 0;
        const tick = (): void => {
          if (i++ < 5) {
            res.write(`part-${i};`);
            setTimeout(tick, 5);
          } else res.end('end');
        };
        tick();
      } else if (url === '/echo') {
        res.setHeader('x-body-sha', sha(body));
        res.setHeader('x-body-te', String(req.headers['transfer-encoding'] ?? ''));
        res.setHeader('x-body-cl', String(req.headers['content-length'] ?? ''));
        res.end(body);
      } else if (url === '/204') {
        res.statusCode = 204;
        res.end();
      } else if (url === '/304') {
        res.statusCode = 304;
        res.setHeader('etag', '"v1"');
        res.end();
      } else if (url === '/head') {
        res.setHeader('content-length', 1234);
        res.setHeader('content-type', 'text/plain');
        res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      } else {
        res.end('ok');
      }
    });
    s = await startSluice({ workers: 2, upstreams: { u: { hosts: [{ address: up.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
  });

  after(async () => {
    assert.equal(await s.stop(), 0);
    await up.close();
  });

  test('a 5 MiB known-length response arrives intact with one Content-Length', async () => {
    const r = await request(s.port, { path: '/big' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(BIG.length));
    assert.equal(r.body.length, BIG.length);
    assert.equal(sha(r.body), sha(BIG));
  });

  test('a chunked upstream response is streamed chunked', async () => {
    const r = await request(s.port, { path: '/chunked' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.body.toString(), 'part-1;part-2;part-3;part-4;part-5;end');
  });

  test('a 3 MiB upload with Content-Length is forwarded intact', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    const r = await request(s.port, { method: 'POST', path: '/echo', body, headers: { 'content-length': String(body.length) } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-body-sha'], sha(body));
    assert.equal(r.headers['x-body-cl'], String(body.length));
    assert.equal(sha(r.body), sha(body));
  });

  test('a chunked upload is forwarded chunked', async () => {
    const parts = [randomBytes(1000), randomBytes(70000), randomBytes(5)];
    const r = await request(s.port, { method: 'POST', path: '/echo', body: parts, headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-body-te'], 'chunked');
    assert.equal(r.headers['x-body-sha'], sha(Buffer.concat(parts)));
  });

  test('HEAD keeps Content-Length and sends no body; the connection stays usable', async () => {
    // Sequential on one connection (uWS closes connections that pipeline async responses).
    const sock = connect(s.port, '127.0.0.1');
    let data = '';
    sock.setEncoding('latin1').on('data', (d: string) => (data += d));
    try {
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write('HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n');
      for (let i = 0; i < 100 && !data.includes('\r\n\r\n'); i++) await sleep(20);
      const head = data;
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, /content-length: 1234/i);
      assert.ok(head.endsWith('\r\n\r\n'), 'HEAD response has no body');
      data = '';
      sock.write('GET /head HTTP/1.1\r\nHost: x\r\n\r\n');
      for (let i = 0; i < 100 && !data.endsWith('x'.repeat(1234)); i++) await sleep(20);
      assert.ok(data.endsWith('x'.repeat(1234)), data);
    } finally {
      sock.destroy();
    }
  });

  test('204 and 304 have no body', async () => {
    const r204 = await request(s.port, { path: '/204' });
    assert.equal(r204.status, 204);
    assert.equal(r204.body.length, 0);
    const r304 = await request(s.port, { path: '/304', headers: { 'if-none-match': '"v1"' } });
    assert.equal(r304.status, 304);
    assert.equal(r304.headers.etag, '"v1"');
    assert.equal(r304.body.length, 0);
  });

  test('Expect: 100-continue gets 100 Continue, then the body is proxied', async () => {
    const body = Buffer.from('hello after continue');
    const got = await new Promise<{ continued: boolean; status: number; body: string }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(
        { host: '127.0.0.1', port: s.port, method: 'POST', path: '/echo', agent: false, headers: { expect: '100-continue', 'content-length': body.length } },
        (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (d: string) => (data += d));
          res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, body: data }));
        },
      );
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
    });
    assert.equal(got.continued, true);
    assert.equal(got.status, 200);
    assert.equal(got.body, body.toString());
    const seen = up.seen.find((x) => x.url === '/echo' && x.body.toString() === body.toString());
    assert.ok(seen);
    assert.equal(seen.headers.expect, undefined, 'Expect is hop-by-hop here: uWS answered it');
  });

  test('a close-delimited upstream response is streamed until the upstream closes', async () => {
    const raw = await startRawUpstream((sock) => {
      onRequestHead(sock, () => {
        sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nfirst,');
        setTimeout(() => sock.end('second'), 50);
      });
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    try {
      const r = await request(s2.port);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'first,second');
    } finally {
      await s2.stop();
      await raw.close();
    }
  });

  test('backpressure: a client that does not read stops the upstream from sending', async () => {
    const total = 64 * 1024 * 1024;
    let upstreamSock: import('node:net').Socket | undefined;
    const raw = await startRawUpstream((sock) => {
      upstreamSock = sock;
      onRequestHead(sock, () => {
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const pump = (): void => {
          while (sent < total) {
            sent += chunk.length;
            if (!sock.write(chunk)) {
              sock.once('drain', pump);
              return;
            }
          }
          sock.end();
        };
        pump();
      });
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    const client = connect(s2.port, '127.0.0.1');
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      client.pause();
      await sleep(1500);
      const written = upstreamSock?.bytesWritten ?? 0;
      // Kernel buffers on both hops hold a few MiB at most; without backpressure the proxy
      // would have read all 64 MiB into memory by now.
      assert.ok(written > 0 && written < total / 2, `upstream wrote ${written} of ${total} bytes while the client read nothing`);
      // Reading resumes the flow to the end.
      let got = 0;
      client.on('data', (d: Buffer) => (got += d.length));
      client.resume();
      const deadline = Date.now() + 30000;
      while (got < total && Date.now() < deadline) await sleep(50);
      assert.ok(got >= total, `client got ${got} bytes`);
    } finally {
      client.destroy();
      await s2.stop();
      await raw.close();
    }
  });

  test('response header bytes >= 0x80 pass unchanged; the head has one status line, Date and Content-Length', async () => {
    const raw = await startRawUpstream((sock) => {
      onRequestHead(sock, () => {
        sock.write(Buffer.from('HTTP/1.1 200 OK\r\nX-Name: caf\xe9 \x80\xff\r\nX-Plain: yes\r\nContent-Length: 2\r\n\r\nok', 'latin1'));
      });
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    const client = connect(s2.port, '127.0.0.1');
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      const chunks: Buffer[] = [];
      client.on('data', (d: Buffer) => chunks.push(d));
      client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      for (let i = 0; i < 100 && !Buffer.concat(chunks).toString('latin1').endsWith('\r\n\r\nok'); i++) await sleep(20);
      const text = Buffer.concat(chunks).toString('latin1');
      assert.ok(text.startsWith('HTTP/1.1 200 OK\r\n'), text);
      assert.ok(text.includes('\r\nX-Name: caf\xe9 \x80\xff\r\n'), JSON.stringify(text));
      assert.ok(text.includes('\r\nX-Plain: yes\r\n'));
      const head = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
      assert.equal(head.split('\r\nhttp/1.1').length, 1, 'one status line');
      assert.equal(head.split('\r\ndate: ').length, 2, 'one Date');
      assert.equal(head.split('\r\ncontent-length: 2').length, 2, 'one Content-Length');
      assert.ok(text.endsWith('\r\n\r\nok'));
    } finally {
      client.destroy();
      await s2.stop();
      await raw.close();
    }
  });

  // The usual head goes to the client as the upstream's bytes (response-head.ts sendHead, the
  // addon's compactResponseHead); what the phases add must still be right on that path, and a
  // Connection header naming other fields sends it down the string path.
  test('forwarded heads: Via appended to the upstream\'s, its request id kept, hop-by-hop and fields Connection names dropped', async () => {
    const heads = [
      'HTTP/1.1 201 Made\r\nVia: 1.0 up\r\nX-REQUEST-ID: up-1\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=9\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Request-Id\r\nX-Request-Id: up-2\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\nX-Kept: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    ];
    let k = 0; // over all connections: the pool may open a new one
    const raw = await startRawUpstream((sock) => {
      onRequestHead(sock, () => sock.write(heads[k++] as string));
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    try {
      const r1 = await request(s2.port, { headers: { 'x-request-id': 'client-1' } });
      assert.equal(r1.status, 201);
      assert.equal(r1.headers.via, '1.0 up, 1.1 sluice');
      assert.equal(r1.headers['x-request-id'], 'up-1', 'the upstream\'s own id, once');
      assert.deepEqual(r1.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r1.headers['keep-alive'], undefined);
      assert.equal(r1.body.toString(), 'ok');
      const r2 = await request(s2.port, { headers: { 'x-request-id': 'client-2' } });
      assert.equal(r2.headers['x-request-id'], 'client-2', 'the upstream\'s was hop-by-hop (listed in Connection)');
      assert.equal(r2.headers.via, '1.1 sluice');
      assert.equal(r2.headers['x-kept'], '1');
      const r3 = await request(s2.port, { headers: { 'x-request-id': 'client-3' } });
      assert.equal(r3.headers['x-request-id'], 'client-3');
      assert.equal(r3.headers.trailer, undefined);
      assert.notEqual(r3.headers.date, 'Mon, 01 Jan 2001 00:00:00 GMT', 'uWS writes its own Date');
      assert.equal(r3.headers['x-kept'], '2');
      assert.equal(r3.body.toString(), 'ok');
    } finally {
      await s2.stop();
      await raw.close();
    }
  });

  // Upstream connections read into one buffer shared by the worker's connections (pool.ts):
  // whatever outlives a read must be a copy, or the next read anywhere overwrites it.
  test('a response head split across reads arrives intact (the partial head is a copy)', async () => {
    const first = `HTTP/1.1 200 OK\r\nX-First: ${'a'.repeat(3000)}\r\nX-Sec`;
    const second = `ond: ${'b'.repeat(4000)}\r\nContent-Length: 5\r\n\r\nhello`;
    const raw = await startRawUpstream((sock) => {
      onRequestHead(sock, () => {
        sock.write(first);
        setTimeout(() => sock.write(second), 100);
      });
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    try {
      const r = await request(s2.port);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-first'], 'a'.repeat(3000));
      assert.equal(r.headers['x-second'], 'b'.repeat(4000));
      assert.equal(r.body.toString(), 'hello');
    } finally {
      await s2.stop();
      await raw.close();
    }
  });

  test('backpressure: body bytes held for a slow client survive other connections reading meanwhile', async () => {
    const big = randomBytes(32 * 1024 * 1024);
    const noise = Buffer.alloc(60 * 1024, 0x7a);
    const raw = await startRawUpstream((sock) => {
      onRequestHead(sock, (head) => {
        if (head.startsWith('GET /big')) {
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`);
          sock.write(big);
        } else sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${noise.length}\r\n\r\n`), noise]));
      });
    });
    const s2 = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    const client = connect(s2.port, '127.0.0.1');
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      const chunks: Buffer[] = [];
      client.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
      client.pause();
      await sleep(500);
      // Other upstream connections read into the shared buffer while /big waits for the client.
      for (let i = 0; i < 20; i++) {
        const r = await request(s2.port, { path: '/noise' });
        assert.equal(r.body.length, noise.length);
      }
      client.on('data', (d: Buffer) => chunks.push(d));
      client.resume();
      const want = big.length;
      const deadline = Date.now() + 30000;
      const bodyOf = (): Buffer => {
        const all = Buffer.concat(chunks);
        const at = all.indexOf('\r\n\r\n');
        return at === -1 ? Buffer.alloc(0) : all.subarray(at + 4);
      };
      while (bodyOf().length < want && Date.now() < deadline) await sleep(50);
      const body = bodyOf();
      assert.equal(body.length, want);
      assert.equal(sha(body), sha(big));
    } finally {
      client.destroy();
      await s2.stop();
      await raw.close();
    }
  });

  test('backpressure: an upstream that does not read pauses the client upload', async () => {
    let upstreamSock: import('node:net').Socket | undefined;
    const raw = await startRawUpstream((sock) => {
      upstreamSock = sock;
      sock.pause(); // never reads
    });
    const s2 = await startSluice({ workers: 1, limits: { maxBodyBytes: 1024 * 1024 * 1024 }, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    const client = connect(s2.port, '127.0.0.1');
    // uWS may cut an upload that stalls below 16 KiB/s; that is a bounded outcome too.
    client.on('error', () => undefined);
    try {
      await new Promise<void>((r) => client.once('connect', () => r()));
      const total = 64 * 1024 * 1024;
      client.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
      const chunk = Buffer.alloc(256 * 1024, 0x62);
      let sent = 0;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && sent < total && !client.destroyed) {
        if (client.write(chunk)) sent += chunk.length;
        else {
          sent += chunk.length;
          await Promise.race([new Promise((r) => client.once('drain', r)), sleep(300)]);
        }
      }
      await sleep(500);
      assert.ok(upstreamSock !== undefined);
      // Everything the client managed to send sits in socket buffers, not in the proxy.
      assert.ok(client.writableLength > 0 || client.destroyed, 'the client upload is blocked');
      assert.ok(sent - client.writableLength < total / 2, `client pushed ${sent - client.writableLength} bytes`);
    } finally {
      client.destroy();
      await s2.stop();
      await raw.close();
    }
  });
});
