/**
 * HAProxy (Debian's package) as a reverse proxy, config from bench/baselines/haproxy.cfg.tmpl:
 * one thread, `http-reuse always`, `option http-keep-alive`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderTemplate } from '../lib/files';
import { KEY_HEADER, type Scenario } from '../scenarios';
import { startProcess } from './process';
import type { Contender, StartContext } from './types';

export const HAPROXY_BIN = fs.existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

function scenarioVars(s: Scenario, ctx: StartContext): Record<string, string> {
  const vars = {
    FRONTEND_EXTRA: '',
    BACKEND_BALANCE: '    balance roundrobin',
    BIND_SSL: ctx.tls === null ? '' : ` ssl crt ${ctx.tls.combinedFile} alpn http/1.1`,
    SCHEME: ctx.tls === null ? 'http' : 'https',
  };
  if (s.name === 'consistent-hash') vars.BACKEND_BALANCE = `    balance hdr(${KEY_HEADER})\n    hash-type consistent`;
  if (s.name === 'rate-limit') {
    vars.FRONTEND_EXTRA = [
      '    stick-table type string len 32 size 100k expire 10s store http_req_rate(1s)',
      `    http-request track-sc0 req.hdr(${KEY_HEADER})`,
      '    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000 }',
    ].join('\n');
  }
  return vars;
}

export const haproxy: Contender = {
  name: 'haproxy',
  description: 'HAProxy, nbthread 1, option http-keep-alive, http-reuse always, no logging',
  pinning: 'proxy',
  supports: (s) => !s.name.startsWith('kafka-produce'),
  async start(ctx) {
    const cfg = path.join(ctx.workDir, 'haproxy.cfg');
    renderTemplate(
      ctx.root,
      'baselines/haproxy.cfg.tmpl',
      {
        WORKDIR: ctx.workDir,
        HOST: ctx.listen.host,
        PORT: String(ctx.listen.port),
        BACKEND_SERVERS: ctx.upstreams.map((u, i) => `    server s${i} ${u.host}:${u.port}`).join('\n'),
        ...scenarioVars(ctx.scenario, ctx),
      },
      cfg,
    );
    // -db: stay in the foreground, no daemon, no master-worker: one process to measure.
    return startProcess('haproxy', ctx, { cmd: HAPROXY_BIN, args: ['-db', '-f', cfg] });
  },
};
