#!/usr/bin/env node
// Builds the Rust N-API addon (native/napi) with `cargo build --release` and installs it at
// build/Release/sluice_native.node, where src/shared/native/index.ts loads it from.
//
// Run by the gyp action in the top-level binding.gyp, i.e. by npm's own install step
// (`npm ci` / `npm install` run `node-gyp rebuild` for a package that has a binding.gyp and no
// install script), and usable by hand: `node native/build.js` or `npm run build:native`.
// Any failure exits non-zero with a message saying what to do, so the install fails loudly
// rather than leaving a proxy that cannot load its hot path.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const manifest = path.join(__dirname, 'Cargo.toml');
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(root, process.env.CARGO_TARGET_DIR)
  : path.join(__dirname, 'target');
const libName = {
  linux: 'libsluice_native.so',
  darwin: 'libsluice_native.dylib',
  win32: 'sluice_native.dll',
}[process.platform] ?? 'libsluice_native.so';
const dest = path.join(root, 'build', 'Release', 'sluice_native.node');

function fail(message) {
  process.stderr.write(`\n[sluice native] BUILD FAILED: ${message}\n\n`);
  process.exit(1);
}

/** cargo from $CARGO, PATH, or rustup's default home (npm may run with a reduced PATH). */
function findCargo() {
  const candidates = [];
  if (process.env.CARGO) candidates.push(process.env.CARGO);
  candidates.push('cargo');
  const cargoHome = process.env.CARGO_HOME ?? path.join(os.homedir(), '.cargo');
  candidates.push(path.join(cargoHome, 'bin', process.platform === 'win32' ? 'cargo.exe' : 'cargo'));
  for (const c of candidates) {
    const probe = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return c;
  }
  return null;
}

const cargo = findCargo();
if (!cargo) {
  fail('cargo not found (looked at $CARGO, PATH and ~/.cargo/bin). Install Rust (rustup, stable >= 1.88) and re-run `npm ci`.');
}

const args = ['build', '--release', '--locked', '-p', 'sluice-native', '--manifest-path', manifest];
process.stderr.write(`[sluice native] ${cargo} ${args.join(' ')}\n`);
const started = Date.now();
// build.rs compiles src/uws20/socket.cc against this Node's headers: the Node that will load the addon.
const nodeInclude = path.resolve(process.execPath, '..', '..', 'include', 'node');
const build = spawnSync(cargo, args, { stdio: 'inherit', cwd: root, env: { ...process.env, SLUICE_NODE_INCLUDE: nodeInclude } });
if (build.error) fail(`could not run cargo: ${build.error.message}`);
if (build.status !== 0) {
  fail(`cargo exited with ${build.status ?? build.signal}; see the compiler output above.`);
}

const built = path.join(targetDir, 'release', libName);
if (!fs.existsSync(built)) fail(`cargo succeeded but ${built} is missing.`);

// Copy then rename: overwriting a shared library in place could crash a process that has it
// mapped (a running proxy), whereas a rename leaves the old inode to its users.
fs.mkdirSync(path.dirname(dest), { recursive: true });
const tmp = `${dest}.${process.pid}.tmp`;
fs.copyFileSync(built, tmp);
fs.renameSync(tmp, dest);

// Prove it loads here, now, rather than at the first request.
try {
  const addon = require(dest);
  if (typeof addon.parseResponseHead !== 'function') fail(`${dest} loaded but exports no parseResponseHead.`);
} catch (err) {
  fail(`${dest} does not load: ${err.message}`);
}
process.stderr.write(`[sluice native] built ${path.relative(root, dest)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
