/**
 * The upstream every contender proxies to: one server process pinned to the load CPU,
 * listening on several ports (one "host" each) so that balancing scenarios have hosts to
 * pick from. Two flavours: nginx (static config, files for the large bodies) and a one-thread
 * uWebSockets.js server; README.md says which is cheaper per request here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderTemplate } from '../lib/files';
import { freePort, isAlive, spawnPinned, stopChild, tailFile, waitHttpReady } from '../lib/proc';
import { NGINX_BIN } from '../contenders/nginx';
import type { Endpoint } from '../contenders/types';
import { UPSTREAM_BODIES } from './bodies';

export type UpstreamKind = 'nginx' | 'uws';

export interface Upstream {
  readonly kind: UpstreamKind;
  readonly hosts: readonly Endpoint[];
  readonly pid: number;
  readonly logFile: string;
  alive(): boolean;
  stop(): Promise<void>;
}

export async function startUpstream(
  kind: UpstreamKind,
  opts: { root: string; workDir: string; cpus: string; hostCount: number },
): Promise<Upstream> {
  const host = '127.0.0.1';
  const ports: number[] = [];
  for (let i = 0; i < opts.hostCount; i++) ports.push(await freePort(host));
  fs.mkdirSync(opts.workDir, { recursive: true });
  const logFile = path.join(opts.workDir, `upstream-${kind}.log`);

  let cmd: string;
  let args: string[];
  if (kind === 'nginx') {
    const docroot = path.join(opts.workDir, 'docroot');
    fs.mkdirSync(docroot, { recursive: true });
    fs.writeFileSync(path.join(docroot, '16k'), Buffer.alloc(UPSTREAM_BODIES.k16Bytes, 'a'));
    fs.writeFileSync(path.join(docroot, '1m'), Buffer.alloc(UPSTREAM_BODIES.m1Bytes, 'b'));
    const conf = path.join(opts.workDir, 'upstream-nginx.conf');
    renderTemplate(
      opts.root,
      'upstream/nginx-upstream.conf.tmpl',
      {
        WORKDIR: opts.workDir,
        DOCROOT: docroot,
        LISTEN: ports.map((p) => `        listen ${host}:${p} backlog=4096;`).join('\n'),
        SMALL_BODY: UPSTREAM_BODIES.small,
      },
      conf,
    );
    cmd = NGINX_BIN;
    args = ['-p', opts.workDir, '-e', path.join(opts.workDir, 'upstream-error.log'), '-c', conf];
  } else {
    cmd = process.execPath;
    args = [path.join(opts.root, 'dist', 'bench', 'upstream', 'uws-upstream.js'), host, ...ports.map(String)];
  }

  const child = spawnPinned(cmd, args, { cpus: opts.cpus, cwd: opts.root, logFile });
  try {
    for (const port of ports) await waitHttpReady(host, port, child);
  } catch (e) {
    await stopChild(child, 'SIGKILL');
    throw new Error(`upstream (${kind}): ${(e as Error).message}\n${tailFile(logFile)}`);
  }
  if (child.pid === undefined) throw new Error('upstream: no pid');
  return {
    kind,
    hosts: ports.map((port) => ({ host, port })),
    pid: child.pid,
    logFile,
    alive: () => isAlive(child),
    stop: () => stopChild(child),
  };
}
