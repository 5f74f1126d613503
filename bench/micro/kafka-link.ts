/**
 * Micro-benchmark: records through KafkaLink → producer process → a real broker, with 1 KiB
 * values. Emulates an HTTP worker: each "request" is its own callback (R per event-loop turn,
 * like uWS handlers), producing one record.
 *
 *   bash scripts/kafka.sh start
 *   npx tsc -p tsconfig.json && node dist/bench/micro/kafka-link.js [--brokers 127.0.0.1:19092] [--records 200000] [--quick]
 *
 * Reports, per variant: records/s until the last one is acknowledged, CPU time of the worker
 * side (this process: the bench's request emulation, encoding, socket writes, reports), of the
 * producer process and of the broker (from /proc; `--broker-pid-file`), per record, and for sync records the report latency p50/p99.
 * Variants: link batching (setImmediate vs queueMicrotask), delivery-report polling (librdkafka
 * background thread vs a 50 ms timer), profile (throughput vs latency).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdminClient, type LibrdKafkaError } from '@confluentinc/kafka-javascript';

import { ProducerSupervisor } from '../../src/main/producer-supervisor';
import { buildKafkaConfig, type KafkaConfig } from '../../src/shared/kafka-config';
import type { PollMode } from '../../src/shared/kafka-messages';
import { createLogger } from '../../src/shared/log';
import { KafkaLink } from '../../src/workers/http/kafka/link';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? (process.argv[i + 1] as string) : def;
}

const BROKERS = arg('brokers', '127.0.0.1:19092');
const QUICK = process.argv.includes('--quick');
const NR = Number(arg('records', QUICK ? '50000' : '200000'));
const PER_TURN = 64;
const CLK_TCK = 100;
const BROKER_PID_FILE = arg('broker-pid-file', path.join(process.env.SLUICE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'sluice'), 'kafka-data', 'kafka.pid'));
const brokerPid: number | null = fs.existsSync(BROKER_PID_FILE) ? Number(fs.readFileSync(BROKER_PID_FILE, 'utf8').trim()) : null;

function procCpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function createTopic(topic: string): Promise<void> {
  const admin = AdminClient.create({ 'bootstrap.servers': BROKERS });
  await new Promise<void>((resolve, reject) =>
    admin.createTopic({ topic, num_partitions: 6, replication_factor: 1 }, 30000, (err: LibrdKafkaError) => (err ? reject(err) : resolve())),
  );
  admin.disconnect();
}

interface Variant {
  readonly name: string;
  readonly batch: 'immediate' | 'microtask';
  readonly poll: PollMode;
  readonly profile: 'throughput' | 'latency';
  readonly sync: boolean;
  /** Records in flight at most (sync only; default 2000). 1 = unloaded latency. */
  readonly window?: number;
  readonly records?: number;
}

interface Row {
  readonly variant: Variant;
  readonly recordsPerSec: number;
  readonly workerUsPerRecord: number;
  readonly producerUsPerRecord: number;
  readonly brokerUsPerRecord: number;
  readonly writes: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly refused: number;
  readonly records: number;
}

async function run(v: Variant): Promise<Row> {
  const built = buildKafkaConfig({ brokers: BROKERS, profile: v.profile, statisticsIntervalMs: 0 });
  const cfg = built.config as KafkaConfig;
  const log = createLogger('warn');
  const sup = new ProducerSupervisor({ config: cfg, logger: log, logLevel: 'warn', pollMode: v.poll });
  await sup.start();
  const link = new KafkaLink({ socketPath: sup.socketPath, workerId: 1, socketBufferBytes: cfg.socketBufferBytes, batch: v.batch });
  await link.whenReady(10000);
  const topic = `bench-link-${Date.now()}-${v.name}`;
  await createTopic(topic);
  // Warm-up (connects the client, fetches metadata).
  await new Promise<void>((resolve) => link.produce({ topic, value: 'warm' }, () => resolve()));
  while (!link.brokerUp) await new Promise((r) => setTimeout(r, 20));

  const value = Buffer.alloc(1024, 0x61);
  const rec = { topic, value, key: null as Buffer | null };
  const lat: number[] = [];
  let done = 0;
  let sent = 0;
  let refused = 0;
  const base = link.status();
  // Count socket writes: wrap the link's socket write once connected.
  let writes = 0;
  const sock = (link as unknown as { sock: { write: (b: Buffer) => boolean } }).sock;
  const origWrite = sock.write.bind(sock);
  sock.write = (b: Buffer): boolean => {
    writes++;
    return origWrite(b);
  };

  const pid = sup.pid as number;
  const bcpu0 = brokerPid === null ? 0 : procCpuMs(brokerPid);
  const cpu0 = selfCpuMs();
  const pcpu0 = procCpuMs(pid);
  const t0 = process.hrtime.bigint();
  // In flight: sync records until reported; fire-and-forget until the producer's STATUS
  // counts them (it lags by up to one STATUS interval, so the cap is generous: the producer
  // queue holds 100000).
  const inflightCap = v.sync ? (v.window ?? 2000) : 50000;
  const N = v.records ?? NR;
  await new Promise<void>((resolve) => {
    const onReport = (start: bigint) => (): void => {
      lat.push(Number(process.hrtime.bigint() - start) / 1e6);
      done++;
    };
    let blocked = false;
    const oneRequest = (): void => {
      if (sent >= N || blocked) return;
      const ok = v.sync ? link.produce(rec, onReport(process.hrtime.bigint())) : link.produce(rec);
      if (ok) sent++;
      else {
        refused++; // a real caller drops (or answers 503); the bench waits and tries again
        blocked = true;
      }
    };
    const turn = (): void => {
      const st = link.status();
      const acked = v.sync ? done : st.delivered + st.failed - base.delivered - base.failed;
      if (acked >= N) return resolve();
      blocked = false;
      if (sent < N && sent - acked < inflightCap) {
        // PER_TURN separate callbacks in one loop iteration, as uWS calls handlers.
        for (let i = 0; i < Math.min(PER_TURN, inflightCap); i++) setImmediate(oneRequest);
        setImmediate(turn);
      } else {
        setTimeout(turn, 1); // idle until reports arrive: no spinning
      }
    };
    turn();
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = selfCpuMs() - cpu0;
  const pcpu = procCpuMs(pid) - pcpu0;
  const bcpu = brokerPid === null ? 0 : procCpuMs(brokerPid) - bcpu0;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => (lat.length === 0 ? 0 : (lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] as number));
  await link.close(10000);
  await sup.shutdown();
  const end = link.status();
  if (end.failed - base.failed > 0) console.error(`${v.name}: ${end.failed - base.failed} records failed`);
  return {
    variant: v,
    recordsPerSec: Math.round(N / secs),
    records: N,
    workerUsPerRecord: Math.round(((cpu * 1000) / N) * 100) / 100,
    producerUsPerRecord: Math.round(((pcpu * 1000) / N) * 100) / 100,
    brokerUsPerRecord: Math.round(((bcpu * 1000) / N) * 100) / 100,
    writes,
    p50ms: Math.round(pct(0.5) * 100) / 100,
    p99ms: Math.round(pct(0.99) * 100) / 100,
    refused,
  };
}

async function main(): Promise<void> {
  const variants: Variant[] = [
    { name: 'ff-immediate-bg-throughput', batch: 'immediate', poll: 'background', profile: 'throughput', sync: false },
    { name: 'ff-microtask-bg-throughput', batch: 'microtask', poll: 'background', profile: 'throughput', sync: false },
    { name: 'ff-immediate-interval-throughput', batch: 'immediate', poll: 'interval', profile: 'throughput', sync: false },
    { name: 'ff-immediate-bg-latency', batch: 'immediate', poll: 'background', profile: 'latency', sync: false },
    { name: 'sync-immediate-bg-throughput', batch: 'immediate', poll: 'background', profile: 'throughput', sync: true },
    { name: 'sync-immediate-interval-throughput', batch: 'immediate', poll: 'interval', profile: 'throughput', sync: true },
    { name: 'sync-immediate-bg-latency', batch: 'immediate', poll: 'background', profile: 'latency', sync: true },
    { name: 'sync-immediate-interval-latency', batch: 'immediate', poll: 'interval', profile: 'latency', sync: true },
    { name: 'sync-1-in-flight-bg-throughput', batch: 'immediate', poll: 'background', profile: 'throughput', sync: true, window: 1, records: 500 },
    { name: 'sync-1-in-flight-bg-latency', batch: 'immediate', poll: 'background', profile: 'latency', sync: true, window: 1, records: 2000 },
    { name: 'sync-1-in-flight-interval-latency', batch: 'immediate', poll: 'interval', profile: 'latency', sync: true, window: 1, records: 500 },
  ];
  console.log(`${NR} records of 1 KiB, ${PER_TURN} request callbacks per event-loop turn, broker ${BROKERS}\n`);
  console.log('| variant | records | records/s | worker CPU µs/record | producer CPU µs/record | broker CPU µs/record | socket writes | link refusals | report p50 ms | report p99 ms |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const v of variants) {
    const r = await run(v);
    console.log(
      `| ${v.name} | ${r.records} | ${r.recordsPerSec} | ${r.workerUsPerRecord} | ${r.producerUsPerRecord} | ${brokerPid === null ? '' : r.brokerUsPerRecord} | ${r.writes} | ${r.refused} | ${v.sync ? r.p50ms : ''} | ${v.sync ? r.p99ms : ''} |`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
