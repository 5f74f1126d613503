/**
 * Micro-benchmark: what metrics recording adds to one proxied request, in CPU ns, on the real
 * code path (MetricsPhase.logging → MetricsRecorder.record: status-class counter, flags,
 * latency slot in the route's hdr-layout histogram, body bytes). The bench suite's small-get
 * scenario measures the same on the whole proxy (`sluice-1w` against `sluice-1w-off`, which
 * runs without the admin listener and so without recording), where run-to-run noise on a
 * shared 2-vCPU VM is larger than the effect; this one says how big it can be.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/micro/metrics.js [--write] [--quick] [--proxy-us N]
 */
import { buildConfig } from '../../src/shared/config';
import { MetricsRecorder } from '../../src/shared/metrics';
import type { Session } from '../../src/workers/http/session';
import { MetricsPhase } from '../../src/workers/http/phases/metrics';
import type { RequestCtx } from '../../src/workers/http/context';
import { measure, reportCost } from './timing';

const quick = process.argv.includes('--quick');
const proxyArg = process.argv.indexOf('--proxy-us');
const proxyUs = proxyArg === -1 ? 50 : Number(process.argv[proxyArg + 1]);

const config = buildConfig({
  upstreams: { app: { hosts: [{ address: '127.0.0.1:9001' }] } },
  routes: [
    { name: 'api', match: { path: { prefix: '/api' } }, action: { type: 'proxy', upstream: 'app' } },
    { name: 'all', action: { type: 'proxy', upstream: 'app' } },
  ],
});
const phase = new MetricsPhase(new MetricsRecorder(), config.routes);
const STATUSES = [200, 200, 200, 200, 404, 200, 503, 200];
const sessions: Session[] = Array.from(
  { length: 64 },
  (_, i) =>
    ({
      routeName: i % 3 === 0 ? 'api' : 'all',
      upstreamName: 'app',
      status: STATUSES[i % STATUSES.length],
      flags: i % 16 === 0 ? ['RY'] : [],
      // Latencies spread over 50 µs .. 50 ms, as a proxy's are.
      startedAt: performance.now() - 0.05 * 1.1 ** (i % 72),
      bytesIn: 0,
      bytesOut: 100,
    }) as unknown as Session,
);
const ctx = { group: null } as unknown as RequestCtx;
let k = 0;
const record = (): number => {
  phase.logging(sessions[k++ & 63] as Session, null, ctx);
  return 1;
};
const nothing = (): number => (k++ & 63) + 1;

const [rec = 0, base = 0] = measure([record, nothing], 1, quick);
const added = rec - base;
const lines = [
  '| operation | ns per request |',
  '| --- | ---: |',
  `| MetricsPhase.logging (recorder: counters, flags, latency histogram, bytes) | ${rec.toFixed(0)} |`,
  `| loop overhead (subtracted) | ${base.toFixed(0)} |`,
  `| **added by metrics recording** | **${added.toFixed(0)}** |`,
];
const share = `That is ${((added / (proxyUs * 1000)) * 100).toFixed(2)} % of a proxied request at ${proxyUs} µs of CPU (the budget is 3 %).`;
reportCost({
  name: 'metrics',
  title: 'Micro-benchmark: the per-request cost of metrics recording',
  command: `node dist/bench/micro/metrics.js --write --proxy-us ${proxyUs}`,
  method: [
    'CPU nanoseconds per request, fastest of 15 interleaved timed runs after warm-up, on the real',
    'code: `MetricsPhase.logging` recording 64 different requests (two routes, mixed statuses and',
    'flags, latencies from 50 µs to 50 ms) into one worker recorder.',
  ],
  lines,
  share,
});
