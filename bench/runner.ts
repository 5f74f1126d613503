/**
 * The bench runner: starts the upstream and every contender, runs interleaved rounds of each
 * scenario with each load generator, measures the proxy's process tree from /proc, and writes
 * the dated Markdown report, its SVG chart and the raw per-run JSON to bench/results/.
 *
 * It never exits with live children: every process it starts is stopped on the way out,
 * also on SIGINT/SIGTERM. A contender that fails to start (or dies) is reported as failed
 * and the others carry on.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CONTENDERS } from './contenders';
import { supports as sluiceSupports } from './contenders/sluice';
import type { Contender, RunningContender } from './contenders/types';
import { parseArgs, USAGE, type Options } from './lib/cli';
import { NOISY_OTHER_PCT, waitQuiet } from './lib/noise';
import { repoRoot } from './lib/files';
import {
  cpuBusyPercent,
  cpuIrqPercent,
  freePort,
  hasCommand,
  httpGetText,
  killAllSpawned,
  pinRunningProcess,
  processBusySeconds,
  readCpuTimes,
  resetPeakRss,
  sleep,
  treeCpuSeconds,
  treePeakRssKb,
  type CpuTimes,
} from './lib/proc';
import { collectSystemInfo, type SystemInfo } from './lib/sysinfo';
import { killLoadGenerators, runLoad } from './loadgen';
import type { LoadGenName, LoadResult, LoadSpec } from './loadgen/types';
import { cpuList, renderMarkdown } from './report/markdown';
import type { BenchSettings, ContenderStatus, KafkaCounts, RunRecord, ScenarioOutcome } from './report/model';
import { metricSum, pairedCpuRatios, summarize } from './report/summarize';
import { renderSvg } from './report/svg';
import { SCENARIOS, scenarioBody, type Scenario } from './scenarios';
import { startUpstream, type Upstream } from './upstream';

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

/** Everything started and not yet stopped, for the way out. */
const live = new Set<{ stop(): Promise<void> }>();
/** Set on SIGINT/SIGTERM: nothing new is started after it. */
let stopping = false;
/** Gives the local Kafka broker back the CPU affinity it had (set while it is pinned). */
let unpinKafka: (() => void) | null = null;

function checkNotStopping(): void {
  if (stopping) throw new Error('interrupted');
}

async function stopAll(): Promise<void> {
  killLoadGenerators();
  await Promise.all([...live].map((p) => p.stop().catch(() => undefined)));
  live.clear();
}

function loadSpec(s: Scenario, target: RunningContender['target'], durationSec: number, rate: number | null): LoadSpec {
  return {
    url: `${s.tls === true ? 'https' : 'http'}://${target.host}:${target.port}${s.path}`,
    method: s.method,
    body: scenarioBody(s),
    contentType: s.bodyContentType,
    connections: s.connections,
    durationSec,
    varyHeader: s.varyHeader,
    ...(rate === null ? {} : { rate }),
  };
}

interface Env {
  root: string;
  workDir: string;
  opts: Options;
  loadgens: LoadGenName[];
  upstream: Upstream;
  allCpus: string;
}

/** One measured run: CPU and memory of the proxy tree bracketed around the load. */
async function measure(env: Env, s: Scenario, name: string, c: RunningContender, lg: LoadGenName, round: number): Promise<RunRecord> {
  const startedAt = new Date().toISOString();
  if (c.pid !== null) resetPeakRss(c.pid);
  let proxy0: number | null = null;
  let up0 = 0;
  let cpu0: CpuTimes = readCpuTimes();
  let t0 = performance.now();
  const onStart = (): void => {
    cpu0 = readCpuTimes();
    proxy0 = c.pid === null ? null : treeCpuSeconds(c.pid);
    up0 = treeCpuSeconds(env.upstream.pid);
    t0 = performance.now();
  };
  let load: LoadResult | null = null;
  let error: string | undefined;
  try {
    load = await runLoad(lg, loadSpec(s, c.target, env.opts.durationSec, env.opts.rate), { root: env.root, cpus: env.opts.loadCpus, workDir: env.workDir }, onStart);
  } catch (e) {
    error = (e as Error).message;
  }
  const wallSec = (performance.now() - t0) / 1000;
  const cpu1 = readCpuTimes();
  const cpuBusy = cpuBusyPercent(cpu0, cpu1);
  const cpuIrq = cpuIrqPercent(cpu0, cpu1);
  const proxyCpuSec = c.pid === null || proxy0 === null ? null : treeCpuSeconds(c.pid) - proxy0;
  const upstreamCpuSec = treeCpuSeconds(env.upstream.pid) - up0;
  const otherCpuSec =
    load?.cpuSeconds == null ? null : Math.max(0, processBusySeconds(cpu0, cpu1) - (proxyCpuSec ?? 0) - upstreamCpuSec - load.cpuSeconds);
  const proxyPeakRssKb = c.pid === null ? null : treePeakRssKb(c.pid);
  if (!c.alive()) error = `${error ? `${error}; ` : ''}the contender exited during the run`;
  return {
    scenario: s.name,
    contender: name,
    loadgen: lg,
    round,
    startedAt,
    wallSec,
    load,
    error,
    proxyCpuSec,
    upstreamCpuSec,
    proxyPeakRssKb,
    cpuBusy,
    cpuIrq,
    otherCpuSec,
  };
}

function cpusFor(c: Contender, opts: Options, allCpus: string): string {
  return c.pinning === 'proxy' ? opts.proxyCpus : c.pinning === 'all' ? allCpus : '';
}

/**
 * The TLS scenarios' certificate: one self-signed ECDSA P-256 certificate for localhost and
 * 127.0.0.1, made once per bench run with the openssl CLI (bootstrap installs it).
 */
function benchCertificate(workDir: string): { certFile: string; keyFile: string; combinedFile: string } {
  const dir = path.join(workDir, 'tls');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const combinedFile = path.join(dir, 'combined.pem');
  if (!fs.existsSync(combinedFile)) {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ], { stdio: 'ignore' });
    fs.writeFileSync(combinedFile, fs.readFileSync(certFile, 'utf8') + fs.readFileSync(keyFile, 'utf8'));
  }
  return { certFile, keyFile, combinedFile };
}

async function runScenario(env: Env, s: Scenario, runs: RunRecord[]): Promise<ScenarioOutcome> {
  const base = { scenario: s.name, title: s.title, note: s.note };
  if (s.later && !sluiceSupports(s)) {
    log(`${s.name}: not yet available`);
    return { ...base, notAvailable: `Sluice's capability check (\`supports('${s.name}')\` in bench/contenders/sluice.ts) says no.`, contenders: [], rows: [] };
  }
  const selected = env.opts.contenders.map((n) => CONTENDERS.find((c) => c.name === n) as Contender);
  const statuses = new Map<string, ContenderStatus>();
  const running: { c: Contender; r: RunningContender; adminPort: number }[] = [];
  const kafkaCounts: KafkaCounts[] = [];
  const hosts = env.upstream.hosts.slice(0, s.upstreamHosts);

  for (const c of selected) {
    const cpus = cpusFor(c, env.opts, env.allCpus);
    const status = { name: c.name, description: c.description, cpus };
    if (!c.supports(s)) {
      statuses.set(c.name, { ...status, state: 'not-in-scenario' });
      continue;
    }
    const workDir = path.join(env.workDir, `${s.name}-${c.name}`);
    fs.mkdirSync(workDir, { recursive: true });
    checkNotStopping();
    try {
      log(`${s.name}: starting ${c.name} (CPUs ${cpus || 'none'})`);
      // Sluice's admin listener (its /metrics) takes the spare port when there is no TLS.
      const sparePort = await freePort();
      const r = await c.start({
        root: env.root,
        workDir,
        scenario: s,
        upstreams: hosts,
        cpus,
        cpuCount: cpuList(cpus || '0').length,
        listen: { host: '127.0.0.1', port: await freePort() },
        sparePort,
        tls: s.tls === true ? benchCertificate(env.workDir) : null,
      });
      live.add(r);
      running.push({ c, r, adminPort: sparePort });
      statuses.set(c.name, { ...status, state: 'ran' });
    } catch (e) {
      const msg = (e as Error).message;
      log(`${s.name}: ${c.name} failed to start: ${msg}`);
      statuses.set(c.name, { ...status, state: 'failed', error: msg });
    }
  }

  const failed = (name: string, why: string): void => {
    const st = statuses.get(name);
    if (st && st.state === 'ran') statuses.set(name, { ...st, state: 'failed', error: why });
  };

  try {
    if (env.opts.warmupSec > 0) {
      const warmTool: LoadGenName = env.loadgens.includes('wrk') ? 'wrk' : 'autocannon';
      for (const { c, r } of running) {
        checkNotStopping();
        log(`${s.name}: warming up ${c.name} (${env.opts.warmupSec} s, ${warmTool})`);
        try {
          await runLoad(warmTool, loadSpec(s, r.target, env.opts.warmupSec, env.opts.rate), { root: env.root, cpus: env.opts.loadCpus, workDir: env.workDir }, () => undefined);
        } catch (e) {
          log(`${s.name}: warm-up of ${c.name} failed: ${(e as Error).message}`);
        }
      }
    }
    for (let round = 1; round <= env.opts.rounds; round++) {
      // The order flips every round (A B, B A, ...): on this VM the first run of a round
      // measured ~4 % more CPU per request than the second whichever contender it was
      // (docs/resilience.md), a position effect that alternating cancels out of the medians.
      for (const { c, r } of round % 2 === 1 ? running : [...running].reverse()) {
        checkNotStopping();
        if (statuses.get(c.name)?.state !== 'ran') continue;
        if (!r.alive()) {
          failed(c.name, `exited during the bench (before round ${round})`);
          continue;
        }
        for (const lg of env.loadgens) {
          let rec: RunRecord | undefined;
          for (let attempt = 0; attempt <= env.opts.retryNoisy; attempt++) {
            if (env.opts.quietWaitSec > 0) {
              const waited = await waitQuiet(env.opts.quietWaitSec);
              if (waited < 0) log(`machine still busy after ${env.opts.quietWaitSec} s: measuring anyway (see "other CPU %")`);
              else if (waited > 1) log(`waited ${waited.toFixed(0)} s for the machine to go quiet`);
            }
            rec = { ...(await measure(env, s, c.name, r, lg, round)), retries: attempt };
            const otherPct = rec.otherCpuSec === null ? 0 : (100 * rec.otherCpuSec) / rec.wallSec;
            if (otherPct <= NOISY_OTHER_PCT || !rec.load || attempt === env.opts.retryNoisy) break;
            log(`${s.name} ${c.name} ${lg}: other processes used ${otherPct.toFixed(0)}% of a CPU: measuring again`);
          }
          if (!rec) continue;
          runs.push(rec);
          const l = rec.load;
          log(
            `${s.name} round ${round}/${env.opts.rounds} ${c.name} ${lg}: ` +
              (l
                ? `${Math.round(l.rps)} req/s p50 ${(l.latencyUs.p50 / 1000).toFixed(2)} ms p99 ${(l.latencyUs.p99 / 1000).toFixed(2)} ms err ${l.errors} non2xx ${l.non2xx}` +
                  (rec.proxyCpuSec !== null && l.requests > 0 ? ` proxy ${((rec.proxyCpuSec * 1e6) / l.requests).toFixed(1)} µs/req` : '')
                : `failed: ${rec.error}`),
          );
          if (rec.error && !r.alive()) failed(c.name, rec.error);
          await sleep(300);
        }
      }
    }
  } finally {
    if (s.name.startsWith('kafka-')) {
      for (const { c, r, adminPort } of running) {
        if (!c.name.startsWith('sluice') || !r.alive() || s.tls === true) continue;
        const counts = await settledKafkaCounts(c.name, adminPort);
        if (counts !== null) kafkaCounts.push(counts);
      }
    }
    for (const { r } of running) {
      await r.stop();
      live.delete(r);
    }
  }
  const contenders = selected.map((c) => statuses.get(c.name) as ContenderStatus);
  const runErrors = runs
    .filter((r) => r.scenario === s.name && r.error !== undefined)
    .map((r) => ({ contender: r.contender, loadgen: r.loadgen, round: r.round, error: r.error ?? '' }));
  const rows = scenarioRows(s.name, contenders, runs, env.loadgens);
  return {
    ...base,
    contenders,
    rows,
    featurePairs: featurePairs(s.name, runs, env.loadgens),
    basePairs: basePairs(s.name, runs, env.loadgens),
    nginxPairs: nginxPairs(s.name, runs, rows),
    ...(kafkaCounts.length > 0 ? { kafkaCounts } : {}),
    runErrors,
  };
}

/**
 * A Sluice contender's Kafka counters from its /metrics, once every record its links took has
 * an outcome (delivered + failed + unknown = enqueued) or 10 s passed; null without an answer.
 */
async function settledKafkaCounts(contender: string, adminPort: number): Promise<KafkaCounts | null> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await httpGetText('127.0.0.1', adminPort, '/metrics');
    if (text === null) return null;
    const counts: KafkaCounts = {
      contender,
      eventsProduced: metricSum(text, 'sluice_events_produced_total'),
      eventsDropped: metricSum(text, 'sluice_events_dropped_total'),
      enqueued: metricSum(text, 'sluice_kafka_link_records_enqueued_total'),
      refused: metricSum(text, 'sluice_kafka_link_records_refused_total'),
      delivered: metricSum(text, 'sluice_kafka_link_records_delivered_total'),
      failed: metricSum(text, 'sluice_kafka_link_records_failed_total'),
      unknown: metricSum(text, 'sluice_kafka_link_records_unknown_total'),
    };
    if (counts.delivered + counts.failed + counts.unknown >= counts.enqueued || Date.now() > deadline) return counts;
    await sleep(500);
  }
}

/** Paired per-round ratios of sluice-1w over sluice-1w-off, when both ran (feature cost). */
function featurePairs(scenario: string, runs: readonly RunRecord[], loadgens: readonly LoadGenName[]): ScenarioOutcome['featurePairs'] {
  const mine = runs.filter((r) => r.scenario === scenario);
  const pairs = loadgens.map((lg) => ({ loadgen: lg, ratios: pairedCpuRatios(mine, 'sluice-1w', 'sluice-1w-off', lg) })).filter((p) => p.ratios.length > 0);
  return pairs.length > 0 ? pairs : undefined;
}

/** Paired per-round ratios of sluice-1w over sluice-1w-base (the build in SLUICE_BENCH_BASE_DIR), when both ran. */
function basePairs(scenario: string, runs: readonly RunRecord[], loadgens: readonly LoadGenName[]): ScenarioOutcome['basePairs'] {
  const mine = runs.filter((r) => r.scenario === scenario);
  const pairs = loadgens.map((lg) => ({ loadgen: lg, ratios: pairedCpuRatios(mine, 'sluice-1w', 'sluice-1w-base', lg) })).filter((p) => p.ratios.length > 0);
  return pairs.length > 0 ? pairs : undefined;
}

/** Paired per-round ratios of each row's CPU/request over the nginx row it is compared with. */
function nginxPairs(scenario: string, runs: readonly RunRecord[], rows: ScenarioOutcome['rows']): ScenarioOutcome['nginxPairs'] {
  const mine = runs.filter((r) => r.scenario === scenario);
  const pairs = rows
    .filter((r) => r.vsNginx !== null && r.vsNginx !== r.contender)
    .map((r) => ({ contender: r.contender, loadgen: r.loadgen, ratios: pairedCpuRatios(mine, r.contender, r.vsNginx as string, r.loadgen) }))
    .filter((p) => p.ratios.length > 0);
  return pairs.length > 0 ? pairs : undefined;
}

function scenarioRows(
  scenario: string,
  contenders: readonly ContenderStatus[],
  runs: readonly RunRecord[],
  loadgens: readonly LoadGenName[],
): ScenarioOutcome['rows'] {
  const taking = contenders
    .filter((c) => c.state !== 'not-in-scenario')
    .map((c) => ({ name: c.name, pinning: CONTENDERS.find((k) => k.name === c.name)?.pinning ?? 'proxy' }));
  return summarize(
    runs.filter((r) => r.scenario === scenario),
    taking,
    loadgens,
  );
}

interface RawFile {
  name?: string;
  system: SystemInfo;
  settings: BenchSettings;
  outcomes: ScenarioOutcome[];
  runs: RunRecord[];
}

/** Write the Markdown report and the chart; returns the report's path. */
function writeReport(root: string, raw: RawFile & { name: string }, rawFile: string): string {
  const { name, system: sys, settings, outcomes } = raw;
  const date = sys.date.slice(0, 10);
  const resultsDir = path.join(root, 'bench', 'results');
  const svg = renderSvg(`Sluice bench: ${name}, ${date}`, outcomes);
  const svgName = `${date}-${name}.svg`;
  if (svg) fs.writeFileSync(path.join(resultsDir, svgName), svg);
  const mdFile = path.join(resultsDir, `${date}-${name}.md`);
  fs.writeFileSync(mdFile, renderMarkdown(name, sys, settings, outcomes, svg ? svgName : null, path.relative(root, rawFile)));
  log(`report: ${path.relative(root, mdFile)}${svg ? `, chart: bench/results/${svgName}` : ''}, raw: ${path.relative(root, rawFile)}`);
  return mdFile;
}

/** --from-raw: summarise the runs of a raw file again and rewrite its report and chart. */
function rerender(root: string, rawFile: string): void {
  const raw = JSON.parse(fs.readFileSync(rawFile, 'utf8')) as RawFile;
  const outcomes = raw.outcomes.map((o) => {
    if (o.notAvailable) return o;
    const rows = scenarioRows(o.scenario, o.contenders, raw.runs, raw.settings.loadgens);
    return { ...o, rows, featurePairs: featurePairs(o.scenario, raw.runs, raw.settings.loadgens), basePairs: basePairs(o.scenario, raw.runs, raw.settings.loadgens), nginxPairs: nginxPairs(o.scenario, raw.runs, rows) };
  });
  // Files from before `name` was stored: the name is in the file name (DATE-NAME-HHMMSS.json).
  const name = raw.name ?? path.basename(rawFile, '.json').slice(11).replace(/-\d{6}$/, '');
  writeReport(root, { ...raw, name, outcomes }, rawFile);
}

function reportName(opts: Options): string {
  const base = opts.name ?? (opts.scenarios.length === 1 ? (opts.scenarios[0] as string) : 'suite');
  return opts.quick && opts.name === null ? `${base}-quick` : base;
}

async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const opts = parsed;
  const root = repoRoot();
  if (opts.fromRaw) {
    rerender(root, path.resolve(opts.fromRaw));
    return 0;
  }
  for (const rel of ['dist/bench/baselines/node-proxy.js', 'dist/bench/loadgen/autocannon-child.js', 'dist/bench/upstream/uws-upstream.js']) {
    if (!fs.existsSync(path.join(root, rel))) throw new Error(`${rel} is missing: run \`npm run build\` first (scripts/bench.sh does)`);
  }
  const wrk = hasCommand('wrk');
  const loadgens = opts.loadgens ?? (wrk && opts.rate === null ? ['autocannon', 'wrk'] : ['autocannon']);
  if (loadgens.includes('wrk') && !wrk) throw new Error('wrk is not installed (apt-get install -y wrk)');
  const nCpus = os.cpus().length;
  const allCpus = nCpus > 1 ? `0-${nCpus - 1}` : '0';
  if (nCpus < 2) log('warning: one CPU only: proxy, load generator and upstream share it');

  const sys = collectSystemInfo(root);
  // What the machine does without us: a busy machine makes every figure below noisier.
  const idle0 = readCpuTimes();
  await sleep(2000);
  const backgroundBusy = cpuBusyPercent(idle0, readCpuTimes());
  log(`background CPU busy before the run: ${Object.entries(backgroundBusy).map(([c, v]) => `cpu${c} ${v.toFixed(0)}%`).join(', ')}`);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  const scenarios = opts.scenarios.map((n) => SCENARIOS[n]);
  const hostCount = Math.max(1, ...scenarios.map((s) => s.upstreamHosts));
  log(`work dir ${workDir}; scenarios ${opts.scenarios.join(', ')}; contenders ${opts.contenders.join(', ')}; load generators ${loadgens.join(', ')}`);

  // The local Kafka broker (scripts/bench.sh starts it) stands in for a remote cluster: it
  // runs beside the load generator and the upstream, off the proxy's CPU, where its threads
  // would otherwise take turns with the proxy and the producer process they measure.
  const kafkaPid = Number(process.env.BENCH_KAFKA_PID ?? '');
  unpinKafka =
    Number.isInteger(kafkaPid) && kafkaPid > 0 && scenarios.some((s) => s.name.startsWith('kafka-')) ? pinRunningProcess(kafkaPid, opts.loadCpus) : null;
  const brokerPinned = unpinKafka !== null;
  if (brokerPinned) log(`Kafka broker (pid ${kafkaPid}) pinned to CPU ${opts.loadCpus} for the run`);

  const runs: RunRecord[] = [];
  const outcomes: ScenarioOutcome[] = [];
  const upstream = await startUpstream(opts.upstream, { root, workDir: path.join(workDir, 'upstream'), cpus: opts.loadCpus, hostCount });
  live.add(upstream);
  const env: Env = { root, workDir, opts, loadgens, upstream, allCpus };
  try {
    for (const s of scenarios) {
      if (!upstream.alive()) throw new Error(`the upstream died; see ${upstream.logFile}`);
      outcomes.push(await runScenario(env, s, runs));
    }
  } finally {
    await stopAll();
    unpinKafka?.();
    unpinKafka = null;
  }

  const command = process.env.BENCH_COMMAND ?? `node ${path.relative(root, process.argv[1] ?? 'dist/bench/runner.js')} ${process.argv.slice(2).join(' ')}`.trim();
  const settings: BenchSettings = {
    command,
    quick: opts.quick,
    rounds: opts.rounds,
    durationSec: opts.durationSec,
    warmupSec: opts.warmupSec,
    loadgens,
    upstream: `${opts.upstream === 'nginx' ? 'nginx (1 worker, static config)' : 'uWebSockets.js (1 thread)'} on CPU ${opts.loadCpus}, ${hostCount} port(s)`,
    proxyCpus: opts.proxyCpus,
    loadCpus: opts.loadCpus,
    allCpus,
    quietWaitSec: opts.quietWaitSec,
    retryNoisy: opts.retryNoisy,
    ...(opts.rate === null ? {} : { rate: opts.rate }),
    backgroundBusy,
    ...(brokerPinned ? { kafkaBrokerCpus: opts.loadCpus } : {}),
  };
  const name = reportName(opts);
  const rawDir = path.join(root, 'bench', 'results', 'raw');
  fs.mkdirSync(rawDir, { recursive: true });
  const rawFile = path.join(rawDir, `${sys.date.slice(0, 10)}-${name}-${sys.date.slice(11, 19).replace(/:/g, '')}.json`);
  const raw = { name, system: sys, settings, outcomes, runs };
  fs.writeFileSync(rawFile, `${JSON.stringify(raw, null, 2)}\n`);
  writeReport(root, raw, rawFile);

  if (opts.keepWork) log(`work dir kept: ${workDir}`);
  else fs.rmSync(workDir, { recursive: true, force: true });
  return 0;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: stopping everything the bench started`);
    void stopAll().then(() => {
      killAllSpawned();
      unpinKafka?.();
      process.exit(130);
    });
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (e: unknown) => {
    log(`error: ${(e as Error).message}`);
    await stopAll();
    killAllSpawned();
    process.exitCode = 1;
  },
);
