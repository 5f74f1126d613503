/**
 * The access log written to a file (log.accessFile) by the real Sluice process with two
 * workers: one whole JSON line per request with the fields docs/access-log.md documents,
 * rotation by rename + SIGHUP, a file that cannot be opened refused at start (exit 2) and on
 * reload (the old file stays). No timing is asserted: tests wait for states.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request, runLimited, type Running, runSluice, startRawUpstream, startSluice, startUpstream, tempFile, waitFor } from '../helpers';

/** The fields docs/access-log.md documents: name → always present? */
const FIELDS: Record<string, boolean> = {
  ts: true,
  id: true,
  client: true,
  method: true,
  path: true,
  query: false,
  route: true,
  upstream: false,
  upstreamHost: false,
  status: true,
  attempts: true,
  bytesIn: true,
  bytesOut: true,
  ms: true,
  flags: false,
  error: false,
};

interface Line {
  ts: string;
  id: string;
  client: string;
  method: string;
  path: string;
  query?: string;
  route: string;
  upstream?: string;
  upstreamHost?: string;
  status: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  flags?: string;
  error?: string;
}

/** Lines of `file` ('' lines excluded); every line must be a whole JSON object. */
function linesOf(file: string): Line[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        assert.fail(`not a whole JSON line: ${JSON.stringify(l)}`);
      }
    });
}

async function reloaded(s: Running, version: number, workers: number): Promise<void> {
  await waitFor(() => s.logs.filter((l) => l.msg === 'worker reloaded' && l.configVersion === version).length === workers, `${workers} workers on config ${version}`);
}

function rewriteConfig(s: Running, edit: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(s.configPath, 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(s.configPath, JSON.stringify(c, null, 2));
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

function logDir(): string {
  return mkdtempSync(join(tmpdir(), 'sluice-access-'));
}

describe('access log to a file', () => {
  test('N requests → N whole JSON lines with the documented fields, from both workers; nothing on stdout', async () => {
    const up = await startUpstream();
    const dead = await startRawUpstream(() => undefined);
    const deadAddress = dead.address;
    await dead.close();
    closers.push(() => up.close());
    const file = join(logDir(), 'access.log');
    const s = await startSluice({
      workers: 2,
      log: { access: true, accessFile: file },
      upstreams: { app: { hosts: [{ address: up.address }] }, dead: { hosts: [{ address: deadAddress }] } },
      routes: [
        { name: 'direct', match: { path: { prefix: '/direct' } }, action: { type: 'respond', body: 'hello' } },
        { name: 'dead', match: { path: { prefix: '/dead' } }, action: { type: 'proxy', upstream: 'dead' } },
        { name: 'app', action: { type: 'proxy', upstream: 'app' } },
      ],
    });
    closers.push(() => s.stop());

    const N = 60;
    const jobs = Array.from({ length: N }, (_, i) => async () => {
      const path = i % 10 === 0 ? '/dead' : i % 3 === 0 ? '/direct' : `/app/${i}`;
      const r = await request(s.port, { path: i % 2 === 0 ? `${path}?n=${i}` : path, method: i % 4 === 1 ? 'POST' : 'GET', body: i % 4 === 1 ? 'x'.repeat(i) : undefined });
      return { i, status: r.status, id: r.headers['x-request-id'] as string, path };
    });
    const sent = await runLimited(jobs, 8);
    await waitFor(() => linesOf(file).length >= N, `${N} lines in ${file}`);
    const lines = linesOf(file);
    assert.equal(lines.length, N, 'one line per request');

    for (const l of lines) {
      for (const [k, always] of Object.entries(FIELDS)) if (always) assert.ok(k in l, `field ${k} in ${JSON.stringify(l)}`);
      for (const k of Object.keys(l)) assert.ok(k in FIELDS, `field ${k} is documented in docs/access-log.md`);
      assert.ok(!Number.isNaN(Date.parse(l.ts)) && l.ts.endsWith('Z'), l.ts);
      assert.equal(l.client, '127.0.0.1');
      assert.equal(typeof l.ms, 'number');
    }
    const byId = new Map(lines.map((l) => [l.id, l]));
    assert.equal(byId.size, N, 'request ids are unique');
    for (const r of sent) {
      const l = byId.get(r.id);
      assert.ok(l !== undefined, `a line for request ${r.i} (${r.id})`);
      assert.equal(l.status, r.status);
      assert.equal(l.path, r.path);
      assert.equal(l.query, r.i % 2 === 0 ? `n=${r.i}` : undefined);
      assert.equal(l.method, r.i % 4 === 1 ? 'POST' : 'GET');
      // A direct answer does not wait for the request body, so only proxied bodies are counted exactly.
      if (r.path !== '/direct') assert.equal(l.bytesIn, r.i % 4 === 1 ? r.i : 0);
      if (r.path === '/dead') {
        assert.equal(l.status, 502);
        assert.equal(l.error, 'SLUICE_ERR_UPSTREAM_CONNECT');
        assert.equal(l.flags, 'UF');
        assert.equal(l.upstream, 'dead');
        assert.equal(l.upstreamHost, deadAddress);
      } else if (r.path === '/direct') {
        assert.equal(l.route, 'direct');
        assert.equal(l.status, 200);
        assert.equal(l.bytesOut, 5);
        assert.equal(l.upstream, undefined);
        assert.equal(l.attempts, 0);
      } else {
        assert.equal(l.route, 'app');
        assert.equal(l.upstreamHost, up.address);
        assert.equal(l.attempts, 1);
        assert.equal(l.error, undefined);
      }
    }
    assert.ok(!s.stdout.some((l) => l.startsWith('{"ts"')), 'no access lines on stdout');
  });

  test('rotation: rename the file, SIGHUP, new lines go to a new file at the configured path', async () => {
    const up = await startUpstream();
    closers.push(() => up.close());
    const dir = logDir();
    const file = join(dir, 'access.log');
    const s = await startSluice({ workers: 2, log: { access: true, accessFile: file }, upstreams: { app: { hosts: [{ address: up.address }] } }, routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }] });
    closers.push(() => s.stop());

    const burst = (tag: string, n: number): Promise<number[]> =>
      runLimited(Array.from({ length: n }, (_, i) => async () => (await request(s.port, { path: `/${tag}/${i}` })).status), 4);
    assert.ok((await burst('before', 20)).every((st) => st === 200));
    await waitFor(() => linesOf(file).length === 20, '20 lines before rotation');

    const rotated = join(dir, 'access.log.1');
    renameSync(file, rotated);
    s.proc.kill('SIGHUP');
    await reloaded(s, 2, 2);
    assert.ok((await burst('after', 15)).every((st) => st === 200));
    await waitFor(() => linesOf(file).length === 15, '15 lines in the new file');
    assert.ok(linesOf(file).every((l) => l.path.startsWith('/after/')), 'the new file holds only lines after the rotation');
    const old = linesOf(rotated);
    assert.equal(old.length, 20, 'the rotated file kept its lines and got no new ones');
    assert.ok(old.every((l) => l.path.startsWith('/before/')));
  });

  test('a reload naming a file that cannot be opened is refused; logging goes on in the current file', async () => {
    const up = await startUpstream();
    closers.push(() => up.close());
    const dir = logDir();
    const file = join(dir, 'access.log');
    const s = await startSluice({ workers: 2, log: { access: true, accessFile: file }, upstreams: { app: { hosts: [{ address: up.address }] } }, routes: [{ name: 'app', action: { type: 'proxy', upstream: 'app' } }] });
    closers.push(() => s.stop());
    assert.equal((await request(s.port, { path: '/one' })).status, 200);
    await waitFor(() => linesOf(file).length === 1, 'first line');

    rewriteConfig(s, (c) => {
      (c.log as Record<string, unknown>).accessFile = join(dir, 'no-such-dir', 'access.log');
    });
    s.proc.kill('SIGHUP');
    const refused = await s.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reload refused'));
    assert.match(String(refused.reason), /log\.accessFile/);
    assert.equal((await request(s.port, { path: '/two' })).status, 200);
    await waitFor(() => linesOf(file).length === 2, 'second line in the same file');
  });

  test('a file that cannot be opened: exit 2 at start naming log.accessFile', async () => {
    const dir = logDir();
    for (const bad of [join(dir, 'missing', 'access.log'), dir]) {
      const cfg = tempFile('sluice.json', JSON.stringify({ log: { access: true, accessFile: bad }, routes: [{ name: 'r', action: { type: 'respond', body: 'x' } }] }));
      const r = await runSluice(['--config', cfg]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /log\.accessFile cannot be opened for appending/);
    }
  });
});
