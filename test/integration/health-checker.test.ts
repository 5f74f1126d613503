/**
 * Active health checks (src/main/health-checker.ts) against real sockets on 127.0.0.1:0:
 * raw `net` servers that answer well, answer 503, hang, reset, close early or send garbage.
 * Every wait polls a state or a count; no assertion depends on how long anything took. Where
 * a test must show that something does NOT happen for a while, it waits for a number of
 * checks of another target whose intervals add up to more than that while.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { HealthChecker, type HealthChange, type HealthCheckSpec, type HealthTarget } from '../../src/main/health-checker';
import { SluiceError } from '../../src/shared/errors';
import { waitFor as waitForEvery } from '../helpers';

/** The checker's transitions are sampled as they happen: poll every 5 ms. */
const waitFor = (pred: () => boolean, what: string): Promise<void> => waitForEvery(pred, what, 8000, 5);

const MODULE = path.resolve(__dirname, '../../src/main/health-checker.js');

interface TestServer {
  readonly server: Server;
  port: number;
  address: string;
  readonly sockets: Socket[];
  /** Bytes received, per connection. */
  readonly received: string[];
  accepted: number;
  closedConns: number;
  close(): Promise<void>;
  /** Listens again on the same port (after close). */
  relisten(): Promise<void>;
}

async function listen(onConn: (sock: Socket) => void = () => undefined, host = '127.0.0.1'): Promise<TestServer> {
  const s: TestServer = {
    server: createServer((sock) => {
      const i = s.accepted++;
      s.sockets.push(sock);
      s.received.push('');
      sock.on('data', (d: Buffer) => {
        s.received[i] += d.toString('latin1');
      });
      sock.on('close', () => s.closedConns++);
      sock.on('error', () => undefined);
      onConn(sock);
    }),
    port: 0,
    address: '',
    sockets: [],
    received: [],
    accepted: 0,
    closedConns: 0,
    close: () =>
      new Promise<void>((r) => {
        for (const k of s.sockets) k.destroy();
        s.server.close(() => r());
      }),
    relisten: () => new Promise<void>((r) => s.server.listen(s.port, host, r)),
  };
  await new Promise<void>((r) => s.server.listen(0, host, r));
  s.port = (s.server.address() as AddressInfo).port;
  s.address = host.includes(':') ? `[${host}]:${s.port}` : `${host}:${s.port}`;
  return s;
}

/** Calls `cb` once the request head (up to the empty line) has arrived. */
function onHead(sock: Socket, cb: (head: string) => void): void {
  let buf = '';
  let fired = false;
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    if (!fired && buf.includes('\r\n\r\n')) {
      fired = true;
      cb(buf);
    }
  });
}

/** A server that answers every request with `status()` and closes. */
function responder(status: () => number): (sock: Socket) => void {
  return (sock) => onHead(sock, () => sock.end(`HTTP/1.1 ${status()} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
}

async function closedPort(): Promise<number> {
  const s = await listen();
  await s.close();
  return s.port;
}

function spec(over: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return { type: 'http', path: '/healthz', expectStatuses: [[200, 399]], intervalMs: 20, timeoutMs: 2000, jitter: 0, rise: 1, fall: 1, ...over };
}

function target(slot: number, address: string, over: Partial<HealthCheckSpec> = {}, group = 'app'): HealthTarget {
  return { slot, group, address, spec: spec(over) };
}

/** A checker recording every publish and change, with the status of the target at each publish. */
function recorder(): {
  hc: HealthChecker;
  published: [number, boolean][];
  changes: HealthChange[];
  atPublish: { slot: number; failures: number; successes: number }[];
  of(slot: number): ReturnType<HealthChecker['status']>[number];
} {
  const published: [number, boolean][] = [];
  const changes: HealthChange[] = [];
  const atPublish: { slot: number; failures: number; successes: number }[] = [];
  const of = (slot: number): ReturnType<HealthChecker['status']>[number] => {
    const st = hc.status().find((x) => x.slot === slot);
    assert.ok(st !== undefined, `slot ${slot} is in status()`);
    return st;
  };
  const hc: HealthChecker = new HealthChecker({
    publish: (slot, healthy) => {
      published.push([slot, healthy]);
      const st = hc.status().find((x) => x.slot === slot);
      atPublish.push({ slot, failures: st?.failures ?? -1, successes: st?.successes ?? -1 });
    },
    onChange: (c) => changes.push(c),
  });
  return { hc, published, changes, atPublish, of };
}

describe('HealthChecker', () => {
  test('http: 503 marks a host down after exactly `fall` failures, 200 brings it up after exactly `rise` successes', async () => {
    let status = 200;
    let served503 = 0;
    let served200 = 0;
    const srv = await listen(
      responder(() => {
        if (status === 503) served503++;
        else served200++;
        return status;
      }),
    );
    const r = recorder();
    try {
      r.hc.setTargets([target(7, srv.address, { fall: 3, rise: 2 })]);
      assert.deepEqual(r.published, [[7, true]], 'published up once at start, synchronously');

      await waitFor(() => r.of(7).checks >= 3, '3 checks');
      assert.equal(r.of(7).healthy, true);
      assert.equal(r.of(7).lastReason, 'status 200');
      assert.deepEqual(r.published, [[7, true]], 'no publish without a transition');
      assert.equal(
        srv.received[0],
        `GET /healthz HTTP/1.1\r\nHost: ${srv.address}\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n`,
      );

      // Down: the transition happens at the third 503, not before.
      status = 503;
      await waitFor(() => r.published.length === 2, 'down');
      assert.deepEqual(r.published[1], [7, false]);
      assert.equal(served503, 3, '3 failing checks answered when the host went down');
      assert.equal(r.atPublish[1]?.failures, 3);
      assert.deepEqual(r.changes, [{ slot: 7, group: 'app', address: srv.address, healthy: false, reason: 'status 503' }]);

      // Up: at the second 200.
      status = 200;
      const base200 = served200;
      await waitFor(() => r.published.length === 3, 'up');
      assert.deepEqual(r.published[2], [7, true]);
      assert.equal(served200 - base200, 2, '2 passing checks answered when the host came back');
      assert.equal(r.atPublish[2]?.successes, 2);
      assert.equal(r.changes[1]?.reason, 'status 200');
      assert.equal(r.changes[1]?.healthy, true);

      const checks = r.of(7).checks;
      await waitFor(() => r.of(7).checks >= checks + 3, '3 more checks');
      assert.equal(r.published.length, 3, 'steady state publishes nothing');
      assert.equal(r.of(7).failures, 0);
    } finally {
      r.hc.close();
      await srv.close();
    }
  });

  test('http: a server that accepts and never answers fails by timeout; checks never overlap', async () => {
    const hang = await listen();
    const r = recorder();
    let acceptedAtDown = -1;
    try {
      // Interval far below the timeout: checks started on a timer instead of after the
      // previous one ended would pile up connections while the first one hangs.
      r.hc.setTargets([target(1, hang.address, { intervalMs: 5, timeoutMs: 300, fall: 2 })]);
      await waitFor(() => {
        if (r.published.length === 2 && acceptedAtDown === -1) acceptedAtDown = hang.accepted;
        return r.published.length === 2;
      }, 'down by timeout');
      assert.deepEqual(r.published, [
        [1, true],
        [1, false],
      ]);
      assert.ok(acceptedAtDown <= 2, `at most 2 connections before the second timeout, saw ${acceptedAtDown}`);
      assert.equal(r.changes[0]?.reason, 'timeout');
      assert.equal(r.of(1).lastReason, 'timeout');
      assert.match(hang.received[0] ?? '', /^GET \/healthz HTTP\/1\.1\r\n/);
      // Timed-out checks closed their sockets.
      await waitFor(() => hang.closedConns >= 2, 'timed-out sockets closed');
    } finally {
      r.hc.close();
      await hang.close();
    }
  });

  test('every failure mode and success mode of one check', async () => {
    const servers: TestServer[] = [];
    const add = async (onConn: (sock: Socket) => void): Promise<TestServer> => {
      const s = await listen(onConn);
      servers.push(s);
      return s;
    };
    const dead = await closedPort();
    const ok = await add(responder(() => 200));
    const garbage = await add((sock) => onHead(sock, () => sock.end('garbage\r\n\r\n')));
    const garbageOpen = await add((sock) => onHead(sock, () => sock.write('hello'))); // no newline, stays open
    const badStatus = await add((sock) => onHead(sock, () => sock.end('HTTP/1.1 2OO OK\r\n\r\n')));
    const earlyClose = await add((sock) => onHead(sock, () => sock.end()));
    const partial = await add((sock) => onHead(sock, () => sock.end('HTTP/1.1 20')));
    const reset = await add((sock) => onHead(sock, () => sock.resetAndDestroy()));
    const chunked = await add((sock) =>
      onHead(sock, () => {
        const parts = ['HT', 'TP/1.1 2', '04 No', ' Content\r', '\nContent-Length: 0\r\n\r\n'];
        const next = (): void => {
          const p = parts.shift();
          if (p === undefined) sock.end();
          else sock.write(p, () => setTimeout(next, 10));
        };
        next();
      }),
    );
    const early = await add((sock) =>
      onHead(sock, () => sock.end('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n')),
    );
    const notFound = await add(responder(() => 404));
    const err500 = await add(responder(() => 500));
    const bareStatus = await add((sock) => onHead(sock, () => sock.end('HTTP/1.0 200\n\n')));

    let v6: TestServer | undefined;
    try {
      v6 = await listen(responder(() => 200), '::1');
      servers.push(v6);
    } catch {
      v6 = undefined; // no IPv6 loopback on this machine
    }

    const r = recorder();
    // Long interval after the first check; `fall`/`rise` 1, so the first check decides.
    const once = { intervalMs: 60000 };
    const cases: { t: HealthTarget; healthy: boolean; reason: string }[] = [
      { t: target(1, `127.0.0.1:${dead}`, once), healthy: false, reason: 'connect ECONNREFUSED' },
      { t: target(2, `127.0.0.1:${dead}`, { ...once, type: 'tcp' }), healthy: false, reason: 'connect ECONNREFUSED' },
      { t: target(3, ok.address, once), healthy: true, reason: 'status 200' },
      { t: target(4, garbage.address, once), healthy: false, reason: 'malformed status line' },
      // Rejected on its first bytes, long before the (huge) timeout.
      { t: target(5, garbageOpen.address, { ...once, timeoutMs: 60000 }), healthy: false, reason: 'malformed status line' },
      { t: target(6, badStatus.address, once), healthy: false, reason: 'malformed status line' },
      { t: target(7, earlyClose.address, once), healthy: false, reason: 'closed before status line' },
      { t: target(8, partial.address, once), healthy: false, reason: 'closed before status line' },
      { t: target(9, reset.address, once), healthy: false, reason: 'read ECONNRESET' },
      { t: target(10, chunked.address, once), healthy: true, reason: 'status 204' },
      { t: target(11, early.address, once), healthy: true, reason: 'status 200' },
      { t: target(12, notFound.address, { ...once, expectStatuses: [[200, 299], [404, 404]] }), healthy: true, reason: 'status 404' },
      { t: target(13, err500.address, once), healthy: false, reason: 'status 500' },
      { t: target(14, ok.address, { ...once, path: '/ready?deep=1', host: 'health.example' }), healthy: true, reason: 'status 200' },
      { t: target(15, notFound.address, once), healthy: false, reason: 'status 404' },
      { t: target(16, bareStatus.address, once), healthy: true, reason: 'status 200' },
    ];
    if (v6 !== undefined) cases.push({ t: target(17, v6.address, once), healthy: true, reason: 'status 200' });

    try {
      r.hc.setTargets(cases.map((c) => c.t));
      assert.deepEqual(
        r.published,
        cases.map((c) => [c.t.slot, true]),
      );
      await waitFor(() => r.hc.status().every((s) => s.checks >= 1), 'one check of every target');
      for (const c of cases) {
        const st = r.of(c.t.slot);
        assert.equal(st.lastReason, c.reason, `slot ${c.t.slot} reason`);
        assert.equal(st.healthy, c.healthy, `slot ${c.t.slot} health`);
        const change = r.changes.find((x) => x.slot === c.t.slot);
        if (c.healthy) assert.equal(change, undefined, `slot ${c.t.slot} did not change`);
        else assert.deepEqual(change, { slot: c.t.slot, group: 'app', address: c.t.address, healthy: false, reason: c.reason });
      }
      const downs = cases.filter((c) => !c.healthy).map((c): [number, boolean] => [c.t.slot, false]);
      assert.deepEqual(
        r.published.slice(cases.length).sort((a, b) => a[0] - b[0]),
        downs,
      );
      // Host override and request target reach the wire verbatim.
      assert.ok(
        ok.received.includes('GET /ready?deep=1 HTTP/1.1\r\nHost: health.example\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n'),
        'overridden Host and path sent',
      );
      if (v6 !== undefined) assert.match(v6.received[0] ?? '', new RegExp(`\r\nHost: \\[::1\\]:${v6.port}\r\n`));
    } finally {
      r.hc.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  test('tcp: up while the port listens (no bytes sent), down when it closes, up again when it listens again', async () => {
    const srv = await listen();
    const r = recorder();
    try {
      r.hc.setTargets([target(5, srv.address, { type: 'tcp', fall: 2, rise: 2 })]);
      await waitFor(() => r.of(5).checks >= 2, '2 tcp checks');
      assert.equal(r.of(5).healthy, true);
      assert.equal(r.of(5).lastReason, 'connected');
      await waitFor(() => srv.closedConns >= 2, 'tcp check sockets closed');
      assert.ok(srv.received.every((b) => b === ''), 'a tcp check sends nothing');

      await srv.close();
      await waitFor(() => r.published.length === 2, 'down');
      assert.equal(r.atPublish[1]?.failures, 2);
      assert.deepEqual(r.changes[0], { slot: 5, group: 'app', address: srv.address, healthy: false, reason: 'connect ECONNREFUSED' });

      await srv.relisten();
      await waitFor(() => r.published.length === 3, 'up again');
      assert.equal(r.atPublish[2]?.successes, 2);
      assert.deepEqual(r.published, [
        [5, true],
        [5, false],
        [5, true],
      ]);
      assert.equal(r.changes[1]?.reason, 'connected');
    } finally {
      r.hc.close();
      await srv.close();
    }
  });

  test('setTargets keeps unchanged targets, starts new ones, stops removed ones (an in-flight check never publishes)', async () => {
    const a = await listen(responder(() => 200));
    const c = await listen(responder(() => 200));
    const hang = await listen();
    const dead = await closedPort();
    const r = recorder();
    try {
      r.hc.setTargets([
        target(1, a.address),
        target(2, hang.address, { timeoutMs: 500 }),
        target(4, `127.0.0.1:${dead}`, { type: 'tcp' }),
      ]);
      await waitFor(() => r.of(1).checks >= 2 && hang.accepted >= 1 && !r.of(4).healthy, 'A checked, B in flight, D down');
      assert.equal(r.of(2).checks, 0, "B's first check is still in flight");
      assert.deepEqual(r.published, [
        [1, true],
        [2, true],
        [4, true],
        [4, false],
      ]);
      const aChecks = r.of(1).checks;
      const dChecks = r.of(4).checks;

      // A and D unchanged (new objects, same values; A's group renamed), B removed, C added.
      r.hc.setTargets([
        target(1, a.address, {}, 'renamed'),
        target(4, `127.0.0.1:${dead}`, { type: 'tcp' }),
        target(3, c.address),
      ]);
      assert.deepEqual(r.published.slice(4), [[3, true]], 'only the new target is published');
      assert.deepEqual(
        r.hc.status().map((s) => s.slot),
        [1, 3, 4],
      );
      assert.ok(r.of(1).checks >= aChecks, "A's state is kept");
      assert.equal(r.of(1).group, 'renamed');
      assert.equal(r.of(4).healthy, false, "D's down state is kept");
      assert.ok(r.of(4).checks >= dChecks);
      await waitFor(() => hang.closedConns === hang.accepted, "B's in-flight socket closed");

      // 40 intervals of A (≥ 20 ms each) outlast B's 500 ms timeout.
      await waitFor(() => r.of(1).checks >= aChecks + 40 && r.of(3).checks >= 1, 'A ran 40 more checks');
      assert.equal(r.published.filter(([slot]) => slot === 2).length, 1, 'B published only its start');
      assert.equal(r.changes.filter((x) => x.slot === 2).length, 0);
      assert.equal(hang.accepted, 1, 'B was never checked again');
      assert.equal(r.published.length, 5, 'A, C and D steady');

      // The same slot with another spec is a new target: restarted, published up again.
      r.hc.setTargets([target(1, a.address, { path: '/other' }), target(3, c.address)]);
      assert.deepEqual(r.published.slice(5), [[1, true]]);
      await waitFor(() => a.received.some((b) => b.startsWith('GET /other ')), 'A checked with its new path');
      assert.deepEqual(
        r.hc.status().map((s) => s.slot),
        [1, 3],
      );

      // Invalid input is refused with a coded error and changes nothing.
      const before = r.hc.status().map((s) => s.slot);
      assert.throws(
        () => r.hc.setTargets([target(1, a.address), target(1, c.address)]),
        (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_CONFIG' && /appears twice/.test(e.message),
      );
      assert.throws(() => r.hc.setTargets([target(9, 'no-port')]), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_CONFIG');
      assert.throws(() => r.hc.setTargets([target(9, '::1:80')]), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_CONFIG');
      assert.throws(
        () => r.hc.setTargets([target(9, a.address, { path: '/x\r\nEvil: 1' })]),
        (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_CONFIG',
      );
      assert.throws(() => r.hc.setTargets([target(9, a.address, { fall: 0 })]), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_CONFIG');
      assert.deepEqual(
        r.hc.status().map((s) => s.slot),
        before,
      );

      // An empty set stops everything.
      r.hc.setTargets([]);
      assert.deepEqual(r.hc.status(), []);
    } finally {
      r.hc.close();
      await Promise.all([a.close(), c.close(), hang.close()]);
    }
  });

  test('close() stops everything: no publish afterwards, in-flight sockets closed, idempotent, later setTargets refused', async () => {
    let n = 0;
    // Alternates 200 / 503, so with rise = fall = 1 every check publishes.
    const flip = await listen(responder(() => (n++ % 2 === 0 ? 200 : 503)));
    const hang = await listen();
    const ticker = await listen(responder(() => 200));
    const r = recorder();
    const clock = recorder();
    try {
      r.hc.setTargets([target(1, flip.address), target(2, hang.address, { timeoutMs: 200 })]);
      await waitFor(() => r.published.length >= 5 && hang.accepted >= 1, 'flapping and one check in flight');
      r.hc.close();
      r.hc.close();
      const count = r.published.length;
      assert.deepEqual(r.hc.status(), []);
      await waitFor(() => hang.closedConns === hang.accepted, 'in-flight socket closed');

      // 30 intervals (≥ 20 ms each) of an independent checker outlast the flapping interval and the hang timeout many times.
      clock.hc.setTargets([target(1, ticker.address)]);
      await waitFor(() => clock.of(1).checks >= 30, 'another checker ran 30 checks');
      assert.equal(r.published.length, count, 'nothing published after close()');
      assert.equal(r.changes.length, count - 2);
      assert.throws(
        () => r.hc.setTargets([target(1, flip.address)]),
        (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_ERR_SHUTTING_DOWN',
      );
    } finally {
      r.hc.close();
      clock.hc.close();
      await Promise.all([flip.close(), hang.close(), ticker.close()]);
    }
  });

  test('a throwing publish or onChange does not stop the checks; it becomes a process warning', async () => {
    const dead = await closedPort();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    let calls = 0;
    const hc = new HealthChecker({
      publish: () => {
        calls++;
        throw new Error('table gone');
      },
      onChange: () => {
        throw new Error('logger gone');
      },
    });
    try {
      // fall = rise = 1 against a closed port: down once, then steady.
      hc.setTargets([target(1, `127.0.0.1:${dead}`, { type: 'tcp' })]);
      await waitFor(() => (hc.status()[0]?.checks ?? 0) >= 3, 'checks continue');
      assert.equal(calls, 2, 'start and down');
      await waitFor(() => warnings.length >= 3, 'warnings emitted');
      assert.ok(warnings.every((w) => (w as Error & { code?: string }).code === 'HEALTH_CHECK_CALLBACK_FAILED'));
      assert.deepEqual(warnings.map((w) => w.message).sort(), [
        'a health check callback threw: logger gone',
        'a health check callback threw: table gone',
        'a health check callback threw: table gone',
      ]);
    } finally {
      hc.close();
      process.off('warning', onWarning);
    }
  });

  test('timers and sockets never keep the process alive', async () => {
    // A child process checks a server that never answers (a 60 s timeout) and must exit on its
    // own once its only other handle (stdin) is gone, with the check still in flight.
    const hang = await listen();
    const script = `
      const { HealthChecker } = require(${JSON.stringify(MODULE)});
      const hc = new HealthChecker({ publish: () => {} });
      const spec = { type: 'http', path: '/', expectStatuses: [[200, 299]], intervalMs: 20, timeoutMs: 60000, jitter: 0.5, rise: 1, fall: 1 };
      hc.setTargets([{ slot: 0, group: 'g', address: ${JSON.stringify(hang.address)}, spec },
                     { slot: 1, group: 'g', address: '127.0.0.1:1', spec: { ...spec, type: 'tcp', intervalMs: 60000 } }]);
      process.stdin.once('data', () => process.stdin.destroy());
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'inherit', 'inherit'] });
    let code: number | null | undefined;
    child.on('exit', (c) => {
      code = c;
    });
    try {
      await waitFor(() => hang.accepted >= 1 && hang.received[0] !== '', 'the child check in flight');
      child.stdin.write('go\n');
      await waitFor(() => code !== undefined, 'the child exits by itself');
      assert.equal(code, 0);
    } finally {
      if (code === undefined) child.kill();
      await hang.close();
    }
  });
});
