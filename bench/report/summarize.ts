/** From raw runs to report rows: medians over rounds, ratios against nginx. */
import type { LoadGenName } from '../loadgen/types';
import type { RunRecord, SummaryRow } from './model';

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length === 0 ? null : median(v);
}

function non2xxByStatus(runs: readonly RunRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) {
    for (const [code, n] of Object.entries(r.load?.statusCounts ?? {})) {
      if (!code.startsWith('2')) out[code] = (out[code] ?? 0) + n;
    }
  }
  return out;
}

/**
 * One row per (contender, load generator) that has at least one successful run, in the
 * order of `contenders` then `loadgens`. `pinning` maps a contender to its CPU class.
 */
export function summarize(
  runs: readonly RunRecord[],
  contenders: readonly { name: string; pinning: 'proxy' | 'all' | 'none' }[],
  loadgens: readonly LoadGenName[],
): SummaryRow[] {
  type Base = Omit<SummaryRow, 'rpsVsNginx' | 'cpuVsNginx' | 'vsNginx'>;
  const base: Base[] = [];
  for (const c of contenders) {
    for (const lg of loadgens) {
      const mine = runs.filter((r) => r.contender === c.name && r.loadgen === lg);
      const ok = mine.filter((r) => r.load !== null && r.load.requests > 0);
      if (ok.length === 0) continue;
      const rpsList = ok.map((r) => r.load?.rps ?? 0);
      const rps = median(rpsList);
      const perReqUs = (sec: number | null, r: RunRecord): number | null =>
        sec === null || !r.load ? null : (sec * 1e6) / r.load.requests;
      const cpuNames = new Set(ok.flatMap((r) => Object.keys(r.cpuBusy)));
      const cpuBusy: Record<string, number> = {};
      for (const cpu of cpuNames) cpuBusy[cpu] = median(ok.map((r) => r.cpuBusy[cpu] ?? 0));
      const cpuIrq: Record<string, number> = {};
      for (const cpu of cpuNames) cpuIrq[cpu] = median(ok.map((r) => r.cpuIrq?.[cpu] ?? 0));
      const peaks = ok.map((r) => r.proxyPeakRssKb).filter((x): x is number => x !== null);
      base.push({
        contender: c.name,
        loadgen: lg,
        pinning: c.pinning,
        rounds: ok.length,
        rps,
        rpsSpreadPct: rps > 0 ? (100 * (Math.max(...rpsList) - Math.min(...rpsList))) / rps : 0,
        p50Us: median(ok.map((r) => r.load?.latencyUs.p50 ?? NaN)),
        p99Us: median(ok.map((r) => r.load?.latencyUs.p99 ?? NaN)),
        maxUs: median(ok.map((r) => r.load?.latencyUs.max ?? NaN)),
        errors: mine.reduce((a, r) => a + (r.load?.errors ?? 0), 0),
        non2xx: mine.reduce((a, r) => a + (r.load?.non2xx ?? 0), 0),
        proxyCpuUsPerReq: medianOrNull(ok.map((r) => perReqUs(r.proxyCpuSec, r))),
        proxyCpuPct: medianOrNull(ok.map((r) => (r.proxyCpuSec === null ? null : (100 * r.proxyCpuSec) / r.wallSec))),
        peakRssMiB: peaks.length > 0 ? Math.max(...peaks) / 1024 : null,
        upstreamCpuUsPerReq: median(ok.map((r) => perReqUs(r.upstreamCpuSec, r) ?? NaN)),
        upstreamCpuPct: median(ok.map((r) => (100 * r.upstreamCpuSec) / r.wallSec)),
        non2xxByStatus: non2xxByStatus(mine),
        loadgenCpuPct: medianOrNull(ok.map((r) => (r.load?.cpuSeconds == null ? null : (100 * r.load.cpuSeconds) / r.wallSec))),
        cpuBusy,
        cpuIrq,
        otherCpuPct: medianOrNull(ok.map((r) => (r.otherCpuSec === null ? null : (100 * r.otherCpuSec) / r.wallSec))),
      });
    }
  }
  return base.map((row) => {
    // An all-CPU row is compared with the all-CPU nginx when it ran, else with 1-worker nginx.
    const ref =
      (row.pinning === 'all' ? base.find((b) => b.contender === 'nginx-all' && b.loadgen === row.loadgen) : undefined) ??
      base.find((b) => b.contender === 'nginx' && b.loadgen === row.loadgen);
    if (!ref) return { ...row, rpsVsNginx: null, cpuVsNginx: null, vsNginx: null };
    return {
      ...row,
      rpsVsNginx: ref.rps > 0 ? row.rps / ref.rps : null,
      cpuVsNginx:
        row.proxyCpuUsPerReq !== null && ref.proxyCpuUsPerReq !== null && ref.proxyCpuUsPerReq > 0
          ? row.proxyCpuUsPerReq / ref.proxyCpuUsPerReq
          : null,
      vsNginx: ref.contender,
    };
  });
}

/**
 * Per round, CPU per request of contender `a` over that of `b` (same scenario and load
 * generator), for rounds where both ran: paired ratios for an A/B comparison.
 */
export function pairedCpuRatios(runs: readonly RunRecord[], a: string, b: string, loadgen: LoadGenName): number[] {
  const perReq = (r: RunRecord | undefined): number | null =>
    r === undefined || r.proxyCpuSec === null || r.load === null || r.load.requests === 0 ? null : r.proxyCpuSec / r.load.requests;
  const rounds = new Set(runs.map((r) => r.round));
  const out: number[] = [];
  for (const round of [...rounds].sort((x, y) => x - y)) {
    const x = perReq(runs.find((r) => r.contender === a && r.loadgen === loadgen && r.round === round));
    const y = perReq(runs.find((r) => r.contender === b && r.loadgen === loadgen && r.round === round));
    if (x !== null && y !== null && y > 0) out.push(x / y);
  }
  return out;
}

/** Sum of every sample of a Prometheus metric (any labels) in `text`; 0 when absent. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
