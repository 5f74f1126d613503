/**
 * Upstream bytes handed over at the end of the event-loop turn (src/workers/http/upstream/pool.ts) on real
 * TCP connections to a real server, read by the addon's reader (native/napi/src/reader.rs),
 * the one read path of plain TCP connections. The owner gets the bytes in read order, before
 * the connection's end or error; a turn that reads more than its arena holds loses and mixes
 * nothing; reading pauses and resumes for backpressure.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { type Conn, type ConnOwner, HostPool } from '../../src/workers/http/upstream/pool';

interface Upstream {
  readonly pool: HostPool;
  readonly server: Server;
  /** Accepted sockets, in accept order. */
  readonly sockets: Socket[];
}

async function upstream(): Promise<Upstream> {
  const sockets: Socket[] = [];
  const server = createServer((s: Socket) => {
    sockets.push(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const pool = new HostPool(`127.0.0.1:${port}`, { maxIdlePerHost: 16, idleTimeoutMs: 60_000, maxConnectionsPerHost: 0 });
  return { pool, server, sockets };
}

/** What an owner saw: the bytes (copied, as owners must) and the order of events. */
interface Seen {
  bytes: Buffer[];
  events: string[];
  ended: boolean;
}

/** A connection of `pool` once it is up, with an owner that records what it gets. */
async function connected(pool: HostPool): Promise<{ conn: Conn; seen: Seen }> {
  const conn = pool.acquire(false) as Conn;
  assert.ok(conn !== null);
  const seen: Seen = { bytes: [], events: [], ended: false };
  await new Promise<void>((resolve, reject) => {
    const owner: ConnOwner = {
      onConnect: () => resolve(),
      onData: (_c, buf, start, end) => {
        assert.ok(start >= 0 && start < end && end <= buf.length, `range ${start}..${end} of ${buf.length}`);
        seen.bytes.push(Buffer.from(buf.subarray(start, end)));
        seen.events.push('data');
      },
      onEnd: (_c, err) => {
        seen.ended = true;
        seen.events.push('end');
        reject(err ?? new Error('closed before connecting'));
      },
      onDrain: () => {},
    };
    conn.owner = owner;
  });
  return { conn, seen };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

/** `n` bytes that tell connection `id`'s stream apart from every other and show any reordering. */
function pattern(id: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (id * 31 + i * 7 + (i >> 8)) & 0xff;
  return b;
}

function close(u: Upstream, ...conns: Conn[]): void {
  for (const c of conns) c.destroy();
  u.pool.close();
  for (const s of u.sockets) s.destroy();
  u.server.close();
}


test('native reader: reading pauses for backpressure and resumes where it stopped', async () => {
  const u = await upstream();
  const { conn, seen } = await connected(u.pool);
  try {
    await until('the server accepted', () => u.sockets.length === 1);
    const s = u.sockets[0] as Socket;
    s.write('first');
    await until('the first bytes arrived', () => seen.bytes.length === 1);
    conn.pauseReading();
    s.write('second');
    // Several turns and 100 ms: nothing may arrive while paused.
    for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(Buffer.concat(seen.bytes).toString(), 'first', 'bytes arrived while reading was paused');
    conn.resumeReading();
    await until('the rest arrived', () => Buffer.concat(seen.bytes).toString() === 'firstsecond');
    assert.equal(conn.socket.bytesRead, 0, "Node's stream read nothing: the addon read it all");
  } finally {
    close(u, conn);
  }
});

test('native reader: the last bytes before an upstream closes reach the owner before the end does', async () => {
  const u = await upstream();
  const { conn, seen } = await connected(u.pool);
  try {
    await until('the server accepted', () => u.sockets.length === 1);
    // A body delimited by the close: bytes and FIN leave together.
    const body = 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close';
    (u.sockets[0] as Socket).end(body);
    await until('the owner saw the end', () => seen.ended);
    assert.equal(Buffer.concat(seen.bytes).toString(), body);
    assert.equal(seen.events.at(-1), 'end');
    assert.ok(!seen.events.slice(0, -1).includes('end'), `data after the end: ${seen.events.join(',')}`);
  } finally {
    close(u, conn);
  }
});

test('native reader: bytes and the end that were both waiting when reading resumed reach the owner, the end last', async () => {
  const u = await upstream();
  const { conn, seen } = await connected(u.pool);
  try {
    await until('the server accepted', () => u.sockets.length === 1);
    const s = u.sockets[0] as Socket;
    conn.pauseReading();
    // Bytes and FIN sit in the socket before anything reads it: the reader (edge-triggered)
    // then gets one event for both, and must read on past the short read to the end.
    const body = 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nwaiting with the end';
    s.end(body);
    await once(s, 'finish');
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen.events, [], 'nothing arrives while reading is paused');
    conn.resumeReading();
    await until('the owner saw the end', () => seen.ended);
    assert.equal(Buffer.concat(seen.bytes).toString(), body);
    assert.equal(seen.events.at(-1), 'end');
  } finally {
    close(u, conn);
  }
});

test('native reader: bytes followed by a reset reach the owner before the error does', async () => {
  const u = await upstream();
  const { conn, seen } = await connected(u.pool);
  try {
    await until('the server accepted', () => u.sockets.length === 1);
    const s = u.sockets[0] as Socket;
    s.write('HTTP/1.1 200 OK\r\n\r\npartial', () => s.resetAndDestroy());
    await until('the owner saw the end', () => seen.ended);
    assert.equal(Buffer.concat(seen.bytes).toString(), 'HTTP/1.1 200 OK\r\n\r\npartial');
    assert.deepEqual(seen.events, ['data', 'end']);
  } finally {
    close(u, conn);
  }
});

test('native reader: reads that overflow the turn arena push it out first: every connection gets its own bytes in order', async () => {
  const u = await upstream();
  // 8 connections, 60,000 bytes each at once: each read stays under the 64 KiB read buffer
  // (deferred), and together they pass the 256 KiB arena several times in one turn.
  const conns = await Promise.all(Array.from({ length: 8 }, () => connected(u.pool)));
  try {
    await until('the server accepted all', () => u.sockets.length === 8);
    const sent = conns.map((_, i) => pattern(i, 60_000));
    // Accept order and acquire order can differ: tell each connection which stream it gets.
    for (let i = 0; i < 8; i++) (u.sockets[i] as Socket).write(sent[i] as Buffer);
    await until('every owner got 60,000 bytes', () => conns.every(({ seen }) => Buffer.concat(seen.bytes).length === 60_000));
    const got = conns.map(({ seen }) => Buffer.concat(seen.bytes));
    for (const g of got) {
      const i = sent.findIndex((s) => s.equals(g));
      assert.ok(i !== -1, 'a connection got a stream that no socket sent (bytes mixed or reordered)');
    }
    assert.equal(new Set(got.map((g) => sent.findIndex((s) => s.equals(g)))).size, 8, 'each stream reached exactly one owner');
    assert.ok(conns.every(({ conn }) => conn.deferred === 0));
  } finally {
    close(u, ...conns.map((c) => c.conn));
  }
});

test('native reader: bytes left waiting when the turn arena fills are read in a later turn, with nothing new arriving', async () => {
  const u = await upstream();
  // 20 connections with 60,000 bytes waiting each, all made ready in one turn: 1.2 MB, more
  // than the reader's 1 MiB arena. What does not fit must be read later although no more
  // bytes arrive to report it (an edge-triggered registration reports only new data).
  const conns = await Promise.all(Array.from({ length: 20 }, () => connected(u.pool)));
  try {
    await until('the server accepted all', () => u.sockets.length === 20);
    for (const { conn } of conns) conn.pauseReading();
    const sent = conns.map((_, i) => pattern(i + 40, 60_000));
    await Promise.all(u.sockets.map((s, i) => new Promise((r) => s.write(sent[i] as Buffer, r))));
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
    for (const { conn } of conns) conn.resumeReading();
    await until('every owner got 60,000 bytes', () => conns.every(({ seen }) => Buffer.concat(seen.bytes).length === 60_000));
    const got = conns.map(({ seen }) => Buffer.concat(seen.bytes));
    assert.equal(new Set(got.map((g) => sent.findIndex((x) => x.equals(g)))).size, 20, 'each stream reached exactly one owner, whole');
  } finally {
    close(u, ...conns.map((c) => c.conn));
  }
});

test('native reader: a response larger than the read buffer arrives whole and in order', async () => {
  const u = await upstream();
  const { conn, seen } = await connected(u.pool);
  try {
    await until('the server accepted', () => u.sockets.length === 1);
    const big = pattern(3, 1024 * 1024);
    (u.sockets[0] as Socket).write(big);
    await until('the owner got 1 MiB', () => Buffer.concat(seen.bytes).length === big.length);
    assert.ok(Buffer.concat(seen.bytes).equals(big));
  } finally {
    close(u, conn);
  }
});
