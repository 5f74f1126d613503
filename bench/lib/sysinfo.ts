/** The machine and software a bench report was measured on. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { commandLine } from './proc';
import { NGINX_BIN } from '../contenders/nginx';
import { HAPROXY_BIN } from '../contenders/haproxy';

export interface SystemInfo {
  readonly date: string;
  readonly hostname: string;
  readonly nproc: string;
  readonly cpuModel: string;
  readonly lscpu: string;
  readonly uname: string;
  readonly memTotal: string;
  readonly versions: Readonly<Record<string, string>>;
  readonly git: string;
}

function run(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.error ? '' : `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

function lscpuSummary(): string {
  const keep = ['Architecture', 'CPU(s)', 'On-line CPU(s) list', 'Model name', 'Thread(s) per core', 'Core(s) per socket', 'Socket(s)', 'Hypervisor vendor', 'L2 cache', 'L3 cache'];
  return run('lscpu', [])
    .split('\n')
    .filter((l) => keep.some((k) => l.startsWith(`${k}:`)))
    .map((l) => l.replace(/\s{2,}/g, ' '))
    .join('; ');
}

export function collectSystemInfo(root: string): SystemInfo {
  let autocannon = '';
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version?: string };
    autocannon = pkg.version ?? '';
  } catch {
    autocannon = 'not installed';
  }
  const head = run('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = run('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no']) !== '';
  const memKb = /MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    nproc: run('nproc', []),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    lscpu: lscpuSummary(),
    uname: run('uname', ['-srvm']),
    memTotal: memKb ? `${(Number(memKb) / 1024 / 1024).toFixed(1)} GiB` : 'unknown',
    versions: {
      node: process.version,
      nginx: commandLine(NGINX_BIN, ['-v'])?.replace(/^nginx version: /, '') ?? 'not installed',
      haproxy: commandLine(HAPROXY_BIN, ['-v'])?.replace(/ - https?:.*$/, '') ?? 'not installed',
      wrk: commandLine('wrk', ['--version'])?.replace(/ Copyright.*$/, '') ?? 'not installed',
      autocannon,
    },
    git: head ? `${head}${dirty ? ' (with uncommitted changes)' : ''}` : 'unknown',
  };
}
