/**
 * Demo upstreams for the README's main command: a small HTTP server on every loopback
 * address named in the config's upstream groups, answering with JSON that says which
 * upstream served the request and what it received (so the proxy's routing, load
 * balancing and header handling are visible with curl). Runs in its own process, forked
 * by the primary with `--demo`; it is a demo, never used by the tests or the bench.
 */
import { createServer, type Server } from 'node:http';

function serve(address: string): Promise<Server> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(colon + 1));
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const out = JSON.stringify(
        { upstream: address, method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json', 'x-demo-upstream': address });
      res.end(`${out}\n`);
    });
  });
  srv.keepAliveTimeout = 65000;
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });
}

async function main(): Promise<void> {
  const addresses = process.argv.slice(2);
  await Promise.all(addresses.map(serve));
  process.send?.({ type: 'demo-ready', addresses });
  process.on('disconnect', () => process.exit(0));
}

main().catch((e: unknown) => {
  process.stderr.write(`demo upstreams failed: ${(e as Error).message}\n`);
  process.exit(1);
});
