/**
 * The "never" list of docs/architecture.md: which folder may import which. Import cycles are
 * the lint step's (madge); this reads every import of src/ and checks the folder rules.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = join(__dirname, '..', '..', '..');

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Import {
  readonly from: string;
  /** Repo-relative path for a relative import; the package name otherwise. */
  readonly to: string;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s+['"]([^'"]+)['"]|(?:^|[^.\w])(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const src = readFileSync(file, 'utf8');
  const from = relative(ROOT, file);
  const out: Import[] = [];
  for (const m of src.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2]) as string;
    out.push({ from, to: spec.startsWith('.') ? relative(ROOT, normalize(join(dirname(file), spec))) : spec });
  }
  return out;
}

const all = walk(join(ROOT, 'src')).flatMap(importsOf);

function violations(fromPrefix: string, forbidden: (to: string) => boolean): string[] {
  return all.filter((i) => i.from.startsWith(fromPrefix) && forbidden(i.to)).map((i) => `${i.from} imports ${i.to}`);
}

test('the import scan sees the code (a scan that finds nothing proves nothing)', () => {
  assert.ok(all.some((i) => i.from === 'src/workers/http/call.ts' && i.to === 'src/workers/http/context'));
  assert.ok(all.some((i) => i.from.startsWith('src/workers/producer/') && i.to === '@confluentinc/kafka-javascript'));
});

test('src/shared imports nothing from src/main or src/workers', () => {
  assert.deepEqual(violations('src/shared/', (to) => to.startsWith('src/main') || to.startsWith('src/workers')), []);
});

test('src/main imports nothing from src/workers (it starts the programs by path)', () => {
  assert.deepEqual(violations('src/main/', (to) => to.startsWith('src/workers')), []);
});

test('the HTTP worker and the producer process import nothing of each other or of src/main', () => {
  assert.deepEqual(violations('src/workers/http/', (to) => to.startsWith('src/workers/producer') || to.startsWith('src/main')), []);
  assert.deepEqual(violations('src/workers/producer/', (to) => to.startsWith('src/workers/http') || to.startsWith('src/main')), []);
});

test('phases never import the engine, the handler or the worker', () => {
  const engine = new Set(['src/workers/http/call', 'src/workers/http/downstream/handler', 'src/workers/http/worker']);
  assert.deepEqual(violations('src/workers/http/phases/', (to) => engine.has(to)), []);
});

test('only src/workers/producer/kafka-client.ts imports the Kafka client', () => {
  const users = all.filter((i) => i.to === '@confluentinc/kafka-javascript').map((i) => i.from);
  assert.deepEqual([...new Set(users)], ['src/workers/producer/kafka-client.ts']);
});

test('nothing in src imports from test/ (oracles are for tests and the bench)', () => {
  assert.deepEqual(violations('src/', (to) => to.startsWith('test/') || to.startsWith('test')), []);
});

test('piscina is declared and imported nowhere until its first use', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies.piscina !== undefined);
  assert.deepEqual(violations('src/', (to) => to === 'piscina'), []);
});
