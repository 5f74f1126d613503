/**
 * Loads uWebSockets.js as its native binary. The package's own entry point silently falls
 * back to a slow pure-JS server when the binary cannot load; Sluice must never run on that,
 * so this requires the `.node` file directly and fails loudly instead.
 */
import { join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

let cached: Uws | undefined;

/** The uWS.js binary for this Node and platform (loadUws loads it). */
export function uwsBinaryFile(): string {
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let pkgDir: string;
  try {
    pkgDir = join(require.resolve('uWebSockets.js/package.json'), '..');
  } catch {
    throw new Error('uWebSockets.js is not installed (run `npm ci`)');
  }
  return join(pkgDir, 'binaries', name);
}

/** The installed uWebSockets.js package's version ("20.30.0-unofficial.0"), '' when unreadable. */
export function uwsVersion(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pkg = require('uWebSockets.js/package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '';
  } catch {
    return '';
  }
}

export function loadUws(): Uws {
  if (cached !== undefined) return cached;
  const file = uwsBinaryFile();
  let mod: Uws;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(file) as Uws;
  } catch (e) {
    throw new Error(
      `cannot load the uWebSockets.js native binary ${file} (${(e as Error).message}); ` +
        'Sluice refuses to run on the pure-JS fallback. It needs Node 20 (ABI 115) on linux-x64 with glibc >= 2.31.',
    );
  }
  if (typeof mod.App !== 'function' || typeof (mod as unknown as { H3App?: unknown }).H3App !== 'function') {
    throw new Error(`${file} loaded but is not the native uWebSockets.js binary`);
  }
  // Drop the `uWebSockets: 20` header uWS adds to every response.
  mod._cfg('999999990007');
  cached = mod;
  return mod;
}
