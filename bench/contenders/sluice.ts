/**
 * Sluice as a bench contender: its config for each scenario and its capability check.
 *
 * This is the one module to extend when Sluice gains a feature a scenario needs:
 *  - `supports(scenario)` says whether Sluice can run the scenario; a later scenario
 *    (`scenario.later`) is reported "not yet available" until it returns true;
 *  - `buildConfig()` returns the config file's content for the scenario.
 * Sluice runs as `node dist/src/main/index.js --config FILE` from the repo root, with
 * `SLUICE_WORKERS` set to its worker count.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KEY_HEADER, SCENARIO_NAMES, SCENARIOS, type Scenario, type ScenarioName } from '../scenarios';
import { startProcess } from './process';
import type { Contender, Endpoint, RunningContender, StartContext } from './types';

/** Scenarios whose feature Sluice does not have yet; every other one it runs. */
const MISSING: ReadonlySet<ScenarioName> = new Set<ScenarioName>([]);
const SUPPORTED: ReadonlySet<ScenarioName> = new Set(SCENARIO_NAMES.filter((n) => !MISSING.has(n)));

/**
 * Scenarios whose Sluice config turns on features (`scenario.features`) that the
 * `sluice-1w-off` contender turns off, so that one run measures what they cost.
 */
export const FEATURE_SCENARIOS: ReadonlySet<ScenarioName> = new Set(SCENARIO_NAMES.filter((n) => SCENARIOS[n].features !== undefined));

export function supports(scenario: Scenario): boolean {
  return SUPPORTED.has(scenario.name);
}

export interface SluiceConfigInput {
  readonly scenario: Scenario;
  readonly listen: Endpoint;
  readonly upstreams: readonly Endpoint[];
  readonly workers: number;
  /** A free port, should the config need one more listener (the admin server, say). */
  readonly sparePort: number;
  /** false: leave out the scenario's features (the `sluice-1w-off` baseline). Default true. */
  readonly features?: boolean;
  /** TLS scenarios: the bench certificate; Sluice then serves HTTPS on `listen` and plain HTTP on the spare port. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string } | null;
}

/** The config file for one scenario (written as JSON). */
export function buildConfig(input: SluiceConfigInput): Record<string, unknown> {
  const { scenario } = input;
  const hosts = input.upstreams.map((u) => ({ address: `${u.host}:${u.port}` }));
  const upstream: Record<string, unknown> = { balance: 'round_robin', hosts };
  const route: Record<string, unknown> = {
    name: 'all',
    match: { path: { prefix: '/' } },
    action: { type: 'proxy', upstream: 'app' },
  };
  const extra: Record<string, unknown> = {};
  const routes: Record<string, unknown>[] = [route];
  switch (scenario.name) {
    case 'consistent-hash':
      upstream.balance = 'ketama';
      upstream.hashKey = `header:${KEY_HEADER}`;
      break;
    case 'rate-limit':
      if (input.features === false) break;
      // The check, never the rejection: a bucket per key that the load cannot empty, plus a
      // breaker on the upstream (it sees every outcome and never opens).
      route.rateLimit = { key: `header:${KEY_HEADER}`, rate: 1000000, burst: 1000000 };
      upstream.breaker = {};
      break;
    case 'kafka-events':
      if (input.features === false) break;
      // The local broker (scripts/kafka.sh, 127.0.0.1:19092), zstd via the throughput profile.
      extra.events = { enabled: true, topic: 'sluice.bench.events', key: 'route' };
      break;
    case 'kafka-produce-async':
    case 'kafka-produce-sync':
      routes.unshift({
        name: 'produce',
        match: { path: { exact: scenario.path }, methods: ['POST'] },
        action: { type: 'kafka', topic: 'sluice.bench.produce', format: 'raw', mode: scenario.name === 'kafka-produce-sync' ? 'sync' : 'async' },
      });
      break;
    default:
      break;
  }
  const tls = input.tls ?? null;
  return {
    workers: input.workers,
    // The admin listener (metrics are recorded as in production) on the spare port, or on a
    // free one when the spare port carries the plain HTTP listener of a TLS scenario.
    listen: { host: input.listen.host, port: tls === null ? input.listen.port : input.sparePort },
    admin: { enabled: !(scenario.name === 'small-get' && input.features === false), host: '127.0.0.1', port: tls === null ? input.sparePort : 0 },
    ...(tls === null
      ? {}
      : { tls: { host: input.listen.host, port: input.listen.port, certificates: [{ serverNames: ['localhost'], certFile: tls.certFile, keyFile: tls.keyFile }] } }),
    upstreams: { app: upstream },
    routes,
    ...extra,
  };
}

async function start(name: string, ctx: StartContext, workers: number, features = true, root = ctx.root): Promise<RunningContender> {
  const main = path.join(root, 'dist', 'src', 'main', 'index.js');
  if (!fs.existsSync(main)) throw new Error(`${name}: Sluice is not built (${path.relative(ctx.root, main)} is missing)`);
  const configFile = path.join(ctx.workDir, 'sluice.json');
  const config = buildConfig({
    scenario: ctx.scenario,
    listen: ctx.listen,
    upstreams: ctx.upstreams,
    workers,
    sparePort: ctx.sparePort,
    features,
    tls: ctx.tls,
  });
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  return startProcess(name, ctx, {
    cmd: process.execPath,
    args: [main, '--config', configFile],
    cwd: root,
    env: { ...process.env, SLUICE_WORKERS: String(workers) },
  });
}

export const sluice1w: Contender = {
  name: 'sluice-1w',
  description: 'Sluice, 1 worker thread (SLUICE_WORKERS=1)',
  pinning: 'proxy',
  supports,
  start: (ctx) => start('sluice-1w', ctx, 1),
};

export const sluiceAll: Contender = {
  name: 'sluice',
  description: 'Sluice, one worker thread per CPU of its set (SLUICE_WORKERS=<CPUs>)',
  pinning: 'all',
  supports,
  start: (ctx) => start('sluice', ctx, ctx.cpuCount),
};

/**
 * Another build of Sluice (a checkout of an earlier commit, built there: `npm ci` or a
 * node_modules link, `node native/build.js`, `npx tsc`), named by SLUICE_BENCH_BASE_DIR:
 * the baseline of a change, measured in the same rounds as `sluice-1w`.
 */
export const sluice1wBase: Contender = {
  name: 'sluice-1w-base',
  description: `Sluice from the build in SLUICE_BENCH_BASE_DIR (${process.env.SLUICE_BENCH_BASE_DIR ?? 'unset'}), 1 worker thread: the base build of a change`,
  pinning: 'proxy',
  supports: (s) => (process.env.SLUICE_BENCH_BASE_DIR ?? '') !== '' && supports(s),
  start: (ctx) => start('sluice-1w-base', ctx, 1, true, process.env.SLUICE_BENCH_BASE_DIR as string),
};

export const sluice1wOff: Contender = {
  name: 'sluice-1w-off',
  description: "Sluice, 1 worker thread, the scenario's features off (small-get: metrics; rate-limit: rate limiting and breakers; kafka-events: request events): the baseline for their cost",
  pinning: 'proxy',
  supports: (s) => FEATURE_SCENARIOS.has(s.name),
  start: (ctx) => start('sluice-1w-off', ctx, 1, false),
};
