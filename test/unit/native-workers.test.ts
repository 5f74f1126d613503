/**
 * The addon in worker threads: workers load it and use it (some busy in a loop of native
 * calls, some idle), get terminated or exit on their own, round after round, while the main
 * thread has loaded it too; then the main thread keeps using the addon and a table that a
 * dead worker built, and the process must exit cleanly (code 0, no abort, no signal).
 * Each scenario runs in a child `node` process so that a crash cannot take the runner down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const MODULE = path.resolve(__dirname, '../../src/shared/native/index.js');

const SCRIPT = String.raw`
'use strict';
const { Worker } = require('node:worker_threads');
const [mod, mode] = process.argv.slice(2);

const WORKER = ${'`'}
const { parentPort, workerData } = require('node:worker_threads');
const api = require(workerData.mod).loadNative();
const hosts = Array.from({ length: 8 }, (_, i) => ({ id: '10.0.0.' + i + ':80', weight: 1 + (i % 3) }));
const ring = api.buildKetama(hosts);
const table = api.buildMaglev(hosts);
const out = new Uint32Array(74);
const head = Buffer.from('HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nConnection: keep-alive\\r\\n\\r\\nhello');
const eligible = new Uint8Array(8).fill(1);
const loads = new Int32Array(8);
let sum = 0;
const work = (n) => {
  for (let i = 0; i < n; i++) {
    sum += api.parseResponseHead(head, 0, head.length, out);
    const k = api.hashKey('key-' + (i & 4095)) >>> 0;
    sum += api.lookup(ring, k) + api.lookupWalk(table, k, 8, eligible) + api.lookupBounded(ring, k, 16, eligible, loads, 1.25);
  }
};
work(2000);
parentPort.postMessage({ ready: true, ring, sum });
if (workerData.kind === 'busy') for (;;) work(1000);
if (workerData.kind === 'exit') process.exit(0);
if (workerData.kind === 'throw') throw new Error('worker failed on purpose');
parentPort.on('message', () => work(100));
${'`'};

async function round(r) {
  const kinds = ['busy', 'idle', 'exit', 'busy', 'throw', 'idle'];
  const workers = kinds.map((kind) => {
    const w = new Worker(WORKER, { eval: true, workerData: { mod, kind } });
    w.on('error', (e) => { if (kind !== 'throw') throw e; });
    const exited = new Promise((res) => w.once('exit', res));
    return { w, kind, exited, ready: new Promise((res) => w.once('message', res)) };
  });
  const rings = [];
  for (const { ready } of workers) rings.push((await ready).ring);
  await Promise.all(workers.map(({ w, kind, exited }) => kind === 'exit' || kind === 'throw' ? exited : w.terminate()));
  return rings;
}

(async () => {
  let api = null;
  if (mode === 'main-first') api = require(mod).loadNative();
  let rings = [];
  for (let r = 0; r < 4; r++) rings = await round(r);
  if (!api) api = require(mod).loadNative();
  // Tables built by workers that are gone: plain JS-owned memory, still valid.
  const expected = api.buildKetama(Array.from({ length: 8 }, (_, i) => ({ id: '10.0.0.' + i + ':80', weight: 1 + (i % 3) })));
  for (const ring of rings) {
    if (Buffer.compare(Buffer.from(ring.buffer), Buffer.from(expected.buffer)) !== 0) throw new Error('ring differs');
    for (let k = 0; k < 1000; k++) api.lookup(ring, k * 2654435761);
  }
  const out = new Uint32Array(20);
  const head = Buffer.from('HTTP/1.1 204 No Content\r\n\r\n');
  if (api.parseResponseHead(head, 0, head.length, out) !== head.length) throw new Error('parse failed');
  console.log('OK ' + mode);
})().catch((e) => { console.error(e); process.exitCode = 1; });
`;

function runScenario(mode: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-native-workers-'));
  try {
    const script = path.join(dir, 'workers.js');
    fs.writeFileSync(script, SCRIPT);
    const res = spawnSync(process.execPath, [script, MODULE, mode], { encoding: 'utf8', timeout: 120_000 });
    const detail = `status=${res.status} signal=${res.signal}\nstdout:\n${res.stdout}\nstderr:\n${res.stderr}`;
    assert.equal(res.error, undefined, detail);
    assert.equal(res.signal, null, detail);
    assert.equal(res.status, 0, detail);
    assert.match(res.stdout, new RegExp(`^OK ${mode}$`, 'm'), detail);
    assert.doesNotMatch(res.stderr, /abort|fatal|segmentation|core dumped/i, detail);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('workers load, use and drop the addon while the main thread holds it; clean exit', () => {
  runScenario('main-first');
});

test('workers load the addon before the main thread does; clean exit', () => {
  runScenario('workers-first');
});
