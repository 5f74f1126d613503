/**
 * HTTP → Kafka routes end to end (docs/kafka.md): the real Sluice process (two
 * HTTP workers and the producer child process) takes requests on `kafka` routes and produces
 * them to the test broker of test/kafka-helpers.ts; a KafkaConsumer reads every record back
 * at the partition/offset Sluice reported. Formats raw / NDJSON / JSON array, keys from a
 * header, a path parameter and a JSON field (placed by the consistent-hash partitioner),
 * Kafka headers (request id, selected headers, never Authorization), sync and async modes,
 * `Prefer: respond-async`, 400 and 413 answers, and transactional batches read back with
 * isolation.level=read_committed. Nothing is mocked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Message } from '@confluentinc/kafka-javascript';

import { jumpConsistentHash } from '../../src/workers/producer/partitions';
import { jsNative } from '../../src/shared/native';
import { request, runSluice, sleep, startSluice, tempFile, type Reply, type Running } from '../helpers';
import { IT_BROKERS, createTopic, readTopic, startBroker, uniqueTopic } from '../kafka-helpers';

const T = { timeout: 90000 };
const PARTITIONS = 3;

interface Placed {
  topic: string;
  partition: number;
  offset: number;
}

interface SyncBody {
  topic: string;
  results: Placed[];
}

function headerOf(m: Message, name: string): string | undefined {
  for (const h of m.headers ?? []) {
    const v = h[name];
    if (v !== undefined) return v.toString();
  }
  return undefined;
}

function headerNames(m: Message): string[] {
  return (m.headers ?? []).flatMap((h) => Object.keys(h));
}

function hdr(r: Reply, name: string): string {
  const v = r.headers[name];
  assert.equal(typeof v, 'string', `response header ${name} (status ${r.status}: ${r.body.toString()})`);
  return v as string;
}

function json<V>(r: Reply): V {
  return JSON.parse(r.body.toString('utf8')) as V;
}

/** The consistent-hash partition of `key` (docs/kafka.md, Partitioning). */
function hashPartition(key: string): number {
  return jumpConsistentHash(jsNative.hashKey(key), PARTITIONS);
}

/** Checks a sync 200 answer: body and Kafka-Partition/Kafka-Offset headers agree; returns results. */
function syncResults(r: Reply, topic: string, n: number): Placed[] {
  assert.equal(r.status, 200, r.body.toString());
  const body = json<SyncBody>(r);
  assert.equal(body.topic, topic);
  assert.equal(body.results.length, n);
  for (const x of body.results) {
    assert.equal(x.topic, topic);
    assert.ok(Number.isInteger(x.partition) && x.partition >= 0 && x.partition < PARTITIONS, JSON.stringify(x));
    assert.ok(Number.isInteger(x.offset) && x.offset >= 0, JSON.stringify(x));
  }
  assert.deepEqual(
    hdr(r, 'kafka-partition').split(',').map((s) => Number(s.trim())),
    body.results.map((x) => x.partition),
  );
  assert.deepEqual(
    hdr(r, 'kafka-offset').split(',').map((s) => Number(s.trim())),
    body.results.map((x) => x.offset),
  );
  return body.results;
}

/** Reads `topic` until every (partition, offset) in `want` was seen; returns them in `want` order. */
async function readAt(topic: string, want: readonly Placed[], isolation?: 'read_committed'): Promise<Message[]> {
  const key = (p: number, o: number): string => `${p}:${o}`;
  const wanted = new Set(want.map((w) => key(w.partition, w.offset)));
  const msgs = await readTopic(topic, {
    partitions: PARTITIONS,
    ...(isolation === undefined ? {} : { isolation }),
    timeoutMs: 30000,
    until: (ms) => {
      let found = 0;
      for (const m of ms) if (wanted.has(key(m.partition, m.offset))) found++;
      return found >= wanted.size;
    },
  });
  const at = new Map(msgs.map((m) => [key(m.partition, m.offset), m]));
  return want.map((w) => {
    const m = at.get(key(w.partition, w.offset));
    assert.ok(m !== undefined, `no record at ${topic} ${w.partition}/${w.offset} (read ${msgs.length})`);
    return m;
  });
}

/** Reads `topic` until `n` records arrived, then `quietMs` more to catch extras. */
async function readCount(topic: string, n: number, quietMs = 1500, isolation?: 'read_committed'): Promise<Message[]> {
  let reachedAt = 0;
  return readTopic(topic, {
    partitions: PARTITIONS,
    ...(isolation === undefined ? {} : { isolation }),
    timeoutMs: 30000,
    until: (ms) => {
      if (ms.length < n) return false;
      if (reachedAt === 0) reachedAt = Date.now();
      return Date.now() - reachedAt >= quietMs;
    },
  });
}

describe('Kafka routes (real Sluice, real broker)', () => {
  let sluice: Running;
  const topics = {
    raw: uniqueTopic('raw'),
    ndjson: uniqueTopic('ndjson'),
    array: uniqueTopic('array'),
    param: uniqueTopic('param'),
    async: uniqueTopic('async'),
    asyncKeyed: uniqueTopic('async-keyed'),
    prefer: uniqueTopic('prefer'),
    small: uniqueTopic('small'),
    txn: uniqueTopic('txn'),
    txnAbort: uniqueTopic('txn-abort'),
    auth: uniqueTopic('auth'),
    warm: uniqueTopic('warm'),
    warmTxn: uniqueTopic('warm-txn'),
  };

  const post = (path: string, body: Buffer | string, headers: Record<string, string> = {}, agent?: Agent): Promise<Reply> =>
    request(sluice.port, { method: 'POST', path, body, headers: { 'content-type': 'application/octet-stream', ...headers }, agent });

  before(async () => {
    await startBroker();
    for (const t of Object.values(topics)) await createTopic(t, PARTITIONS);
    const kafkaRoute = (name: string, path: Record<string, string>, action: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      name,
      match: { path, methods: ['POST'] },
      action: { type: 'kafka', ...action },
      ...extra,
    });
    sluice = await startSluice({
      kafka: { brokers: IT_BROKERS, profile: 'latency', statisticsIntervalMs: 0, transactions: true, instanceId: `it-routes-${process.pid}-${Date.now()}` },
      routes: [
        kafkaRoute('raw', { exact: '/raw' }, { topic: topics.raw, format: 'raw', key: { header: 'x-key' }, headers: ['x-trace', 'X-Tenant'] }),
        kafkaRoute('ndjson', { exact: '/ndjson' }, { topic: topics.ndjson, format: 'ndjson', key: { header: 'x-key' } }),
        kafkaRoute('array', { exact: '/array' }, { topic: topics.array, format: 'json-array', key: { jsonField: 'user.id' } }),
        kafkaRoute('param', { regex: '^/orders/(?<orderId>[A-Za-z0-9-]+)$' }, { topic: topics.param, format: 'raw', key: { pathParam: 'orderId' } }),
        kafkaRoute('async', { exact: '/async' }, { topic: topics.async, format: 'ndjson', mode: 'async' }),
        // Keyed, partitioner hash (the default): the native client places the records by the
        // topic's partition count once the JavaScript side fetched it (the first ones wait for it).
        kafkaRoute('async-keyed', { exact: '/async-keyed' }, { topic: topics.asyncKeyed, format: 'ndjson', mode: 'async', key: { header: 'x-key' } }),
        kafkaRoute('prefer', { exact: '/prefer' }, { topic: topics.prefer, format: 'raw', mode: 'sync' }),
        kafkaRoute('small', { exact: '/small' }, { topic: topics.small, format: 'ndjson', maxRecordBytes: 64 }, { maxBodyBytes: 1024 }),
        kafkaRoute('txn', { exact: '/txn' }, { topic: topics.txn, format: 'ndjson', key: { jsonField: 'id' }, transactional: true }),
        // maxRecordBytes above librdkafka's message.max.bytes (1000000): such a record fails in Kafka, aborting its transaction.
        kafkaRoute('txn-big', { exact: '/txn-big' }, { topic: topics.txnAbort, format: 'ndjson', transactional: true, maxRecordBytes: 4 * 1024 * 1024 }),
        kafkaRoute('auth', { exact: '/auth' }, { topic: topics.auth, format: 'raw', headers: ['Authorization'], allowSensitiveHeaders: true }),
        kafkaRoute('warm', { exact: '/warm' }, { topic: topics.warm, format: 'raw' }),
        kafkaRoute('warm-txn', { exact: '/warm-txn' }, { topic: topics.warmTxn, format: 'raw', transactional: true }),
      ],
    });
    // Both workers' links up and the producer connected to the broker: several sync 200s in a
    // row on fresh connections (spread over the workers by SO_REUSEPORT).
    let last = '';
    for (const path of ['/warm', '/warm-txn']) {
      let streak = 0;
      const end = Date.now() + 60000;
      while (streak < (path === '/warm' ? 12 : 2)) {
        const r = await post(path, 'warm-up');
        last = `${r.status} ${r.body.toString()}`;
        streak = r.status === 200 ? streak + 1 : 0;
        if (Date.now() > end) throw new Error(`${path}: sync produce did not succeed in a row within 60 s (last: ${last})`);
        if (r.status !== 200) await sleep(200);
      }
    }
  });

  /** Records of async-only routes so far: they take the producer's native client (checked at shutdown). */
  let asyncOnlyRecords = 0;

  after(async () => {
    if (sluice === undefined) return;
    assert.equal(await sluice.stop(), 0);
    // Records of async-only routes, and only those, went through the native fire-and-forget
    // client (Prefer: respond-async on a sync route keeps the main client: its order against
    // the route's sync records).
    const flushed = sluice.logs.find((l) => l.msg === 'producer flushed');
    assert.ok(flushed !== undefined, 'the producer logged its shutdown accounting');
    assert.equal(flushed.ffSettled, asyncOnlyRecords, JSON.stringify(flushed));
    assert.equal(flushed.undelivered, 0);
  });

  test('raw body, sync: 200 with partition/offset; the same bytes and selected headers at that offset', T, async () => {
    const body = Buffer.concat([randomBytes(200), Buffer.from([0, 0xff, 0x0a, 0x0d]), Buffer.from('tail')]);
    const r = await post('/raw', body, { 'x-key': 'customer-42', 'x-trace': 'trace-1', 'x-tenant': 'acme', 'x-other': 'not-copied', authorization: 'Bearer s3cret', cookie: 'sid=s3cret' });
    const [placed] = syncResults(r, topics.raw, 1);
    assert.ok(placed !== undefined);
    assert.equal(hdr(r, 'kafka-topic'), topics.raw);
    assert.equal(placed.partition, hashPartition('customer-42'), 'consistent-hash partition of the key');
    const rid = hdr(r, 'x-request-id');
    const [m] = await readAt(topics.raw, [placed]);
    assert.ok(m !== undefined);
    assert.ok(m.value !== null && m.value.equals(body), 'the exact request bytes');
    assert.equal(m.key?.toString(), 'customer-42');
    assert.equal(headerOf(m, 'x-request-id'), rid);
    assert.equal(headerOf(m, 'x-trace'), 'trace-1');
    assert.equal(headerOf(m, 'x-tenant'), 'acme');
    const names = headerNames(m).map((n) => n.toLowerCase());
    assert.ok(!names.includes('authorization'), `headers: ${names.join(', ')}`);
    assert.ok(!names.includes('cookie'), `headers: ${names.join(', ')}`);
    assert.ok(!names.includes('x-other'), `headers: ${names.join(', ')}`);
    for (const h of m.headers ?? []) for (const v of Object.values(h)) assert.ok(!v.toString().includes('s3cret'));

    // A client-supplied request id is kept and lands in the record.
    const r2 = await post('/raw', 'second', { 'x-key': 'customer-42', 'x-request-id': 'client-chosen-id-1' });
    const [placed2] = syncResults(r2, topics.raw, 1);
    assert.ok(placed2 !== undefined);
    assert.equal(hdr(r2, 'x-request-id'), 'client-chosen-id-1');
    assert.equal(placed2.partition, placed.partition, 'same key, same partition');
    assert.ok(placed2.offset > placed.offset);
    const [m2] = await readAt(topics.raw, [placed2]);
    assert.equal(m2?.value?.toString(), 'second');
    assert.equal(m2 === undefined ? undefined : headerOf(m2, 'x-request-id'), 'client-chosen-id-1');
  });

  test('Authorization is copied into Kafka headers only where the route lists it and allows it (Cookie never)', T, async () => {
    const r = await post('/auth', 'with-auth', { authorization: 'Bearer allowed', cookie: 'sid=no' });
    const [placed] = syncResults(r, topics.auth, 1);
    assert.ok(placed !== undefined);
    const [m] = await readAt(topics.auth, [placed]);
    assert.ok(m !== undefined);
    assert.equal(headerOf(m, 'authorization'), 'Bearer allowed');
    assert.equal(headerOf(m, 'cookie'), undefined);
    assert.equal(headerOf(m, 'x-request-id'), hdr(r, 'x-request-id'));
    assert.equal(m.key, null, 'no key configured');
  });

  test('NDJSON batch with a header key: results in order, one partition, increasing offsets, read back in order', T, async () => {
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ n: i, text: `line ${i}` }));
    // CRLF and blank lines are tolerated; the trailing newline ends the last record.
    const body = `${lines.slice(0, 10).join('\n')}\r\n\n${lines.slice(10).join('\n')}\n`;
    const r = await post('/ndjson', body, { 'x-key': 'batch-key', 'content-type': 'application/x-ndjson' });
    const placed = syncResults(r, topics.ndjson, 20);
    const part = hashPartition('batch-key');
    for (const p of placed) assert.equal(p.partition, part);
    for (let i = 1; i < placed.length; i++) assert.ok((placed[i] as Placed).offset > (placed[i - 1] as Placed).offset, `offsets in order: ${JSON.stringify(placed)}`);
    const msgs = await readAt(topics.ndjson, placed);
    assert.deepEqual(
      msgs.map((m) => m.value?.toString()),
      lines,
    );
    for (const m of msgs) assert.equal(m.key?.toString(), 'batch-key');
    // Read back in partition order: the same order as the lines.
    const all = (await readCount(topics.ndjson, 20, 500)).filter((m) => m.partition === part).sort((a, b) => a.offset - b.offset);
    assert.deepEqual(
      all.map((m) => m.value?.toString()),
      lines,
    );
  });

  test('JSON array with a jsonField key: one record per element, keyed and placed by that field', T, async () => {
    const elems = Array.from({ length: 12 }, (_, i) => ({ user: { id: i % 3 === 0 ? 1000 + i : `user-${i % 4}` }, seq: i, tags: ['a', i] }));
    const r = await post('/array', JSON.stringify(elems), { 'content-type': 'application/json' });
    const placed = syncResults(r, topics.array, elems.length);
    const msgs = await readAt(topics.array, placed);
    elems.forEach((el, i) => {
      const key = typeof el.user.id === 'string' ? el.user.id : JSON.stringify(el.user.id);
      const m = msgs[i] as Message;
      assert.equal(m.key?.toString(), key);
      assert.equal((placed[i] as Placed).partition, hashPartition(key), `element ${i} key ${key}`);
      assert.deepEqual(JSON.parse(m.value?.toString() ?? 'null'), el);
    });
  });

  test('pathParam key: the named group of the route path regex', T, async () => {
    const ids = ['ord-1', 'ord-2', 'ord-77', 'ord-1'];
    const placed: Placed[] = [];
    for (const id of ids) {
      const r = await post(`/orders/${id}`, `order ${id}`);
      const [p] = syncResults(r, topics.param, 1);
      assert.ok(p !== undefined);
      assert.equal(p.partition, hashPartition(id), id);
      placed.push(p);
    }
    const msgs = await readAt(topics.param, placed);
    ids.forEach((id, i) => {
      assert.equal(msgs[i]?.key?.toString(), id);
      assert.equal(msgs[i]?.value?.toString(), `order ${id}`);
    });
  });

  test('async mode: 202 with the queued count, and every record arrives', T, async () => {
    const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ a: i }));
    const r1 = await post('/async', `${lines.slice(0, 15).join('\n')}\n`);
    const r2 = await post('/async', lines.slice(15).join('\n'));
    for (const r of [r1, r2]) {
      assert.equal(r.status, 202, r.body.toString());
      assert.deepEqual(json(r), { topic: topics.async, queued: 15 });
      assert.equal(r.headers['kafka-offset'], undefined);
    }
    asyncOnlyRecords += 30;
    const msgs = await readCount(topics.async, 30);
    assert.equal(msgs.length, 30);
    assert.deepEqual(msgs.map((m) => m.value?.toString()).sort(), [...lines].sort());
    // No key → librdkafka's partitioner; each request's records reach Kafka in order per partition.
    for (let p = 0; p < PARTITIONS; p++) {
      const vals = msgs.filter((m) => m.partition === p).sort((a, b) => a.offset - b.offset).map((m) => (JSON.parse(m.value?.toString() ?? '{}') as { a: number }).a);
      const first = vals.filter((v) => v < 15);
      const second = vals.filter((v) => v >= 15);
      assert.deepEqual(first, [...first].sort((a, b) => a - b));
      assert.deepEqual(second, [...second].sort((a, b) => a - b));
    }
  });

  test('async mode keeps order on a connection: one key, requests one after another, read back in the order sent', T, async () => {
    // One keep-alive connection, so one worker and one link (requests on other connections
    // may reach another worker, whose link is its own queue: async order holds per connection).
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sent: string[] = [];
    for (let r = 0; r < 40; r++) {
      const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ n: r * 5 + i }));
      const reply = await post('/async-keyed', lines.join('\n'), { 'x-key': 'one-key' }, agent);
      assert.equal(reply.status, 202, reply.body.toString());
      sent.push(...lines);
    }
    agent.destroy();
    asyncOnlyRecords += sent.length;
    const msgs = await readCount(topics.asyncKeyed, sent.length);
    assert.equal(msgs.length, sent.length);
    assert.deepEqual([...new Set(msgs.map((m) => m.partition))], [jumpConsistentHash(jsNative.hashKey('one-key'), PARTITIONS)], 'one key, its hash partition');
    const got = [...msgs].sort((a, b) => a.offset - b.offset).map((m) => m.value?.toString());
    assert.deepEqual(got, sent);
  });

  test('Prefer: respond-async on a sync route answers 202 and the record arrives', T, async () => {
    const r = await post('/prefer', 'preferred-async', { prefer: 'respond-async, wait=10' });
    assert.equal(r.status, 202, r.body.toString());
    assert.deepEqual(json(r), { topic: topics.prefer, queued: 1 });
    const rid = hdr(r, 'x-request-id');
    const sync = await post('/prefer', 'plain-sync');
    syncResults(sync, topics.prefer, 1);
    const msgs = await readCount(topics.prefer, 2, 500);
    assert.equal(msgs.length, 2);
    const asyncRec = msgs.find((m) => m.value?.toString() === 'preferred-async');
    assert.ok(asyncRec !== undefined);
    assert.equal(headerOf(asyncRec, 'x-request-id'), rid);
  });

  test('400 for a body that is not the declared format, or empty', T, async () => {
    const cases: [string, string, RegExp][] = [
      ['/ndjson', '{"ok":1}\nnot json\n', /line 2/],
      ['/ndjson', '', /no NDJSON records/],
      ['/ndjson', '\n\n  \n', /no NDJSON records/],
      ['/array', '{"user":{"id":"x"}}', /not a JSON array/],
      ['/array', '[{"user":{"id":"x"}}', /not JSON/],
      ['/array', '[]', /empty/],
      ['/array', '[{"user":{"id":"x"}},{"user":{}}]', /record 1 has no key field user\.id/],
      ['/raw', '', /empty/],
      ['/txn', '{"id":"a"}\n{"noid":1}\n', /record 1 has no key field id/],
    ];
    for (const [path, body, msg] of cases) {
      const r = await post(path, body, { 'x-key': 'k' });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.status} ${r.body.toString()}`);
      assert.equal(hdr(r, 'x-sluice-error'), 'SLUICE_ERR_BAD_REQUEST');
      const b = json<{ error: string; message: string }>(r);
      assert.equal(b.error, 'SLUICE_ERR_BAD_REQUEST');
      assert.match(b.message, msg, `${path} ${JSON.stringify(body)}`);
      assert.ok(typeof r.headers['x-request-id'] === 'string');
    }
  });

  test('413 for a record over maxRecordBytes and for a body over the route maxBodyBytes; nothing produced', T, async () => {
    const okLine = JSON.stringify({ v: 'x'.repeat(56) }); // 64 bytes: exactly maxRecordBytes
    const bigLine = JSON.stringify({ v: 'x'.repeat(57) }); // 65 bytes
    assert.equal(okLine.length, 64);
    const r1 = await post('/small', `${okLine}\n${bigLine}\n${okLine}\n`);
    assert.equal(r1.status, 413, r1.body.toString());
    assert.equal(hdr(r1, 'x-sluice-error'), 'SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
    assert.match(json<{ message: string }>(r1).message, /record 1 is 65 bytes, over 64/);

    const lines = Array.from({ length: 20 }, () => okLine).join('\n'); // 1299 bytes > maxBodyBytes 1024
    const r2 = await post('/small', lines);
    assert.equal(r2.status, 413, r2.body.toString());
    assert.equal(hdr(r2, 'x-sluice-error'), 'SLUICE_ERR_BODY_TOO_LARGE');

    // Chunked (no Content-Length) over the limit: refused while streaming.
    const r3 = await request(sluice.port, { method: 'POST', path: '/small', body: [lines.slice(0, 900), lines.slice(900)] });
    assert.equal(r3.status, 413, r3.body.toString());
    assert.equal(hdr(r3, 'x-sluice-error'), 'SLUICE_ERR_BODY_TOO_LARGE');

    // A record of exactly maxRecordBytes is accepted; the topic then holds just that record.
    const r4 = await post('/small', okLine);
    const [p] = syncResults(r4, topics.small, 1);
    assert.ok(p !== undefined);
    const msgs = await readCount(topics.small, 1, 1500);
    assert.equal(msgs.length, 1, `only the accepted record: ${msgs.map((m) => m.value?.toString()).join(' | ')}`);
    assert.equal(msgs[0]?.value?.toString(), okLine);
  });

  test('transactional route: a batch is committed together, readable with read_committed at the reported offsets', T, async () => {
    const batches = [0, 1, 2].map((b) => Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: `k${(b * 10 + i) % 5}`, b, i })));
    const placed: Placed[][] = [];
    for (const lines of batches) {
      const r = await post('/txn', lines.join('\n'));
      const res = syncResults(r, topics.txn, lines.length);
      lines.forEach((l, i) => assert.equal((res[i] as Placed).partition, hashPartition((JSON.parse(l) as { id: string }).id)));
      placed.push(res);
    }
    const flat = placed.flat();
    const msgs = await readAt(topics.txn, flat, 'read_committed');
    assert.deepEqual(
      msgs.map((m) => m.value?.toString()),
      batches.flat(),
    );
    // Nothing else is visible to a read_committed consumer (control records are not messages).
    const all = await readCount(topics.txn, flat.length, 1000, 'read_committed');
    assert.equal(all.length, flat.length);
  });

  test('transactional route: a batch with a record Kafka refuses is aborted as a whole (none of it is committed)', T, async () => {
    const doomed = [JSON.stringify({ doomed: 1 }), JSON.stringify({ big: 'x'.repeat(1_200_000) }), JSON.stringify({ doomed: 3 })];
    const r = await post('/txn-big', doomed.join('\n'));
    // docs/kafka.md: broker refused, record too large → SLUICE_ERR_KAFKA_RECORD_TOO_LARGE (413).
    assert.equal(r.status, 413, r.body.toString().slice(0, 300));
    assert.equal(hdr(r, 'x-sluice-error'), 'SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
    assert.equal(r.headers['kafka-offset'], undefined);
    // A later committed batch on the same topic: once it is visible, the aborted one never will be.
    const good = [JSON.stringify({ good: 1 }), JSON.stringify({ good: 2 })];
    const ok = await post('/txn-big', good.join('\n'));
    const placed = syncResults(ok, topics.txnAbort, good.length);
    const committed = await readAt(topics.txnAbort, placed, 'read_committed');
    assert.deepEqual(
      committed.map((m) => m.value?.toString()),
      good,
    );
    const all = await readCount(topics.txnAbort, good.length, 1000, 'read_committed');
    assert.deepEqual(all.map((m) => m.value?.toString()).sort(), [...good].sort(), 'nothing of the aborted batch is visible to read_committed');
  });

  test('route headers listing Authorization without allowSensitiveHeaders is a config error (exit 2)', T, async () => {
    const route = (headers: string[], allow: boolean): Record<string, unknown> => ({
      listen: { host: '127.0.0.1', port: 0 },
      kafka: { brokers: IT_BROKERS },
      routes: [{ name: 'k', action: { type: 'kafka', topic: 't', headers, allowSensitiveHeaders: allow } }],
    });
    const bad = await runSluice(['--check', '--config', tempFile('bad.json', JSON.stringify(route(['x-trace', 'Authorization'], false)))]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /routes\[0\]\.action\.headers\[1\]/);
    const ok = await runSluice(['--check', '--config', tempFile('ok.json', JSON.stringify(route(['x-trace', 'Authorization'], true)))]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});
