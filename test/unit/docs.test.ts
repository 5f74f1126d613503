/**
 * Docs stay true: the README's SLUICE_* table is the one generated from the schema, every
 * SLUICE_* variable the code or scripts read is documented, and docs/errors.md lists
 * exactly the registry's codes with their statuses.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { envTableMarkdown } from '../../src/shared/env-table';
import { ERRORS } from '../../src/shared/errors';

const ROOT = join(__dirname, '..', '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.(ts|sh|js)$/.test(name)) out.push(p);
  }
  return out;
}

test('README starts with exactly the two set-up commands', () => {
  const block = /^# Sluice\n\n```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'a sh block right under the title');
  const cmds = (block[1] as string).split('\n').filter((l) => l.trim() !== '');
  assert.equal(cmds.length, 2);
  assert.match(cmds[0] as string, /^bash scripts\/run\.sh/);
  assert.match(cmds[1] as string, /^bash scripts\/test\.sh/);
});

test('the README environment table is the one generated from the schema', () => {
  const m = /<!-- env-table:start -->\n([\s\S]*?)\n<!-- env-table:end -->/.exec(readme);
  assert.ok(m, 'env-table markers present');
  assert.equal(m[1], envTableMarkdown(), 'run `node dist/src/main/index.js --env-table` and paste it into README.md');
});

test('every SLUICE_* variable read by the code or scripts is documented in the README', () => {
  const files = [...walk(join(ROOT, 'src')), ...walk(join(ROOT, 'scripts'))];
  const used = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(f, 'utf8').matchAll(/\bSLUICE_[A-Z0-9_]+\b/g)) {
      if (!m[0].startsWith('SLUICE_ERR_')) used.add(m[0]);
    }
  }
  assert.ok(used.size > 10);
  const missing = [...used].filter((v) => !readme.includes(`\`${v}\``));
  assert.deepEqual(missing, []);
});

test('docs/errors.md lists exactly the registry codes with their statuses', () => {
  const md = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const m of md.matchAll(/^\| `(SLUICE_ERR_[A-Z_]+)` \| ([^|]+) \|/gm)) rows.set(m[1] as string, (m[2] as string).trim());
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
  for (const [code, spec] of Object.entries(ERRORS)) {
    const want = spec.status === 0 ? '—' : String(spec.status);
    assert.equal(rows.get(code), want, code);
  }
});
