/**
 * The addon's writeString (the worker's request-head write, src/workers/http/upstream/pool.ts Conn.writeText)
 * on a real TCP connection: the UTF-8 bytes arrive as sent, a text over 16 KiB and a bad
 * descriptor are declined (-1) for the caller to write through the stream.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { loadNative } from '../../src/shared/native';

const { writeString } = loadNative();

async function pair(): Promise<{ client: Socket; received: () => Buffer; close: () => void }> {
  const chunks: Buffer[] = [];
  const server = createServer((s) => s.on('data', (d: Buffer) => chunks.push(d)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  return {
    client,
    received: () => Buffer.concat(chunks),
    close: () => {
      client.destroy();
      server.close();
    },
  };
}

function fdOf(s: Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

test('writeString sends the UTF-8 bytes of a text on a connected socket', async () => {
  const p = await pair();
  try {
    const fd = fdOf(p.client);
    assert.ok(fd >= 0);
    const text = 'GET /caf\u00e9?q=\u20ac HTTP/1.1\r\nhost: x\r\n\r\n';
    assert.equal(writeString(fd, text), 0);
    const big = 'x'.repeat(16 * 1024);
    assert.equal(writeString(fd, big), 0, '16 KiB is still sent');
    const want = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from(big)]);
    for (let i = 0; i < 200 && p.received().length < want.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(p.received(), want);
  } finally {
    p.close();
  }
});

test('writeString declines what it cannot send: over 16 KiB, a bad descriptor', async () => {
  const p = await pair();
  try {
    assert.equal(writeString(fdOf(p.client), 'y'.repeat(16 * 1024 + 1)), -1);
    assert.equal(writeString(fdOf(p.client), `${'y'.repeat(16 * 1024 - 1)}\u20ac`), -1, 'a multi-byte character past the limit');
    assert.equal(writeString(-1, 'GET / HTTP/1.1\r\n\r\n'), -1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(p.received().length, 0, 'nothing was sent');
  } finally {
    p.close();
  }
  assert.throws(() => writeString(-1, 5 as unknown as string), /text must be a string/);
});
