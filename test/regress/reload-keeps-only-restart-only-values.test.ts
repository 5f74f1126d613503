/**
 * Regression: when a reload also changed an option that only changes on
 * restart (workers, listen host/port, admin, kafka, rateLimit.tableSize), the primary kept
 * the whole old `listen` section, silently dropping a new listen.acl or listen.proxyProtocol.
 * Only the restart-only values may be kept.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { request, startSluice } from '../helpers';

test('a reload that also changes `workers` still applies a new listen.acl', async () => {
  const base = { routes: [{ name: 'r', action: { type: 'respond', body: 'hi' } }] };
  const s = await startSluice({ ...base, workers: 1 });
  try {
    assert.equal((await request(s.port)).status, 200);
    writeFileSync(
      s.configPath,
      JSON.stringify({ ...base, workers: 2, admin: { port: 0 }, listen: { host: '127.0.0.1', port: 0, acl: [{ deny: '127.0.0.1' }] } }),
    );
    s.proc.kill('SIGHUP');
    const kept = await s.waitForLog((l) => l.msg === 'reload: these options only change on restart; keeping their current values');
    assert.deepEqual(kept.options, ['workers']);
    await s.waitForLog((l) => l.msg === 'worker reloaded' && l.configVersion === 2);
    const denied = await request(s.port);
    assert.equal(denied.status, 403, 'the new listener ACL applies');
    assert.equal(denied.headers['x-sluice-error'], 'SLUICE_ERR_FORBIDDEN');
  } finally {
    assert.equal(await s.stop(), 0);
  }
});
