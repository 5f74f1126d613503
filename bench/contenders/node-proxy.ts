/** The plain Node `http` proxy of bench/baselines/node-proxy.ts, one process. */
import * as path from 'node:path';
import { startProcess } from './process';
import type { Contender } from './types';

export const nodeProxy: Contender = {
  name: 'node-proxy',
  description: 'plain Node `http` proxy (bench/baselines/node-proxy.ts), keep-alive http.Agent, pipe() both ways, 1 process',
  pinning: 'proxy',
  supports: (s) => !s.later || s.name === 'kafka-events',
  start(ctx) {
    const script = path.join(ctx.root, 'dist', 'bench', 'baselines', 'node-proxy.js');
    const args = [script, '--listen', `${ctx.listen.host}:${ctx.listen.port}`];
    for (const u of ctx.upstreams) args.push('--upstream', `${u.host}:${u.port}`);
    return startProcess('node-proxy', ctx, { cmd: process.execPath, args });
  },
};
