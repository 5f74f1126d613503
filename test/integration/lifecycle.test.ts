/**
 * Process lifecycle of the real Sluice: configuration errors exit non-zero naming the
 * option path; SIGTERM drains in-flight requests and exits 0; SIGHUP reloads without
 * dropping connections and refuses a bad config; a crashed worker is respawned.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { buildConfig } from '../../src/shared/config';
import { createLogger } from '../../src/shared/log';
import { Primary } from '../../src/main/primary';
import { onRequestHead, request, runSluice, sleep, startRawUpstream, startSluice, startUpstream, tempFile } from '../helpers';

describe('configuration errors', () => {
  test('an invalid config file exits 2 and names every bad option path', async () => {
    const path = tempFile(
      'bad.yaml',
      [
        'workers: -1',
        'listen: { port: 99999 }',
        'upstreams:',
        '  app: { hosts: [ { address: "nohostport" } ] }',
        'routes:',
        '  - name: a',
        '    action: { type: proxy, upstream: missing }',
        '  - name: b',
        '    match: { path: { prefix: /x, exact: /y } }',
        '    action: { type: teleport }',
      ].join('\n'),
    );
    const r = await runSluice(['--config', path]);
    assert.equal(r.code, 2);
    for (const needle of ['workers must be >= 0', 'listen.port must be <= 65535', 'upstreams.app.hosts[0].address must be host:port', 'routes[1].match.path must set exactly one of prefix, exact, regex', 'routes[1].action.type must be one of proxy, split, redirect, kafka, respond']) {
      assert.ok(r.stderr.includes(needle), `missing "${needle}" in:\n${r.stderr}`);
    }
  });

  test('a semantic error (unknown upstream) exits 2 with its path', async () => {
    const path = tempFile('sem.json', JSON.stringify({ upstreams: {}, routes: [{ name: 'a', action: { type: 'proxy', upstream: 'missing' } }] }));
    const r = await runSluice(['--config', path]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /routes\[0\]\.action\.upstream names an unknown upstream "missing"/);
  });

  test('unparsable YAML, a missing file and a bad environment override exit 2', async () => {
    const bad = tempFile('x.yaml', 'routes: [ {');
    assert.equal((await runSluice(['--config', bad])).code, 2);
    const missing = await runSluice(['--config', '/nonexistent/sluice.yaml']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot be read/);
    const ok = tempFile('ok.json', JSON.stringify({ routes: [{ name: 'a', action: { type: 'respond' } }] }));
    const env = await runSluice(['--config', ok, '--check'], { SLUICE_WORKERS: 'many' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /workers \(from SLUICE_WORKERS\)/);
    const good = await runSluice(['--config', ok, '--check']);
    assert.equal(good.code, 0, good.stderr);
  });

  test('a port held by another process is refused at start (uWS would silently share it)', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const path = tempFile('p.json', JSON.stringify({ listen: { host: '127.0.0.1', port }, routes: [{ name: 'a', action: { type: 'respond' } }] }));
      const r = await runSluice(['--config', path]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /in use by another process/);
    } finally {
      holder.close();
    }
  });
});

describe('signals and workers', () => {
  test('SIGTERM drains: an in-flight request completes, then the process exits 0', async () => {
    const raw = await startRawUpstream((sock) =>
      onRequestHead(sock, () => {
        setTimeout(() => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow'), 800);
      }),
    );
    const s = await startSluice({ workers: 2, upstreams: { u: { hosts: [{ address: raw.address }] } }, routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }] });
    try {
      const inflight = request(s.port);
      await sleep(200);
      s.proc.kill('SIGTERM');
      await sleep(200);
      // The listen socket is closed: new connections are refused while the old one finishes.
      await assert.rejects(request(s.port, { timeoutMs: 2000 }));
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'slow');
      assert.equal(await s.exited, 0);
      await s.waitForLog((l) => l.msg === 'stopped');
    } finally {
      await s.stop();
      await raw.close();
    }
  });

  test('SIGTERM with a request that outlives the drain bound still exits 0 and says so', async () => {
    const raw = await startRawUpstream((sock) => onRequestHead(sock, () => undefined));
    const s = await startSluice({
      workers: 1,
      shutdown: { drainTimeoutMs: 500 },
      upstreams: { u: { hosts: [{ address: raw.address }] } },
      routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }],
    });
    try {
      const inflight = request(s.port).catch((e: unknown) => e);
      await sleep(200);
      s.proc.kill('SIGTERM');
      assert.equal(await s.exited, 0);
      await s.waitForLog((l) => l.msg === 'worker drained with requests still in flight' && l.abandoned === 1);
      assert.ok((await inflight) instanceof Error);
    } finally {
      await s.stop();
      await raw.close();
    }
  });

  test('SIGHUP reloads routes without dropping a keep-alive connection; a bad config is refused', async () => {
    const up = await startUpstream();
    const cfg = (body: string): Record<string, unknown> => ({
      workers: 1,
      upstreams: { u: { hosts: [{ address: up.address }] } },
      routes: [
        { name: 'msg', match: { path: { exact: '/msg' } }, action: { type: 'respond', body } },
        { name: 'r', action: { type: 'proxy', upstream: 'u' } },
      ],
    });
    const s = await startSluice(cfg('one'));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string): Promise<{ body: string; socket: unknown }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: s.port, path, agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ body, socket: req.socket }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const first = await get('/msg');
      assert.equal(first.body, 'one');
      writeFileSync(s.configPath, JSON.stringify({ ...cfg('two'), listen: { host: '127.0.0.1', port: 0 } }));
      s.proc.kill('SIGHUP');
      await s.waitForLog((l) => l.msg === 'configuration reloaded' && l.configVersion === 2);
      await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
      const second = await get('/msg');
      assert.equal(second.body, 'two');
      assert.equal(second.socket, first.socket, 'the same client connection served both');
      // A broken config is refused; the running one stays.
      writeFileSync(s.configPath, JSON.stringify({ routes: [{ name: 'x', action: { type: 'proxy', upstream: 'nope' } }] }));
      s.proc.kill('SIGHUP');
      await s.waitForLog((l) => l.msg === 'reload refused: the new configuration is invalid; keeping the current one');
      assert.equal((await get('/msg')).body, 'two');
      assert.equal((await get('/proxied')).body.includes('"url":"/proxied"'), true);
    } finally {
      agent.destroy();
      assert.equal(await s.stop(), 0);
      await up.close();
    }
  });

  test('a crashed worker is respawned and serving resumes', async () => {
    const up = await startUpstream();
    const cfg = buildConfig(
      {
        workers: 2,
        listen: { host: '127.0.0.1', port: 0 },
        log: { level: 'error' },
        upstreams: { u: { hosts: [{ address: up.address }] } },
        routes: [{ name: 'r', action: { type: 'proxy', upstream: 'u' } }],
      },
      'test',
    );
    const path = tempFile('c.json', JSON.stringify(cfg));
    const primary = new Primary(path, cfg, createLogger('error'));
    await primary.start();
    const done = primary.done();
    try {
      assert.equal(primary.readyWorkers(), 2);
      const victim = primary.workerThreads()[0];
      assert.ok(victim);
      const exited = new Promise<number>((r) => victim.once('exit', r));
      assert.equal(primary.injectCrash(0, 'test'), true); // a real uncaught error in the worker
      assert.equal(await exited, 1);
      for (let i = 0; i < 100 && primary.readyWorkers() < 2; i++) await sleep(50);
      assert.equal(primary.readyWorkers(), 2, 'respawned');
      assert.notEqual(primary.workerThreads()[0], victim);
      for (let i = 0; i < 10; i++) assert.equal((await request(primary.listenPort)).status, 200);
    } finally {
      primary.shutdown('test');
      assert.equal(await done, 0);
      await up.close();
    }
  });
});
