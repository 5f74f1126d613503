/** The Markdown report: machine, versions, command, one table per scenario, a plain verdict. */
import { NOISY_OTHER_PCT } from '../lib/noise';
import type { SystemInfo } from '../lib/sysinfo';
import { SCENARIOS } from '../scenarios';
import type { BenchSettings, ScenarioOutcome, SummaryRow } from './model';
import { median } from './summarize';

const SATURATED_PCT = 95;
const NOISY_PCT = NOISY_OTHER_PCT;

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtMs(us: number): string {
  if (!Number.isFinite(us)) return '—';
  const ms = us / 1000;
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function fmt(n: number | null, digits: number, suffix = ''): string {
  return n === null || !Number.isFinite(n) ? '—' : `${n.toFixed(digits)}${suffix}`;
}

/** CPU numbers of a taskset list (`0`, `0,1`, `0-3`). */
export function cpuList(spec: string): string[] {
  const out: string[] = [];
  for (const part of spec.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(String(c));
  }
  return out;
}

/**
 * Whether the load side (load generator + upstream) was the limit of a run: together they
 * used nearly all of the load CPUs, or the load CPUs were fully busy without anyone else
 * competing (an all-CPU proxy shares them, so its rows can only be caught the second way).
 */
export function loadSaturated(row: SummaryRow, loadCpus: readonly string[]): boolean {
  if (loadCpus.length === 0) return false;
  const loadSide = (row.loadgenCpuPct ?? 0) + row.upstreamCpuPct;
  if (loadSide >= 0.9 * 100 * loadCpus.length) return true;
  return loadCpus.every((c) => (row.cpuBusy[c] ?? 0) >= SATURATED_PCT) && (row.otherCpuPct ?? 0) <= NOISY_PCT;
}

function noisy(row: SummaryRow): boolean {
  return (row.otherCpuPct ?? 0) > NOISY_PCT;
}

function table(rows: readonly SummaryRow[], settings: BenchSettings): string {
  const cpus = Object.keys(rows[0]?.cpuBusy ?? {}).sort((a, b) => Number(a) - Number(b));
  const loadCpus = cpuList(settings.loadCpus);
  const head = [
    'contender',
    'load gen',
    'req/s',
    'spread',
    'p50 ms',
    'p99 ms',
    'max ms',
    'errors / non-2xx',
    'proxy CPU µs/req',
    'proxy CPU %',
    'peak RSS MiB',
    'req/s vs nginx',
    'CPU/req vs nginx',
    'load gen CPU %',
    `CPU busy % (${cpus.map((c) => `cpu${c}`).join(' / ')}) (of which irq)`,
    'other CPU %',
    'upstream CPU µs/req',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) {
    const ratio = (x: number | null): string => (x === null ? '—' : `${x.toFixed(2)}×${r.vsNginx === 'nginx' || r.vsNginx === null ? '' : ` (${r.vsNginx})`}`);
    const busy =
      cpus.map((c) => (r.cpuBusy[c] ?? 0).toFixed(0)).join(' / ') +
      ` (${cpus.map((c) => (r.cpuIrq[c] ?? 0).toFixed(0)).join(' / ')})` +
      (loadSaturated(r, loadCpus) ? ' ⚠' : '');
    lines.push(
      `| ${[
        r.contender,
        r.loadgen,
        fmtInt(r.rps),
        `±${(r.rpsSpreadPct / 2).toFixed(1)}%`,
        fmtMs(r.p50Us),
        fmtMs(r.p99Us),
        fmtMs(r.maxUs),
        `${r.errors} / ${r.non2xx}`,
        fmt(r.proxyCpuUsPerReq, 1),
        fmt(r.proxyCpuPct, 0),
        fmt(r.peakRssMiB, 1),
        r.contender === r.vsNginx ? '1.00×' : ratio(r.rpsVsNginx),
        r.contender === r.vsNginx ? '1.00×' : ratio(r.cpuVsNginx),
        fmt(r.loadgenCpuPct, 0),
        busy,
        r.otherCpuPct === null ? '—' : `${r.otherCpuPct.toFixed(0)}${r.otherCpuPct > NOISY_PCT ? ' ⚠' : ''}`,
        fmt(r.upstreamCpuUsPerReq, 1),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

const SLUICE_ROWS = ['sluice-1w', 'sluice'];


/**
 * `sluice-1w` (features on) against `sluice-1w-off` (the same config without them), per load
 * generator: the growth of CPU per request measured in the same run, from the medians and
 * from the per-round pairs (the two ran back to back in each round, so a pair shares the
 * machine's condition; the median of the pairs is the steadier figure).
 */
/** `; events dropped: N, undelivered: M` from sluice-1w's counters, when the run has them. */
function dropText(o: ScenarioOutcome): string {
  const k = o.kafkaCounts?.find((c) => c.contender === 'sluice-1w');
  if (k === undefined || (k.eventsProduced === 0 && k.eventsDropped === 0)) return '';
  return `; events dropped: ${fmtInt(k.eventsDropped)}, not delivered: ${fmtInt(k.enqueued - k.delivered)} of ${fmtInt(k.enqueued)}`;
}

/** sluice-1w against sluice-1w-base (another build of Sluice, run in the same rounds). */
export function againstBase(outcomes: readonly ScenarioOutcome[]): string[] {
  const out: string[] = [];
  for (const o of outcomes) {
    for (const now of o.rows.filter((r) => r.contender === 'sluice-1w')) {
      const base = o.rows.find((r) => r.contender === 'sluice-1w-base' && r.loadgen === now.loadgen);
      if (base === undefined || now.proxyCpuUsPerReq === null || base.proxyCpuUsPerReq === null) continue;
      const ratios = o.basePairs?.find((p) => p.loadgen === now.loadgen)?.ratios ?? [];
      const pairText = ratios.length === 0 ? '' : `; per-round pairs: median ${median(ratios).toFixed(3)}× over ${ratios.length} rounds (from ${Math.min(...ratios).toFixed(3)}× to ${Math.max(...ratios).toFixed(3)}×)`;
      out.push(
        `- **${o.scenario}** (${now.loadgen}): this build ${fmt(now.proxyCpuUsPerReq, 2)} µs CPU per request, the base build ${fmt(base.proxyCpuUsPerReq, 2)} ` +
          `(medians: ${(now.proxyCpuUsPerReq / base.proxyCpuUsPerReq).toFixed(3)}×)${pairText}; ${fmtInt(now.rps)} vs ${fmtInt(base.rps)} req/s.`,
      );
    }
  }
  return out;
}

export function featureCost(outcomes: readonly ScenarioOutcome[]): string[] {
  const out: string[] = [];
  const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
  for (const o of outcomes) {
    for (const on of o.rows.filter((r) => r.contender === 'sluice-1w')) {
      const off = o.rows.find((r) => r.contender === 'sluice-1w-off' && r.loadgen === on.loadgen);
      if (off === undefined || on.proxyCpuUsPerReq === null || off.proxyCpuUsPerReq === null) continue;
      const growth = on.proxyCpuUsPerReq / off.proxyCpuUsPerReq - 1;
      const ratios = o.featurePairs?.find((p) => p.loadgen === on.loadgen)?.ratios ?? [];
      const paired = ratios.length > 0 ? median(ratios) - 1 : null;
      const judged = paired ?? growth;
      const features = SCENARIOS[o.scenario].features;
      const budget = features?.budget ?? 0.05;
      const verdictText = judged <= budget ? 'within' : '**over**';
      const pairText =
        paired === null
          ? ''
          : `; per-round pairs: median ${pct(paired)} over ${ratios.length} rounds (from ${pct(Math.min(...ratios) - 1)} to ${pct(Math.max(...ratios) - 1)})`;
      out.push(
        `- **${o.scenario}** (${on.loadgen}; ${features?.what ?? 'features'}): ${fmt(on.proxyCpuUsPerReq, 1)} µs CPU per request with the features vs ${fmt(off.proxyCpuUsPerReq, 1)} without ` +
          `(medians: ${pct(growth)})${pairText}: ${verdictText} the ${budget * 100} % budget; ${fmtInt(on.rps)} vs ${fmtInt(off.rps)} req/s${dropText(o)}.`,
      );
    }
  }
  return out;
}

/** Kafka scenarios: what each Sluice counted, warm-up included, once its records settled. */
export function kafkaCountLines(o: ScenarioOutcome): string[] {
  const counts = (o.kafkaCounts ?? []).filter((k) => k.enqueued > 0 || k.eventsProduced > 0 || k.eventsDropped > 0);
  if (counts.length === 0) return [];
  return [
    "Kafka records, from each Sluice's `/metrics` after the last round (warm-up included), once every record its links took had an outcome or 10 s passed:",
    ...counts.map((k) => {
      const unsettled = k.enqueued - k.delivered - k.failed - k.unknown;
      const events = k.eventsProduced > 0 || k.eventsDropped > 0 ? `events ${fmtInt(k.eventsProduced)} produced, ${fmtInt(k.eventsDropped)} dropped; ` : '';
      return (
        `- ${k.contender}: ${events}link records ${fmtInt(k.enqueued)} taken, ${fmtInt(k.delivered)} delivered, ${fmtInt(k.failed)} failed, ` +
        `${fmtInt(k.unknown)} unknown, ${fmtInt(k.refused)} refused${unsettled > 0 ? `, ${fmtInt(unsettled)} still in flight` : ''}.`
      );
    }),
  ];
}

/**
 * `; per-round pairs: median R× (from A× to B×, N rounds)` for a row with at least two rounds
 * paired with its nginx row, else ''. Pairs cancel the slow drift of a shared machine that
 * the medians of each row keep.
 */
export function pairsText(o: ScenarioOutcome, r: SummaryRow): string {
  const ratios = o.nginxPairs?.find((p) => p.contender === r.contender && p.loadgen === r.loadgen)?.ratios ?? [];
  if (ratios.length < 2) return '';
  return `; per-round pairs: median ${median(ratios).toFixed(2)}× (from ${Math.min(...ratios).toFixed(2)}× to ${Math.max(...ratios).toFixed(2)}×, ${ratios.length} rounds)`;
}

/** The plain statement: where Sluice is behind nginx, row by row, or why it cannot be said. */
export function verdict(outcomes: readonly ScenarioOutcome[], settings: BenchSettings): string[] {
  const out: string[] = [];
  const loadCpus = cpuList(settings.loadCpus);
  for (const o of outcomes) {
    if (o.notAvailable) continue;
    for (const name of SLUICE_ROWS) {
      const st = o.contenders.find((c) => c.name === name);
      if (!st || st.state === 'not-in-scenario') continue;
      if (st.state === 'failed') {
        out.push(`- **${o.scenario}**, ${name}: did not run (${(st.error ?? 'unknown error').split('\n')[0]}); nothing to compare.`);
        continue;
      }
      for (const r of o.rows.filter((x) => x.contender === name)) {
        const ref = o.rows.find((x) => x.contender === r.vsNginx && x.loadgen === r.loadgen);
        if (!ref) {
          out.push(`- **${o.scenario}**, ${name} (${r.loadgen}): no nginx row in this run to compare with.`);
          continue;
        }
        const behind: string[] = [];
        const ahead: string[] = [];
        const rpsRatio = r.rpsVsNginx ?? 1;
        const rpsText = `${fmtInt(r.rps)} vs ${fmtInt(ref.rps)} req/s (${rpsRatio.toFixed(2)}×)`;
        (rpsRatio < 0.97 ? behind : ahead).push(rpsText);
        if (r.cpuVsNginx !== null) {
          const t = `${fmt(r.proxyCpuUsPerReq, 1)} vs ${fmt(ref.proxyCpuUsPerReq, 1)} µs CPU per request (${r.cpuVsNginx.toFixed(2)}×${pairsText(o, r)})`;
          (r.cpuVsNginx > 1.03 ? behind : ahead).push(t);
        }
        const p99Ratio = ref.p99Us > 0 ? r.p99Us / ref.p99Us : 1;
        if (p99Ratio > 1.1) behind.push(`p99 ${fmtMs(r.p99Us)} vs ${fmtMs(ref.p99Us)} ms`);
        if (r.peakRssMiB !== null && ref.peakRssMiB !== null && r.peakRssMiB > ref.peakRssMiB * 1.1) {
          behind.push(`peak RSS ${r.peakRssMiB.toFixed(0)} vs ${ref.peakRssMiB.toFixed(0)} MiB`);
        }
        if (r.errors + r.non2xx > ref.errors + ref.non2xx) behind.push(`${r.errors} errors / ${r.non2xx} non-2xx vs ${ref.errors} / ${ref.non2xx}`);
        const against = r.vsNginx === 'nginx' && r.pinning === 'all' ? 'nginx (1 worker, 1 CPU: not a like-for-like pair)' : (r.vsNginx ?? 'nginx');
        const caveats: string[] = [];
        if (loadSaturated(r, loadCpus) && loadSaturated(ref, loadCpus)) caveats.push('the load side was the limit in both runs, so compare CPU per request rather than req/s');
        if (noisy(r) || noisy(ref)) caveats.push(`noisy: other processes used ${fmt(r.otherCpuPct, 0)}% / ${fmt(ref.otherCpuPct, 0)}% of a CPU`);
        const capped = caveats.length > 0 ? ` (${caveats.join('; ')})` : '';
        out.push(
          behind.length > 0
            ? `- **${o.scenario}**, ${name} vs ${against} (${r.loadgen}): **behind** on ${behind.join('; ')}${ahead.length > 0 ? `; not behind on ${ahead.join('; ')}` : ''}${capped}.`
            : `- **${o.scenario}**, ${name} vs ${against} (${r.loadgen}): not behind (${ahead.join('; ')})${capped}.`,
        );
      }
    }
  }
  if (out.length === 0) out.push('- Sluice was not part of this run, so nothing can be said about it.');
  return out;
}

export function renderMarkdown(
  name: string,
  sys: SystemInfo,
  settings: BenchSettings,
  outcomes: readonly ScenarioOutcome[],
  svgFile: string | null,
  rawFile: string,
): string {
  const md: string[] = [];
  md.push(`# Sluice bench: ${name}, ${sys.date.slice(0, 10)}`, '');
  md.push('```', settings.command, '```', '');
  md.push('## Machine and software', '');
  md.push(`- Date: ${sys.date}; host ${sys.hostname}; git ${sys.git}`);
  md.push(`- CPUs: nproc ${sys.nproc}; ${sys.lscpu || sys.cpuModel}`);
  md.push(`- Kernel: ${sys.uname}; memory ${sys.memTotal}`);
  md.push(`- Versions: ${Object.entries(sys.versions).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  md.push('');
  md.push('## Settings', '');
  md.push(`- ${settings.rounds} rounds per row, interleaved (every contender once per round, in table order in odd rounds and in reverse order in even ones); each run ${settings.durationSec} s after a ${settings.warmupSec} s warm-up per contender. Figures are medians over the rounds; errors and non-2xx are summed; peak RSS is the largest per-run peak.`);
  md.push(`- Load generators: ${settings.loadgens.join(', ')} (one process each, no pipelining). Upstream: ${settings.upstream}.`);
  if (settings.rate !== undefined) {
    md.push(`- Fixed load: ${settings.rate.toLocaleString('en-US')} req/s in every run (autocannon \`overallRate\`), so every contender does the same work per second; req/s only shows whether it kept up, and CPU per request compares at equal load.`);
  }
  const bg = Object.entries(settings.backgroundBusy).map(([c, v]) => `cpu${c} ${v.toFixed(0)}%`).join(', ');
  const bgBusy = Object.values(settings.backgroundBusy).some((v) => v > NOISY_PCT);
  md.push(`- Background load measured for 2 s before the run: ${bg}${bgBusy ? ' ⚠ the machine was not idle: expect noise' : ''}.`);
  md.push(
    settings.quietWaitSec > 0
      ? `- Before each run the bench waited (up to ${settings.quietWaitSec} s) for every CPU to be nearly idle; "other CPU %" shows what still competed during the run.`
      : '- The bench did not wait for a quiet machine between runs (`--quiet-wait 0`); "other CPU %" shows what competed during each run.',
  );
  if (settings.retryNoisy) md.push(`- A run during which other processes used more than ${NOISY_PCT}% of a CPU was measured again, up to ${settings.retryNoisy} times; the last attempt counts.`);
  md.push(`- Pinning: proxy contenders on CPU ${settings.proxyCpus}; load generator and upstream on CPU ${settings.loadCpus}; the "all workers" contenders (\`sluice\`, \`nginx-all\`) on CPUs ${settings.allCpus}, where they share the load CPU with the load generator and the upstream.${settings.kafkaBrokerCpus === undefined ? '' : ` The local Kafka broker (it stands in for a remote cluster) on CPU ${settings.kafkaBrokerCpus} too, off the proxy's CPU.`}`);
  md.push('');
  for (const o of outcomes) {
    md.push(`## ${o.scenario}: ${o.title}`, '');
    if (o.notAvailable) {
      md.push(`Not yet available: ${o.notAvailable}`, '');
      continue;
    }
    if (o.note) md.push(o.note, '');
    md.push(o.rows.length > 0 ? table(o.rows, settings) : 'No contender produced a result.', '');
    const notRun = o.contenders.filter((c) => c.state !== 'ran');
    for (const c of notRun) {
      if (c.state !== 'failed') {
        md.push(`- ${c.name} does not take part in this scenario.`);
        continue;
      }
      const [first, ...rest] = (c.error ?? 'unknown error').split('\n');
      md.push(`- **${c.name} failed**: ${first}`);
      if (rest.length > 0) md.push('  <details><summary>log</summary>', '', '  ```', ...rest.map((l) => `  ${l}`), '  ```', '', '  </details>');
    }
    const statusNotes = o.rows
      .filter((r) => Object.keys(r.non2xxByStatus).length > 0)
      .map((r) => `- ${r.contender} (${r.loadgen}) non-2xx by status: ${Object.entries(r.non2xxByStatus).map(([code, n]) => `${code} × ${n}`).join(', ')}`);
    md.push(...statusNotes);
    const errorNotes = (o.runErrors ?? []).map((e) => `- ${e.contender} (${e.loadgen}), round ${e.round}: ${e.error.split('\n')[0]}`);
    md.push(...errorNotes);
    if (notRun.length > 0 || statusNotes.length > 0 || errorNotes.length > 0) md.push('');
    const kafka = kafkaCountLines(o);
    if (kafka.length > 0) md.push(...kafka, '');
    md.push('<details><summary>Contenders</summary>', '');
    for (const c of o.contenders.filter((x) => x.state !== 'not-in-scenario')) md.push(`- \`${c.name}\` (CPUs ${c.cpus || 'none'}): ${c.description}`);
    md.push('', '</details>', '');
  }
  md.push('## Where Sluice is behind nginx', '');
  md.push(...verdict(outcomes, settings), '');
  const base = againstBase(outcomes);
  if (base.length > 0) md.push('## Against the base build (`sluice-1w-base`)', '', ...base, '');
  const cost = featureCost(outcomes);
  if (cost.length > 0) md.push('## What Sluice\'s features cost', '', ...cost, '');
  md.push('## Reading the table', '');
  md.push(
    '- **req/s**: completed responses per second; **spread**: half the range of req/s over the rounds, relative to the median.',
    '- **p50 / p99 / max**: latency seen by the load generator (autocannon: recorded in µs by the bench from autocannon\'s per-response timings; wrk: its own histogram).',
    '- **errors / non-2xx**: connection errors, resets and timeouts / responses that were not 2xx (wrk counts only statuses ≥ 400 in its summary).',
    '- **proxy CPU µs/req**: user + system CPU time of the proxy\'s whole process tree (all threads, child processes included) during the run, divided by the responses. **proxy CPU %** is the same time over wall time (100 = one CPU).',
    '- **peak RSS**: VmHWM summed over the proxy\'s processes, reset before each run (`clear_refs`), so it is the peak of a run and not of start-up.',
    '- **vs nginx**: ratio to the nginx row of the same load generator (all-CPU rows against `nginx-all` when it ran). Higher req/s is better, lower CPU/req is better.',
    `- **load gen CPU %** and **CPU busy %**: where the time went. ⚠ marks a run where the load side was the limit: load generator + upstream used ≥ 90% of the load CPU (${settings.loadCpus}), or it was ≥ ${SATURATED_PCT}% busy with nothing else competing. req/s then says more about the load side than about the proxy; CPU per request still compares proxies.`,
    '- **(of which irq)**: hard and soft interrupt time per CPU. The kernel charges it to no process, so it is not in any CPU-per-request figure; on loopback it is mostly the network stack working on packets sent from that CPU (on the proxy CPU: the proxy\'s own writes).',
    `- **other CPU %**: process CPU time during the run not spent by the proxy, the upstream or the load generator (other processes on the machine), as % of one CPU. ⚠ above ${NOISY_PCT}%: something else competed for the CPUs; read that row with care.`,
    '- **upstream CPU µs/req**: what the upstream spent per response; it shares the load CPU, so a cheaper upstream leaves more room for the load generator.',
    '',
  );
  if (svgFile) md.push(`Chart: [${svgFile}](${svgFile})`, '');
  md.push(`Raw per-run data: \`${rawFile}\` (not committed).`, '');
  return `${md.join('\n')}\n`;
}
