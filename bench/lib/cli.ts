/** Command-line options of the bench runner (scripts/bench.sh passes its arguments through). */
import { CONTENDERS, DEFAULT_CONTENDERS, QUICK_CONTENDERS } from '../contenders';
import { LOADGEN_NAMES, type LoadGenName } from '../loadgen/types';
import { SCENARIO_NAMES, isScenarioName, type ScenarioName } from '../scenarios';
import type { UpstreamKind } from '../upstream';
import { NOISY_OTHER_PCT, QUIET_PCT } from './noise';


export interface Options {
  quick: boolean;
  scenarios: ScenarioName[];
  contenders: string[];
  rounds: number;
  durationSec: number;
  warmupSec: number;
  loadgens: LoadGenName[] | null;
  upstream: UpstreamKind;
  proxyCpus: string;
  loadCpus: string;
  name: string | null;
  keepWork: boolean;
  /** Longest wait (s) for the machine to be quiet before each run; 0: do not wait. */
  quietWaitSec: number;
  /** Measure a run again (at most this many times) when other processes competed in it. */
  retryNoisy: number;
  /** Rewrite the report and chart of this raw JSON file instead of running anything. */
  fromRaw: string | null;
  /** Fixed request rate (req/s over all connections; autocannon only); null: as fast as it goes. */
  rate: number | null;
}

export const USAGE = `Usage: scripts/bench.sh [options]   (or: node dist/bench/runner.js [options])

  --quick                 short run: small-get only, 2 rounds of 4 s, 1 s warm-up (< 3 min)
  --scenario NAME[,NAME]  scenarios to run (repeatable; "all" = every one). Default: all
                          (quick: small-get). Known: ${SCENARIO_NAMES.join(', ')}
  --contenders a,b,c      default: ${DEFAULT_CONTENDERS.join(',')}
                          (quick: ${QUICK_CONTENDERS.join(',')})
                          known: ${CONTENDERS.map((c) => c.name).join(', ')}
  --rounds N              interleaved rounds per row (default 3; quick 2)
  --duration S            seconds per run (default 10; quick 4)
  --warmup S              warm-up seconds per contender before the rounds (default 3; quick 1)
  --loadgens a,b          ${LOADGEN_NAMES.join(',')} (default: both, wrk only when installed)
  --rate R                fixed load of R req/s (autocannon only): every contender does the
                          same work per second, so CPU per request compares without the
                          batching differences of saturation (use for feature-cost A/B runs)
  --upstream nginx|uws    the upstream server (default nginx; see bench/README.md)
  --proxy-cpus LIST       taskset list for proxy contenders (default 0)
  --load-cpus LIST        taskset list for load generator and upstream (default 1)
  --name NAME             report name (default: the scenario, or "suite"; "-quick" added)
  --quiet-wait S          before each run, wait up to S seconds for every CPU to be under
                          ${QUIET_PCT}% busy (default 20; quick 0 = do not wait)
  --retry-noisy N         measure a run again, up to N times, when other processes used more
                          than ${NOISY_OTHER_PCT}% of a CPU during it (default 2; quick 0)
  --keep-work             keep the temp dir with configs and logs
  --from-raw FILE         rewrite the report and chart of a raw JSON file; runs nothing
  --help`;

function positive(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number, got ${v ?? 'nothing'}`);
  return n;
}

export function parseArgs(argv: readonly string[]): Options | 'help' {
  const o: Options = {
    quick: false,
    scenarios: [],
    contenders: [],
    rounds: 0,
    durationSec: 0,
    warmupSec: -1,
    loadgens: null,
    upstream: 'nginx',
    proxyCpus: '0',
    loadCpus: '1',
    name: null,
    keepWork: false,
    quietWaitSec: -1,
    fromRaw: null,
    retryNoisy: -1,
    rate: null,
  };
  const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--quick':
        o.quick = true;
        break;
      case '--scenario':
      case '--scenarios':
        for (const s of list(value())) {
          if (s === 'all') o.scenarios.push(...SCENARIO_NAMES);
          else if (isScenarioName(s)) o.scenarios.push(s);
          else throw new Error(`unknown scenario ${s} (known: ${SCENARIO_NAMES.join(', ')})`);
        }
        break;
      case '--contenders':
        for (const c of list(value())) {
          if (!CONTENDERS.some((k) => k.name === c)) throw new Error(`unknown contender ${c} (known: ${CONTENDERS.map((k) => k.name).join(', ')})`);
          o.contenders.push(c);
        }
        break;
      case '--rounds':
        o.rounds = Math.round(positive(flag, value()));
        break;
      case '--duration':
        o.durationSec = Math.round(positive(flag, value()));
        break;
      case '--warmup': {
        const v = Number(value());
        if (!Number.isFinite(v) || v < 0) throw new Error('--warmup needs a number ≥ 0');
        o.warmupSec = Math.round(v);
        break;
      }
      case '--loadgens':
        o.loadgens = list(value()).map((l) => {
          if (!(LOADGEN_NAMES as readonly string[]).includes(l)) throw new Error(`unknown load generator ${l}`);
          return l as LoadGenName;
        });
        break;
      case '--upstream': {
        const v = value();
        if (v !== 'nginx' && v !== 'uws') throw new Error('--upstream is nginx or uws');
        o.upstream = v;
        break;
      }
      case '--proxy-cpus':
        o.proxyCpus = value();
        break;
      case '--load-cpus':
        o.loadCpus = value();
        break;
      case '--name':
        o.name = value().replace(/[^A-Za-z0-9._-]/g, '-');
        break;
      case '--quiet-wait': {
        const v = Number(value());
        if (!Number.isFinite(v) || v < 0) throw new Error('--quiet-wait needs a number ≥ 0');
        o.quietWaitSec = v;
        break;
      }
      case '--retry-noisy':
        o.retryNoisy = Math.round(Number(value()));
        if (!Number.isFinite(o.retryNoisy) || o.retryNoisy < 0) throw new Error('--retry-noisy needs a number ≥ 0');
        break;
      case '--rate':
        o.rate = Math.round(positive(flag, value()));
        break;
      case '--from-raw':
        o.fromRaw = value();
        break;
      case '--keep-work':
        o.keepWork = true;
        break;
      case '--help':
      case '-h':
        return 'help';
      default:
        throw new Error(`unknown option ${arg}\n\n${USAGE}`);
    }
  }
  if (o.scenarios.length === 0) o.scenarios = o.quick ? ['small-get'] : [...SCENARIO_NAMES];
  o.scenarios = [...new Set(o.scenarios)];
  if (o.contenders.length === 0) o.contenders = o.quick ? [...QUICK_CONTENDERS] : [...DEFAULT_CONTENDERS];
  o.contenders = [...new Set(o.contenders)];
  if (o.rounds === 0) o.rounds = o.quick ? 2 : 3;
  if (o.durationSec === 0) o.durationSec = o.quick ? 4 : 10;
  if (o.warmupSec < 0) o.warmupSec = o.quick ? 1 : 3;
  if (o.quietWaitSec < 0) o.quietWaitSec = o.quick ? 0 : 20;
  if (o.retryNoisy < 0) o.retryNoisy = o.quick ? 0 : 2;
  if (o.rate !== null && o.loadgens?.includes('wrk') === true) throw new Error('--rate needs autocannon: wrk 4 has no fixed-rate mode (--loadgens autocannon)');
  return o;
}
