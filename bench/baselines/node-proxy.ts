/**
 * The plain-Node baseline: what a reverse proxy written the obvious way with `node:http`
 * costs. One process, one thread, a keep-alive `http.Agent` to the upstream, bodies streamed
 * both ways with `pipe` (backpressure included), hop-by-hop headers stripped, the same
 * forwarded headers as Sluice, nginx and HAProxy.
 *
 * Usage: node dist/bench/baselines/node-proxy.js --listen HOST:PORT --upstream HOST:PORT
 * (several --upstream: round robin).
 */
import * as http from 'node:http';
import { randomUUID } from 'node:crypto';

interface Target {
  host: string;
  port: number;
}

function parseHostPort(s: string): Target {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port)) throw new Error(`expected HOST:PORT, got ${s}`);
  return { host: s.slice(0, i), port };
}

function parseArgs(argv: readonly string[]): { listen: Target; upstreams: Target[] } {
  let listen: Target | undefined;
  const upstreams: Target[] = [];
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--listen' && v) listen = parseHostPort(v);
    else if (argv[i] === '--upstream' && v) upstreams.push(parseHostPort(v));
    else continue;
    i++;
  }
  if (!listen || upstreams.length === 0) throw new Error('usage: node-proxy --listen HOST:PORT --upstream HOST:PORT');
  return { listen, upstreams };
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus the ones Node sets itself from what it sends.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);

function forwardHeaders(from: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const listed = new Set(
    String(from.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ''),
  );
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function main(): void {
  const { listen, upstreams } = parseArgs(process.argv.slice(2));
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
  let next = 0;

  const server = http.createServer((req, res) => {
    const target = upstreams[next++ % upstreams.length] as Target;
    const headers = forwardHeaders(req.headers);
    const client = req.socket.remoteAddress ?? '';
    const xff = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = xff ? `${String(xff)}, ${client}` : client;
    headers['x-forwarded-proto'] = 'http';
    headers['x-forwarded-host'] = req.headers.host ?? '';
    headers['x-request-id'] = req.headers['x-request-id'] ?? randomUUID();
    headers['via'] = req.headers.via ? `${req.headers.via}, 1.1 node-proxy` : '1.1 node-proxy';

    const upstreamReq = http.request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers, agent },
      (upstreamRes) => {
        // Sluice echoes the request id and adds its Via to responses too.
        const out = forwardHeaders(upstreamRes.headers);
        out['x-request-id'] ??= headers['x-request-id'];
        out['via'] = upstreamRes.headers.via ? `${upstreamRes.headers.via}, 1.1 node-proxy` : '1.1 node-proxy';
        res.writeHead(upstreamRes.statusCode ?? 502, out);
        upstreamRes.pipe(res);
        upstreamRes.on('error', () => res.destroy());
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway\n');
      } else {
        res.destroy();
      }
    });
    req.pipe(upstreamReq);
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.listen(listen.port, listen.host);
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
