/**
 * Integration-test helpers: the real Sluice process (primary + worker threads) started
 * from a config file, real upstream servers on port 0, and raw sockets for exact bytes.
 * Nothing here mocks the network.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import assert from 'node:assert/strict';
import type { Session } from '../src/workers/http/session';

export const ROOT = join(__dirname, '..', '..');
export const MAIN = join(ROOT, 'dist', 'src', 'main', 'index.js');

/** Strings that JSON encoders get wrong: escapes, control characters, non-ASCII, lone surrogates. */
export const NASTY = [
  '',
  'plain /path?x=1',
  'quote " and backslash \\ and slash /',
  Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\u007f',
  'é, 日本, emoji 😀',
  'lone \ud800 high, lone \udc00 low, reversed \udc00\ud800',
  '\u2028\u2029 line separators',
];

export interface Running {
  readonly proc: ChildProcess;
  readonly port: number;
  /** The admin listener's port (from the 'listening' record; 0 when admin.enabled is false). */
  readonly adminPort: number;
  readonly configPath: string;
  /** stderr lines parsed as JSON where possible. */
  readonly logs: Record<string, unknown>[];
  readonly stdout: string[];
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(pred: (rec: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

export function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-'));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** Calls `onRecord` with each line of a process's log stream, parsed as JSON ({ raw } when it is not). */
export function onLogRecords(stream: Readable, onRecord: (rec: Record<string, unknown>) => void): void {
  let buf = '';
  stream.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rec = { raw: line };
      }
      onRecord(rec);
    }
  });
}

/** Starts the real Sluice process with `config` (port forced to 0 unless given). */
export async function startSluice(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Running> {
  const listen = { host: '127.0.0.1', port: 0, ...((config.listen as object | undefined) ?? {}) };
  // The admin listener defaults to 127.0.0.1:9901; tests run several instances at once.
  const admin = { port: 0, ...((config.admin as object | undefined) ?? {}) };
  const full = { workers: 2, ...config, listen, admin };
  const configPath = tempFile('sluice.json', JSON.stringify(full, null, 2));
  const proc = spawn(process.execPath, [MAIN, '--config', configPath], {
    env: { ...process.env, SLUICE_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const stdout: string[] = [];
  const waiters: { pred: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }[] = [];
  if (proc.stderr !== null) {
    onLogRecords(proc.stderr, (rec) => {
      logs.push(rec);
      for (const w of waiters.splice(0)) {
        if (w.pred(rec)) w.resolve(rec);
        else waiters.push(w);
      }
    });
  }
  let outBuf = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    outBuf += d;
    let nl: number;
    while ((nl = outBuf.indexOf('\n')) !== -1) {
      stdout.push(outBuf.slice(0, nl));
      outBuf = outBuf.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const waitForLog = (pred: (r: Record<string, unknown>) => boolean, ms = 10000): Promise<Record<string, unknown>> => {
    const found = logs.find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`log line not seen within ${ms} ms; logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`)), ms);
      waiters.push({
        pred,
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
      });
    });
  };
  const ready = await Promise.race([
    waitForLog((r) => r.msg === 'listening', 15000),
    exited.then((code) => {
      throw new Error(`sluice exited with ${code} before listening:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`);
    }),
  ]);
  return {
    proc,
    port: ready.port as number,
    adminPort: (ready.adminPort as number | undefined) ?? 0,
    configPath,
    logs,
    stdout,
    exited,
    waitForLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs Sluice to completion (for config errors); resolves with exit code and output. */
export function runSluice(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
    proc.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stderr, stdout });
    });
  });
}

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  readonly address: string;
  /** Requests seen (method, url, headers, body). */
  readonly seen: { method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: Buffer }[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real node:http upstream on 127.0.0.1:0; `handler` answers after the body was read. */
export async function startUpstream(handler: Handler = defaultHandler): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  server.keepAliveTimeout = 30000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export const defaultHandler: Handler = (req, res, body) => {
  res.setHeader('content-type', 'application/json');
  res.setHeader('x-upstream-port', String((req.socket.address() as AddressInfo).port));
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length }));
};

export interface RawUpstream {
  readonly server: NetServer;
  readonly port: number;
  readonly address: string;
  readonly sockets: Socket[];
  /** All bytes received per connection. */
  readonly received: Buffer[][];
  close(): Promise<void>;
}

/** A raw `net` upstream that misbehaves on purpose: `onConnection` writes exact bytes. */
export async function startRawUpstream(onConnection: (sock: Socket, index: number) => void): Promise<RawUpstream> {
  const sockets: Socket[] = [];
  const received: Buffer[][] = [];
  const server = createNetServer((sock) => {
    const i = sockets.length;
    sockets.push(sock);
    received.push([]);
    sock.on('data', (d: Buffer) => received[i]?.push(d));
    sock.on('error', () => undefined);
    onConnection(sock, i);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Calls `cb` once a full request head has arrived on `sock` (and on every later one). */
export function onRequestHead(sock: Socket, cb: (head: string, n: number) => void): void {
  let buf = '';
  let n = 0;
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    let end: number;
    while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
      const head = buf.slice(0, end);
      buf = buf.slice(end + 4);
      const m = /content-length:\s*(\d+)/i.exec(head);
      if (m !== null) buf = buf.slice(Number(m[1]));
      cb(head, n++);
    }
  });
}

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export interface ReqOpts {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string | (Buffer | string)[];
  timeoutMs?: number;
  /** A keep-alive agent to reuse connections; default a fresh connection per request. */
  agent?: Agent;
  /** The client's address (any 127.0.0.0/8 address works on loopback). */
  localAddress?: string;
}

/** One request on a fresh connection (agent: false, unless opts.agent) to 127.0.0.1:port. */
export function request(port: number, opts: ReqOpts = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: opts.agent ?? false, localAddress: opts.localAddress },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 15000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    const b = opts.body;
    if (Array.isArray(b)) for (const part of b) req.write(part);
    else if (b !== undefined) req.write(b);
    req.end();
  });
}

/** Writes raw bytes and collects everything until the server closes or `idleMs` of silence. */
export function rawExchange(port: number, bytes: string | Buffer, idleMs = 1500): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    let timer: NodeJS.Timeout;
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data, closed });
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), idleMs);
    };
    s.on('connect', () => {
      s.write(bytes);
      arm();
    });
    s.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      arm();
    });
    s.on('close', () => done(true));
    s.on('error', () => undefined);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A single route proxying everything to the given host addresses. */
export function proxyConfig(addresses: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    upstreams: { app: { hosts: addresses.map((address) => ({ address })) } },
    routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    ...extra,
  };
}

/** Runs `jobs` with at most `limit` in flight; results in job order. */
export async function runLimited<R>(jobs: (() => Promise<R>)[], limit: number): Promise<R[]> {
  const out: R[] = new Array<R>(jobs.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await (jobs[i] as () => Promise<R>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, run));
  return out;
}

/**
 * Polls `pred` every `everyMs` until it holds; fails the test naming `what` after `ms` (a
 * limit for a hung test, never a timing assertion).
 */
export async function waitFor(pred: () => boolean | Promise<boolean>, what: string, ms = 15000, everyMs = 25): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(everyMs);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

/** One access-log line (docs/access-log.md); the fields tests read. */
export interface AccessRecord {
  id: string;
  client: string;
  route: string;
  status: number;
  attempts: number;
  upstreamHost?: string;
  flags?: string;
  error?: string;
}

/** The access-log lines (JSON) Sluice wrote to stdout so far. */
export function accessLog(s: Running): AccessRecord[] {
  return s.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as AccessRecord);
}

/** A Session for unit tests of phases: a plain GET / from 127.0.0.1, with `over` applied. */
export function makeSession(over: Partial<Session> = {}): Session {
  return {
    id: 1,
    method: 'GET',
    path: '/',
    query: '',
    headers: [],
    clientAddress: '127.0.0.1',
    peerAddress: over.clientAddress ?? '127.0.0.1',
    clientCert: '',
    startedAt: 0,
    routeName: '',
    requestId: '',
    status: 0,
    flags: [],
    upstreamName: '',
    upstreamHost: '',
    lbKey: '',
    attempts: 0,
    bytesIn: 0,
    bytesOut: 0,
    tries: null,
    ...over,
  };
}
