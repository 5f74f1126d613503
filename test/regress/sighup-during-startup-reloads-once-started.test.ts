/**
 * Regression (seen as a flaky reload test): the signal handlers were installed
 * only after the primary's start finished, so a SIGHUP sent while it was starting (or at the
 * moment `listening` appeared) hit Node's default action and killed the process. Now they
 * are installed before the start, and what arrives early is handled once it finished.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { MAIN, onLogRecords, startUpstream, tempFile } from '../helpers';

test('a SIGHUP during start-up is not fatal: it reloads once the start finished; SIGTERM then drains to exit 0', async () => {
  const up = await startUpstream();
  try {
    const config = tempFile(
      'sluice.json',
      JSON.stringify({
        workers: 2,
        listen: { host: '127.0.0.1', port: 0 },
        admin: { port: 0 },
        upstreams: { app: { hosts: [{ address: up.address }] } },
        routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
      }),
    );
    const proc = spawn(process.execPath, [MAIN, '--config', config], { env: { ...process.env, SLUICE_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    const records: Record<string, unknown>[] = [];
    let sent = false;
    const reloaded = new Promise<void>((resolve) => {
      onLogRecords(proc.stderr, (rec) => {
        if (rec.raw !== undefined) return; // not a log record (uWS's own prints)
        records.push(rec);
        // The first word from the primary: it is still starting (workers come up before `listening`).
        if (!sent && rec.role === 'primary') {
          sent = true;
          proc.kill('SIGHUP');
        }
        if (rec.msg === 'configuration reloaded') resolve();
      });
    });
    const outcome = await Promise.race([reloaded.then(() => 'reloaded'), exited.then((e) => `exited ${JSON.stringify(e)}`)]);
    assert.equal(outcome, 'reloaded', `logs: ${records.map((r) => r.msg).join(' | ')}`);
    assert.ok(records.some((r) => r.msg === 'listening'), 'it started');
    const startIdx = records.findIndex((r) => r.msg === 'listening');
    const reloadIdx = records.findIndex((r) => r.msg === 'configuration reloaded');
    assert.ok(reloadIdx > startIdx, 'the reload ran after the start finished');
    proc.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
  } finally {
    await up.close();
  }
});
