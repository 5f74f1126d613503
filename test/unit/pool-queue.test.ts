/**
 * Request heads sent at the end of the event-loop turn (src/workers/http/upstream/pool.ts, Conn.queueText)
 * on real TCP connections to a real server: heads queued in one turn go out together when it
 * ends, a connection closed or given back to its pool before then sends nothing, and a
 * connection still connecting writes through its stream at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { type Conn, type ConnOwner, HostPool } from '../../src/workers/http/upstream/pool';

interface Upstream {
  readonly pool: HostPool;
  /** Bytes received so far, per accepted connection in accept order. */
  readonly received: Buffer[];
  /** Accepted connections the client side has closed. */
  closed: number;
  readonly server: Server;
}

async function upstream(): Promise<Upstream> {
  const u = { received: [] as Buffer[], closed: 0 } as { received: Buffer[]; closed: number; pool?: HostPool; server?: Server };
  const server = createServer((s: Socket) => {
    const i = u.received.push(Buffer.alloc(0)) - 1;
    s.on('data', (d: Buffer) => {
      u.received[i] = Buffer.concat([u.received[i] as Buffer, d]);
    });
    s.on('end', () => {
      u.closed++;
      s.end();
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  u.pool = new HostPool(`127.0.0.1:${port}`, { maxIdlePerHost: 8, idleTimeoutMs: 60_000, maxConnectionsPerHost: 0 });
  u.server = server;
  return u as Upstream;
}

/** A connection of `pool` once it is up. */
async function connected(pool: HostPool): Promise<Conn> {
  const c = pool.acquire(false) as Conn;
  assert.ok(c !== null);
  await new Promise<void>((resolve, reject) => {
    const owner: ConnOwner = {
      onConnect: () => resolve(),
      onData: () => {},
      onEnd: (_c, err) => reject(err ?? new Error('closed before connecting')),
      onDrain: () => {},
    };
    c.owner = owner;
  });
  return c;
}

const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

function close(u: Upstream, ...conns: Conn[]): void {
  for (const c of conns) c.destroy();
  u.pool.close();
  u.server.close();
}

test('request heads queued in one turn go out when the turn ends', async () => {
  const u = await upstream();
  const a = await connected(u.pool);
  const b = await connected(u.pool);
  try {
    const ha = 'GET /a HTTP/1.1\r\nhost: x\r\n\r\n';
    const hb = 'GET /b HTTP/1.1\r\nhost: x\r\n\r\n';
    a.queueText(ha);
    b.queueText(hb);
    assert.equal(a.queued, true);
    assert.equal(b.queued, true);
    await turnEnd();
    assert.equal(a.queued, false);
    assert.equal(b.queued, false);
    await until('both heads arrived', () => u.received.map(String).sort().join('|') === [ha, hb].sort().join('|'));
  } finally {
    close(u, a, b);
  }
});

test('two heads queued on one connection in a turn go out in the order they were queued', async () => {
  const u = await upstream();
  const c = await connected(u.pool);
  try {
    const first = 'GET /first HTTP/1.1\r\nhost: x\r\n\r\n';
    const second = 'GET /second HTTP/1.1\r\nhost: x\r\n\r\n';
    c.queueText(first);
    c.queueText(second);
    await turnEnd();
    await until('both heads arrived, in order', () => String(u.received[0] ?? '') === first + second);
  } finally {
    close(u, c);
  }
});

test('a connection closed before the turn ends drops its queued head', async () => {
  const u = await upstream();
  const c = await connected(u.pool);
  try {
    c.queueText('GET /dropped HTTP/1.1\r\nhost: x\r\n\r\n');
    c.destroy();
    await turnEnd();
    await until('the upstream saw the close', () => u.closed === 1);
    assert.equal(String(u.received[0]), '', 'no byte of the head was sent');
  } finally {
    close(u, c);
  }
});

test('a connection given back to its pool before its head went out is closed, not kept', async () => {
  const u = await upstream();
  const c = await connected(u.pool);
  try {
    c.queueText('GET /early HTTP/1.1\r\nhost: x\r\n\r\n');
    u.pool.release(c);
    assert.equal(c.closed, true);
    assert.equal(u.pool.idleCount, 0);
    await turnEnd();
    await until('the upstream saw the close', () => u.closed === 1);
    assert.equal(String(u.received[0]), '', 'no byte of the head was sent');
  } finally {
    close(u, c);
  }
});

test('a connection still connecting writes its head through the stream at once', async () => {
  const u = await upstream();
  const c = u.pool.acquire(false) as Conn;
  try {
    const head = 'GET /early HTTP/1.1\r\nhost: x\r\n\r\n';
    c.queueText(head);
    assert.equal(c.queued, false, 'not queued: the stream holds it until the connection is up');
    assert.ok(c.socket.writableLength > 0);
    await until('the head arrived', () => String(u.received[0] ?? '') === head);
  } finally {
    close(u, c);
  }
});

test("with the reader open, the turn's heads go out on its check-phase call, before the turn's immediates", async () => {
  const u = await upstream();
  const c = await connected(u.pool);
  try {
    const head = 'GET /reader HTTP/1.1\r\nhost: x\r\n\r\n';
    // Queued in a timer's callback: outside the poll phase, and with no read in the turn,
    // the reader's call still comes in this turn (readerWant), ahead of Node's immediates.
    const seenAtImmediate = await new Promise<boolean>((resolve) => {
      setTimeout(() => {
        // Scheduled first: through setImmediate the head would go out after this one.
        setImmediate(() => resolve(c.queued));
        c.queueText(head);
        assert.equal(c.queued, true);
      }, 1);
    });
    assert.equal(seenAtImmediate, false, 'the head had gone out when the turn reached its immediates');
    await until('the head arrived', () => String(u.received[0] ?? '') === head);
  } finally {
    close(u, c);
  }
});

test('a head queued on a connection the reader reads goes out at the end of the turn', async () => {
  const u = await upstream();
  const c = await connected(u.pool);
  try {
    const head = 'GET /node HTTP/1.1\r\nhost: x\r\n\r\n';
    c.queueText(head);
    assert.equal(c.queued, true);
    await turnEnd();
    await turnEnd();
    assert.equal(c.queued, false);
    await until('the head arrived', () => String(u.received[0] ?? '') === head);
  } finally {
    close(u, c);
  }
});
