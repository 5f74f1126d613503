/**
 * Regression: pooled connections were never reused because a connection without
 * a `Keep-Alive: timeout=` hint counted as "do not reuse" (hint field initialised to 0).
 * Every request opened a new upstream connection and the bench collapsed to 2k req/s.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { onRequestHead, request, startRawUpstream, startSluice } from '../helpers';

async function connectionsFor(headers: string, requests: number): Promise<number> {
  const raw = await startRawUpstream((sock) =>
    onRequestHead(sock, () => sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${headers}\r\nok`)),
  );
  const s = await startSluice({ workers: 1, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
  try {
    for (let i = 0; i < requests; i++) assert.equal((await request(s.port)).status, 200);
    return raw.sockets.length;
  } finally {
    await s.stop();
    await raw.close();
  }
}

test('sequential requests reuse one pooled upstream connection', async () => {
  assert.equal(await connectionsFor('', 20), 1);
  assert.equal(await connectionsFor('Keep-Alive: timeout=30\r\n', 20), 1);
});

test('an upstream announcing Keep-Alive timeout=1 or Connection: close gets a new connection each time', async () => {
  assert.equal(await connectionsFor('Keep-Alive: timeout=1\r\n', 5), 5);
  assert.equal(await connectionsFor('Connection: close\r\n', 5), 5);
});
