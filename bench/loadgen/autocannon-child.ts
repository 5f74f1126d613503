/**
 * autocannon, driven programmatically in a process of its own (pinned by the runner to the
 * load CPU), so that the load generator never shares an event loop with anything measured.
 * Input: the path of a file holding a LoadSpec as JSON, in argv[2]. Output on stdout:
 * `START` when the load begins, then one line `RESULT <LoadResult JSON>`.
 *
 * autocannon's own latency histogram holds whole milliseconds; at sub-millisecond latencies
 * that says nothing, so latencies are recorded here in microseconds from its `response`
 * events (responseTime is a fractional millisecond from process.hrtime).
 */
import autocannon from 'autocannon';
import * as fs from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import type { LoadResult, LoadSpec } from './types';

function main(): void {
  const spec = JSON.parse(fs.readFileSync(process.argv[2] ?? '', 'utf8')) as LoadSpec;
  const headers: Record<string, string> = {};
  if (spec.contentType) headers['content-type'] = spec.contentType;
  const opts: autocannon.Options = {
    url: spec.url,
    connections: spec.connections,
    duration: spec.durationSec,
    pipelining: 1,
    timeout: 10,
    method: spec.method,
    headers,
  };
  if (spec.body !== '') opts.body = spec.body;
  if (spec.rate !== undefined) opts.overallRate = spec.rate;
  const vary = spec.varyHeader;
  if (vary) {
    let n = 0;
    opts.requests = [
      {
        setupRequest: (req) => {
          req.headers = { ...req.headers, [vary.name]: `k${n++ % vary.keys}` };
          return req;
        },
      },
    ];
  }

  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  // The runner starts its CPU samples on this line: Node's start-up above is not measured.
  process.stdout.write('START\n');
  const cpuStart = process.cpuUsage();
  const instance = autocannon(opts, (err, result) => {
    if (err) {
      console.error(`autocannon: ${err.message}`);
      process.exit(1);
    }
    const cpu = process.cpuUsage(cpuStart);
    const requests = result['2xx'] + result.non2xx;
    const out: LoadResult = {
      tool: 'autocannon',
      requests,
      durationSec: result.duration,
      rps: result.duration > 0 ? requests / result.duration : 0,
      latencyUs: {
        p50: hist.getValueAtPercentile(50),
        p99: hist.getValueAtPercentile(99),
        max: hist.maxValue,
      },
      errors: result.errors,
      non2xx: result.non2xx,
      statusCounts: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
  });
  instance.on('response', (_client, _status, _bytes, responseTimeMs) => {
    hist.recordValue(Math.max(1, Math.round(responseTimeMs * 1000)));
  });
}

main();
