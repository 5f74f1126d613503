/**
 * Integration-test helpers for Kafka: a real broker run by scripts/kafka.sh, topics created
 * with the admin client, and a consumer that reads topics back. Nothing here mocks Kafka.
 *
 * The tests use their own broker instance (ports 29092/29093, data dir kafka-data-it) rather
 * than the development broker on 19092: they stop and restart it, which must not disturb a
 * developer's broker or other suites using it.
 */
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AdminClient, KafkaConsumer, type LibrdKafkaError, type Message } from '@confluentinc/kafka-javascript';

export const ROOT = join(__dirname, '..', '..');
const KAFKA_SH = join(ROOT, 'scripts', 'kafka.sh');
const CACHE_DIR = process.env.SLUICE_CACHE_DIR ?? join(homedir(), '.cache', 'sluice');

/** The test broker's scripts/kafka.sh settings. */
export const IT_BROKER_ENV: Readonly<Record<string, string>> = {
  SLUICE_KAFKA_PORT: '29092',
  SLUICE_KAFKA_CONTROLLER_PORT: '29093',
  SLUICE_KAFKA_DATA_DIR: join(CACHE_DIR, 'kafka-data-it'),
};
export const IT_BROKERS = '127.0.0.1:29092';

/** Runs scripts/kafka.sh for the test broker; resolves with its exit code and output. */
export function kafkaSh(args: readonly string[], timeoutMs = 150000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', [KAFKA_SH, ...args], { env: { ...process.env, ...IT_BROKER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const t = setTimeout(() => {
      output += `\n[test] kafka.sh ${args.join(' ')} did not finish within ${timeoutMs} ms; killed\n`;
      p.kill('SIGKILL');
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, output });
    });
  });
}

/** Starts the test broker (idempotent); throws with the script's output when it cannot. */
export async function startBroker(): Promise<void> {
  const r = await kafkaSh(['start']);
  if (r.code !== 0) throw new Error(`scripts/kafka.sh start failed (exit ${r.code}):\n${r.output}`);
}

export async function stopBroker(): Promise<void> {
  const r = await kafkaSh(['stop']);
  if (r.code !== 0) throw new Error(`scripts/kafka.sh stop failed (exit ${r.code}):\n${r.output}`);
}

let topicSeq = 0;
/** A topic name unique to this run. */
export function uniqueTopic(label: string): string {
  return `sluice-it-${Date.now().toString(36)}-${process.pid}-${topicSeq++}-${label}`;
}

export async function createTopic(topic: string, partitions: number): Promise<void> {
  const admin = AdminClient.create({ 'bootstrap.servers': IT_BROKERS, 'client.id': 'sluice-it-admin' });
  try {
    await new Promise<void>((resolve, reject) => {
      admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1 }, 30000, (err: LibrdKafkaError) => (err ? reject(err) : resolve()));
    });
  } finally {
    admin.disconnect();
  }
}

export interface ReadOptions {
  readonly partitions: number;
  readonly isolation?: 'read_committed' | 'read_uncommitted';
  /** Stop once this holds for what was read so far. */
  readonly until: (msgs: readonly Message[]) => boolean;
  readonly timeoutMs?: number;
}

/** Reads `topic` from offset 0 of every partition until `until` holds (or the timeout). */
export async function readTopic(topic: string, opts: ReadOptions): Promise<Message[]> {
  const c = new KafkaConsumer(
    {
      'bootstrap.servers': IT_BROKERS,
      'group.id': `sluice-it-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
      'enable.auto.commit': false,
      'isolation.level': opts.isolation ?? 'read_uncommitted',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => c.connect({ timeout: 20000 }, (err) => (err ? reject(err) : resolve())));
  try {
    c.assign(Array.from({ length: opts.partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
    c.setDefaultConsumeTimeout(200);
    const out: Message[] = [];
    const end = Date.now() + (opts.timeoutMs ?? 30000);
    while (!opts.until(out) && Date.now() < end) {
      const batch = await new Promise<Message[]>((resolve, reject) => c.consume(1000, (err, msgs) => (err ? reject(err) : resolve(msgs))));
      out.push(...batch);
    }
    return out;
  } finally {
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}

/** Polls `pred` every 25 ms; throws `what` after `timeoutMs`. */
export async function waitUntil(pred: () => boolean, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
