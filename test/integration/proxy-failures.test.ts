/**
 * Upstreams that misbehave on purpose (raw `net` servers writing exact bytes), timeouts,
 * request limits and malformed requests, against the real Sluice process. After every
 * failure the worker must keep serving everyone else.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  onRequestHead,
  rawExchange,
  request,
  sleep,
  startRawUpstream,
  startSluice,
  startUpstream,
  type RawUpstream,
  type Running,
  type Upstream,
} from '../helpers';

describe('misbehaving upstreams, timeouts and limits', () => {
  let good: Upstream;
  const raws: Record<string, RawUpstream> = {};
  let s: Running;
  let deadPort = 0;

  before(async () => {
    good = await startUpstream();
    raws.slowHead = await startRawUpstream((sock) => onRequestHead(sock, () => undefined));
    raws.earlyClose = await startRawUpstream((sock) => onRequestHead(sock, () => sock.end()));
    raws.resetMidBody = await startRawUpstream((sock) =>
      onRequestHead(sock, () => {
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
        sock.write(Buffer.alloc(1000, 0x61));
        setTimeout(() => sock.resetAndDestroy(), 50);
      }),
    );
    raws.badStatus = await startRawUpstream((sock) => onRequestHead(sock, () => sock.write('HTTP/1.1 2OO OK\r\n\r\n')));
    raws.badHeader = await startRawUpstream((sock) => onRequestHead(sock, () => sock.write('HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n')));
    raws.badChunk = await startRawUpstream((sock) =>
      onRequestHead(sock, () => sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n')),
    );
    raws.smuggle = await startRawUpstream((sock) =>
      onRequestHead(sock, () => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')),
    );
    raws.stallBody = await startRawUpstream((sock) =>
      onRequestHead(sock, () => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')),
    );
    // Answers, keeps the connection looking alive, then closes it once idle: the next
    // request on the pooled connection meets a closed socket (the keep-alive reuse race).
    raws.raceClose = await startRawUpstream((sock) =>
      onRequestHead(sock, () => {
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => sock.destroy(), 100);
      }),
    );
    const probe = await startRawUpstream(() => undefined);
    deadPort = probe.port;
    await probe.close();

    const route = (name: string, upstream: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      name,
      match: { path: { prefix: `/${name}` } },
      action: { type: 'proxy', upstream },
      ...extra,
    });
    const upstreams: Record<string, unknown> = { good: { hosts: [{ address: good.address }] }, dead: { hosts: [{ address: `127.0.0.1:${deadPort}` }] } };
    for (const [k, r] of Object.entries(raws)) upstreams[k] = { hosts: [{ address: r.address }] };
    s = await startSluice({
      workers: 2,
      limits: { maxUrlLength: 200, maxHeaderCount: 20, maxHeaderBytes: 2000, maxBodyBytes: 10000 },
      upstreams,
      routes: [
        route('dead', 'dead'),
        route('slowHead', 'slowHead', { timeouts: { headerMs: 400 } }),
        route('earlyClose', 'earlyClose'),
        route('resetMidBody', 'resetMidBody'),
        route('badStatus', 'badStatus'),
        route('badHeader', 'badHeader'),
        route('badChunk', 'badChunk'),
        route('smuggle', 'smuggle'),
        route('stallBody', 'stallBody', { timeouts: { idleMs: 400 } }),
        route('total', 'slowHead', { timeouts: { totalMs: 300, headerMs: 5000 } }),
        route('raceClose', 'raceClose'),
        route('small', 'good', { maxBodyBytes: 10 }),
        { name: 'good', action: { type: 'proxy', upstream: 'good' } },
      ],
    });
  });

  after(async () => {
    assert.equal(await s.stop(), 0);
    await good.close();
    for (const r of Object.values(raws)) await r.close();
  });

  async function assertStillServing(): Promise<void> {
    const r = await request(s.port, { path: '/fine' });
    assert.equal(r.status, 200);
  }

  const expectError = async (path: string, status: number, code: string): Promise<void> => {
    const r = await request(s.port, { path });
    assert.equal(r.status, status, `${path}: ${r.body.toString()}`);
    assert.equal(r.headers['x-sluice-error'], code);
    const body = JSON.parse(r.body.toString()) as { error: string; message: string };
    assert.equal(body.error, code);
    assert.ok(body.message.length > 0);
  };

  test('a dead upstream → 502 SLUICE_ERR_UPSTREAM_CONNECT', async () => {
    await expectError('/dead', 502, 'SLUICE_ERR_UPSTREAM_CONNECT');
    await assertStillServing();
  });

  test('no response head in time → 504 SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT', async () => {
    const t0 = Date.now();
    await expectError('/slowHead', 504, 'SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT');
    assert.ok(Date.now() - t0 >= 300, 'waited for the head timeout');
    await assertStillServing();
  });

  test('route total timeout → 504 SLUICE_ERR_TOTAL_TIMEOUT', async () => {
    await expectError('/total', 504, 'SLUICE_ERR_TOTAL_TIMEOUT');
  });

  test('an upstream that closes before answering → 502 SLUICE_ERR_UPSTREAM_CLOSED', async () => {
    await expectError('/earlyClose', 502, 'SLUICE_ERR_UPSTREAM_CLOSED');
    await assertStillServing();
  });

  test('malformed response heads → 502 SLUICE_ERR_UPSTREAM_BAD_RESPONSE', async () => {
    await expectError('/badStatus', 502, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
    await expectError('/badHeader', 502, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
    await expectError('/smuggle', 502, 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE');
    await assertStillServing();
  });

  test('a reset or bad framing mid-body cuts the client connection (status already sent)', async () => {
    for (const path of ['/resetMidBody', '/badChunk']) {
      const res = await rawExchange(s.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 3000);
      // The cut may be a reset that discards what the client had not read yet; either way
      // the client never sees a complete response.
      if (res.data !== '') assert.match(res.data, /^HTTP\/1\.1 200 OK/);
      assert.equal(/\r\n0\r\n\r\n$/.test(res.data), false, 'no chunked terminator');
      assert.ok(res.data.length < 100000, 'not the whole declared body');
      assert.equal(res.closed, true, `${path}: connection closed`);
    }
    await assertStillServing();
  });

  test('an upstream that stalls mid-body hits the read idle timeout: the client connection is cut', async () => {
    const t0 = Date.now();
    const res = await rawExchange(s.port, 'GET /stallBody HTTP/1.1\r\nHost: x\r\n\r\n', 5000);
    assert.match(res.data, /^HTTP\/1\.1 200 OK/);
    assert.ok(res.data.endsWith('abc'));
    assert.equal(res.closed, true);
    assert.ok(Date.now() - t0 < 4000);
    await assertStillServing();
  });

  test('keep-alive reuse race: a request on a pooled connection the upstream closed is retried once', async () => {
    // Two workers: repeat enough times that each worker reuses a connection the upstream closed.
    for (let i = 0; i < 8; i++) {
      const r = await request(s.port, { path: '/raceClose' });
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.body.toString(), 'ok');
      await sleep(150); // the upstream closes 100 ms after answering
    }
    // The race really happened: more upstream connections than requests would need if reused.
    assert.ok((raws.raceClose as RawUpstream).sockets.length >= 8);
  });

  test('URL too long → 414', async () => {
    const r = await request(s.port, { path: `/${'a'.repeat(300)}` });
    assert.equal(r.status, 414);
    assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_URL_TOO_LONG');
  });

  test('too many header fields or too many header bytes → 431', async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 25; i++) many[`x-h${i}`] = 'v';
    const r1 = await request(s.port, { headers: many });
    assert.equal(r1.status, 431);
    assert.equal(r1.headers['x-sluice-error'], 'SLUICE_ERR_TOO_MANY_HEADERS');
    const r2 = await request(s.port, { headers: { 'x-big': 'b'.repeat(2500) } });
    assert.equal(r2.status, 431);
    assert.equal(r2.headers['x-sluice-error'], 'SLUICE_ERR_HEADERS_TOO_LARGE');
  });

  test('request body too large → 413 (declared length, streamed chunks, and per route)', async () => {
    const r1 = await request(s.port, { method: 'POST', body: Buffer.alloc(20000), headers: { 'content-length': '20000' } });
    assert.equal(r1.status, 413);
    assert.equal(r1.headers['x-sluice-error'], 'SLUICE_ERR_BODY_TOO_LARGE');
    const r2 = await request(s.port, { method: 'POST', body: [Buffer.alloc(6000), Buffer.alloc(6000)], headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(r2.status, 413);
    const r3 = await request(s.port, { method: 'POST', path: '/small', body: 'more than ten bytes', headers: { 'content-length': '19' } });
    assert.equal(r3.status, 413);
    await assertStillServing();
  });

  test('malformed requests get 400 or a closed connection, never a proxied request', async () => {
    const bad = await rawExchange(s.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 1000);
    assert.ok(bad.closed || /^HTTP\/1\.1 400/.test(bad.data), bad.data);
    const smuggle = await rawExchange(s.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 1000);
    assert.ok(smuggle.closed || /^HTTP\/1\.1 400/.test(smuggle.data), smuggle.data);
    const garbage = await rawExchange(s.port, 'THIS IS NOT HTTP\r\n\r\n', 1000);
    assert.equal(garbage.data.includes('200 OK'), false);
    const before = good.seen.length;
    await sleep(100);
    assert.equal(good.seen.length, before);
    await assertStillServing();
  });

  test('a client that sends its head slowly (slowloris) is disconnected by the uWS idle timer', { timeout: 30000 }, async () => {
    const sock = connect(s.port, '127.0.0.1');
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const t0 = Date.now();
    sock.write('GET / HTTP/1.1\r\n');
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    let n = 0;
    const drip = setInterval(() => {
      if (!sock.destroyed) sock.write(`X-Drip-${n++}: a\r\n`);
    }, 2000);
    await closed;
    clearInterval(drip);
    const took = Date.now() - t0;
    assert.ok(took >= 8000 && took < 25000, `closed after ${took} ms`);
    await assertStillServing();
  });

  test('a connect that hangs (full accept backlog) → 504 SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT', { timeout: 30000 }, async () => {
    // A real listening socket that never accepts, its backlog filled, so SYNs go unanswered.
    const py = spawn('python3', [
      '-c',
      [
        'import socket,sys,time',
        's=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(0)',
        'port=s.getsockname()[1]',
        'fill=[]',
        'for i in range(8):',
        '  c=socket.socket(); c.setblocking(False)',
        '  try: c.connect(("127.0.0.1",port))',
        '  except BlockingIOError: pass',
        '  fill.append(c)',
        'print(port, flush=True)',
        'time.sleep(60)',
      ].join('\n'),
    ]);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
        py.once('error', reject);
      });
      const s2 = await startSluice({
        workers: 1,
        timeouts: { connectMs: 500 },
        upstreams: { hang: { hosts: [{ address: `127.0.0.1:${port}` }] } },
        routes: [{ name: 'hang', action: { type: 'proxy', upstream: 'hang' } }],
      });
      try {
        const r = await request(s2.port);
        assert.equal(r.status, 504, r.body.toString());
        assert.equal(r.headers['x-sluice-error'], 'SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT');
      } finally {
        await s2.stop();
      }
    } finally {
      py.kill();
    }
  });
});
