/**
 * Micro-benchmark: what rate limiting and circuit breakers add to one proxied request, in CPU
 * ns, measured on the real code paths (RateLimitPhase over a shared table with 10,000 keys;
 * the balancer pick with and without shared host state and a breaker; the breaker's verdict
 * in HostJudgePhase). The bench suite's `rate-limit` scenario measures the same on the whole
 * proxy, where the difference drowns in run-to-run noise on a shared 2-vCPU VM; this one
 * says how big it can be.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/micro/resilience.js [--write] [--quick] [--proxy-us N]
 *
 * --proxy-us gives the proxy's measured CPU per request (default 50 µs) for the share column.
 */
import { buildConfig, hostKey } from '../../src/shared/config';
import { allocHostState, HostStateTable } from '../../src/shared/host-state';
import { createLogger } from '../../src/shared/log';
import type { Peer, Session } from '../../src/workers/http/session';
import { allocRateLimitTable, RateLimitTable } from '../../src/shared/rate-limit';
import type { RequestCtx } from '../../src/workers/http/context';
import { HostJudgePhase } from '../../src/workers/http/phases/host-judge';
import { RateLimitPhase } from '../../src/workers/http/phases/rate-limit';
import { Upstreams } from '../../src/workers/http/upstream/upstreams';
import { measure, reportCost } from './timing';

const quick = process.argv.includes('--quick');
const proxyArg = process.argv.indexOf('--proxy-us');
const proxyUs = proxyArg === -1 ? 50 : Number(process.argv[proxyArg + 1]);
const KEYS = 10000;

const raw = {
  upstreams: {
    plain: { hosts: [{ address: '127.0.0.1:9001' }] },
    guarded: { hosts: [{ address: '127.0.0.1:9001' }], breaker: {} },
  },
  routes: [{ name: 'all', action: { type: 'proxy', upstream: 'guarded' }, rateLimit: { key: 'header:x-user-id', rate: 1000000, burst: 1000000 } }],
};
const config = buildConfig(raw);
const hostState = new HostStateTable(allocHostState(16));
const slots = { [hostKey('plain', '127.0.0.1:9001')]: 0, [hostKey('guarded', '127.0.0.1:9001')]: 1 };
const upstreams = Upstreams.build(config, null, hostState, slots);
const plain = upstreams.groups.get('plain');
const guarded = upstreams.groups.get('guarded');
if (plain === undefined || guarded === undefined || guarded.state === null || plain.state !== null) throw new Error('bench setup: groups');
const limiter = new RateLimitPhase(config.routes, new RateLimitTable(allocRateLimitTable(65536)));
const judge = new HostJudgePhase(createLogger('error', {}));

const sessions: Session[] = Array.from(
  { length: KEYS },
  (_, i) => ({ headers: ['host', 'bench', 'x-user-id', `k${i}`], clientAddress: '127.0.0.1', flags: [] as string[] }) as unknown as Session,
);
const ctx = {
  route: { index: 0, name: 'all' },
  rateLimitRemaining: -1,
  group: guarded,
  groupHost: null,
  breakerProbe: false,
  holdsActive: false,
} as unknown as RequestCtx;
const peer: Peer = { group: 'guarded', host: '127.0.0.1:9001' };
const NONE: readonly string[] = [];
let k = 0;

const rateLimit = (): number => {
  const s = sessions[k++ % KEYS] as Session;
  return limiter.requestFilter(s, ctx) ? 1 : 0;
};
const pickPlain = (): number => {
  const s = sessions[k++ % KEYS] as Session;
  return plain.pick(NONE, s, ctx)?.slot ?? 0;
};
const pickGuarded = (): number => {
  const s = sessions[k++ % KEYS] as Session;
  const h = guarded.pick(NONE, s, ctx);
  ctx.groupHost = h;
  judge.attemptDone(s, peer, 200, null, ctx);
  return h?.slot ?? 0;
};

interface Row {
  what: string;
  ns: number;
}
const [rl = 0, base = 0, guardedNs = 0] = measure([rateLimit, pickPlain, pickGuarded], 1, quick);
const rows: Row[] = [
  { what: 'rate limit: key from a header, token taken from the shared table (10,000 keys)', ns: rl },
  { what: 'balancer pick, no shared state (the path without the features)', ns: base },
  { what: 'balancer pick + breaker admit + breaker verdict (attemptDone), shared state', ns: guardedNs },
];
const added = rl + (guardedNs - base);
const lines = [
  '| operation | ns per request |',
  '| --- | ---: |',
  ...rows.map((r) => `| ${r.what} | ${r.ns.toFixed(0)} |`),
  `| **added by rate limiting + breaker** (first row + third − second) | **${added.toFixed(0)}** |`,
];
const share = `That is ${((added / (proxyUs * 1000)) * 100).toFixed(2)} % of a proxied request at ${proxyUs} µs of CPU (the budget is 5 %).`;
reportCost({
  name: 'resilience',
  title: 'Micro-benchmark: the per-request cost of rate limiting and circuit breakers',
  command: `node dist/bench/micro/resilience.js --write --proxy-us ${proxyUs}`,
  method: [
    'CPU nanoseconds per request, fastest of 15 interleaved timed runs after warm-up, on the real',
    'code: `RateLimitPhase.requestFilter` over a 65,536-bucket shared table with 10,000 distinct',
    'keys (a policy the load never reaches: the check, not the rejection), and the balancer pick of',
    'a group with and without shared host state and a breaker, the former followed by',
    '`HostJudgePhase.attemptDone` (the verdict that feeds the breaker).',
  ],
  lines,
  share,
});
