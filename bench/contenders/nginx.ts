/**
 * nginx (Debian's package) as a reverse proxy, config from bench/baselines/nginx.conf.tmpl.
 * `nginx`: one worker on the proxy CPU (the pinned comparison); `nginx-all`: one worker per
 * CPU on all CPUs, the fair partner for Sluice's "all workers" row.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderTemplate } from '../lib/files';
import { KEY_HEADER, type Scenario } from '../scenarios';
import { startProcess } from './process';
import type { Contender, RunningContender, StartContext } from './types';

export const NGINX_BIN = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

const KEY_VAR = `$http_${KEY_HEADER.replace(/-/g, '_')}`;

function supports(s: Scenario): boolean {
  return !s.name.startsWith('kafka-produce');
}

/** The scenario-dependent parts of the config. */
function scenarioVars(s: Scenario, ctx: StartContext): Record<string, string> {
  const vars = { HTTP_EXTRA: '', UPSTREAM_BALANCE: '', LOCATION_EXTRA: '', LISTEN_SSL: '', SERVER_EXTRA: '' };
  if (ctx.tls !== null) {
    vars.LISTEN_SSL = ' ssl';
    vars.SERVER_EXTRA = [
      `        ssl_certificate ${ctx.tls.certFile};`,
      `        ssl_certificate_key ${ctx.tls.keyFile};`,
      '        ssl_protocols TLSv1.2 TLSv1.3;',
      '        ssl_session_cache shared:SSL:1m;',
    ].join('\n');
  }
  if (s.name === 'consistent-hash') vars.UPSTREAM_BALANCE = `        hash ${KEY_VAR} consistent;`;
  if (s.name === 'rate-limit') {
    vars.HTTP_EXTRA = `    limit_req_zone ${KEY_VAR} zone=bench:20m rate=1000000r/s;\n    limit_req_status 429;`;
    vars.LOCATION_EXTRA = '            limit_req zone=bench burst=1000000 nodelay;';
  }
  return vars;
}

async function start(name: string, workers: number, ctx: StartContext): Promise<RunningContender> {
  const conf = path.join(ctx.workDir, 'nginx.conf');
  renderTemplate(
    ctx.root,
    'baselines/nginx.conf.tmpl',
    {
      WORKERS: String(workers),
      WORKDIR: ctx.workDir,
      HOST: ctx.listen.host,
      PORT: String(ctx.listen.port),
      UPSTREAM_SERVERS: ctx.upstreams.map((u) => `        server ${u.host}:${u.port};`).join('\n'),
      ...scenarioVars(ctx.scenario, ctx),
    },
    conf,
  );
  // -e: the error log from the first line on (not /var/log/nginx), -p: prefix = work dir.
  return startProcess(name, ctx, {
    cmd: NGINX_BIN,
    args: ['-p', ctx.workDir, '-e', path.join(ctx.workDir, 'error.log'), '-c', conf],
  });
}

export const nginx: Contender = {
  name: 'nginx',
  description: 'nginx, 1 worker process, upstream keepalive 64, HTTP/1.1 to the upstream, access_log off',
  pinning: 'proxy',
  supports,
  start: (ctx) => start('nginx', 1, ctx),
};

export const nginxAll: Contender = {
  name: 'nginx-all',
  description: 'nginx, one worker process per CPU of its set, otherwise as `nginx`',
  pinning: 'all',
  supports,
  start: (ctx) => start('nginx-all', ctx.cpuCount, ctx),
};
