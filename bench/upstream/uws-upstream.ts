/**
 * The bench upstream, uWebSockets.js flavour: one thread, every body prebuilt.
 * GET or POST / (any other path too) -> 200 with the 100-byte body (a POST body is read to
 * its end first), GET /16k and /1m -> 16 KiB and 1 MiB bodies.
 *
 * Usage: node dist/bench/upstream/uws-upstream.js HOST PORT [PORT…]
 */
import * as uws from 'uWebSockets.js';
import { UPSTREAM_BODIES } from './bodies';

function main(): void {
  // The package falls back to a slow JS server when its binary does not load: refuse that.
  if (typeof (uws as unknown as Record<string, unknown>).H3App !== 'function') {
    console.error('uws-upstream: the native uWebSockets.js binary did not load');
    process.exit(1);
  }
  const [host, ...portArgs] = process.argv.slice(2);
  const ports = portArgs.map(Number);
  if (!host || ports.length === 0 || ports.some((p) => !Number.isInteger(p))) {
    console.error('usage: uws-upstream HOST PORT [PORT…]');
    process.exit(2);
  }
  const small = Buffer.from(UPSTREAM_BODIES.small);
  const k16 = Buffer.alloc(UPSTREAM_BODIES.k16Bytes, 'a');
  const m1 = Buffer.alloc(UPSTREAM_BODIES.m1Bytes, 'b');

  /** Send `body` through tryEnd, continuing in onWritable under backpressure (1 MiB). */
  const sendLarge = (res: uws.HttpResponse, body: Buffer): void => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/octet-stream');
    const [ok, done] = res.tryEnd(body, body.length);
    if (ok || done) return;
    res.onWritable((offset) => {
      if (aborted) return true;
      const [ok2] = res.tryEnd(body.subarray(offset), body.length);
      return ok2;
    });
  };

  const app = uws.App();
  app.get('/16k', (res) => sendLarge(res, k16));
  app.get('/1m', (res) => sendLarge(res, m1));
  app.get('/*', (res) => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'text/plain').end(small);
  });
  app.any('/*', (res) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    res.onData((_chunk, isLast) => {
      if (isLast && !aborted) res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'text/plain').end(small));
    });
  });
  for (const port of ports) {
    app.listen(host, port, (token) => {
      if (!token) {
        console.error(`uws-upstream: cannot listen on ${host}:${port}`);
        process.exit(1);
      }
    });
  }
  process.once('SIGTERM', () => process.exit(0));
}

main();
