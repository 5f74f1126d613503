/**
 * The frame codec between KafkaLink and the producer process (src/shared/kafka-frames.ts):
 * every frame type round-trips; a stream of frames decodes the same however the reads split
 * it (at every byte offset, byte by byte, at random); large values; empty and null keys,
 * values and headers; malformed input is refused with FrameError; the error-code mapping.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import {
  DecodedRecord,
  DecodedReport,
  FRAME,
  FrameError,
  FrameReader,
  FrameWriter,
  KERR,
  KafkaDeliveryError,
  MAX_TXN_RECORDS,
  PROTOCOL_VERSION,
  ProducerStatus,
  decodeHello,
  decodeProduce,
  decodeProduceTxn,
  decodeReport,
  decodeStatus,
  decodeTxnReport,
  kafkaErrorCode,
  type KafkaRecord,
} from '../../src/shared/kafka-frames';
import { ERRORS } from '../../src/shared/errors';

/** A decoded frame as plain data (views copied), for deep comparison. */
type Plain =
  | { t: 'hello'; version: number; workerId: number }
  | { t: 'produce'; rec: PlainRecord }
  | { t: 'txn'; id: number; recs: PlainRecord[] }
  | { t: 'report'; id: number; err: number; partition: number; offset: number; message: string }
  | { t: 'txnReport'; id: number; err: number; message: string; partitions: number[]; offsets: number[] }
  | { t: 'status'; s: ProducerStatus };

interface PlainRecord {
  id: number;
  topic: string;
  partition: number;
  hashKey: boolean;
  unordered: boolean;
  ffOrdered: boolean;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: [string, string][] | null;
  bytes: number;
}

const hex = (b: Buffer | null): string | null => (b === null ? null : b.toString('hex'));

function plainRecord(r: DecodedRecord): PlainRecord {
  return {
    id: r.id,
    topic: r.topic,
    partition: r.partition,
    hashKey: r.hashKey,
    unordered: r.unordered,
    ffOrdered: r.ffOrdered,
    timestamp: r.timestamp,
    key: hex(r.key),
    value: hex(r.value),
    headers: r.headers === null ? null : r.headers.map((h) => {
      const name = Object.keys(h)[0] as string;
      return [name, (h[name] as Buffer).toString('hex')];
    }),
    bytes: r.bytes,
  };
}

/** A reader that collects every frame as plain data. */
function collector(onRun: ((buf: Buffer, start: number, end: number) => number) | null = null): { reader: FrameReader; out: Plain[] } {
  const out: Plain[] = [];
  const rec = new DecodedRecord();
  const rep = new DecodedReport();
  const reader = new FrameReader((type, buf, s, e) => {
    switch (type) {
      case FRAME.HELLO: {
        const h = decodeHello(buf, s, e);
        out.push({ t: 'hello', version: h.version, workerId: h.workerId });
        break;
      }
      case FRAME.PRODUCE:
        decodeProduce(buf, s, e, rec);
        out.push({ t: 'produce', rec: plainRecord(rec) });
        break;
      case FRAME.PRODUCE_TXN: {
        const recs: PlainRecord[] = [];
        const id = decodeProduceTxn(buf, s, e, rec, (r) => recs.push(plainRecord(r)));
        out.push({ t: 'txn', id, recs });
        break;
      }
      case FRAME.REPORT:
        decodeReport(buf, s, e, rep);
        out.push({ t: 'report', id: rep.id, err: rep.err, partition: rep.partition, offset: rep.offset, message: rep.message });
        break;
      case FRAME.TXN_REPORT: {
        const r = decodeTxnReport(buf, s, e);
        out.push({ t: 'txnReport', id: r.id, err: r.err, message: r.message, partitions: [...r.partitions], offsets: [...r.offsets] });
        break;
      }
      case FRAME.STATUS: {
        const st = new ProducerStatus();
        decodeStatus(buf, s, e, st);
        out.push({ t: 'status', s: st });
        break;
      }
      default:
        throw new Error(`unknown frame type ${type}`);
    }
  }, undefined, onRun);
  return { reader, out };
}

const bytesOf = (v: Uint8Array | string | null | undefined): string | null =>
  v == null ? null : Buffer.from(typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('hex');

/** What decoding `rec` sent with `id` must give. */
function expected(id: number, rec: KafkaRecord): PlainRecord {
  const key = bytesOf(rec.key);
  const value = bytesOf(rec.value);
  return {
    id,
    topic: rec.topic,
    partition: rec.partition ?? -1,
    hashKey: rec.partitioner === 'hash',
    unordered: rec.unordered === true,
    ffOrdered: rec.ffOrdered === true,
    timestamp: rec.timestamp ?? 0,
    key,
    value,
    headers:
      rec.headers === undefined || rec.headers.length === 0 ? null : rec.headers.map(([n, v]) => [n, bytesOf(v) as string] as [string, string]),
    bytes: (key === null ? 0 : key.length / 2) + (value === null ? 0 : value.length / 2),
  };
}

const RECORDS: KafkaRecord[] = [
  { topic: 'events', value: 'hello', key: 'user-1' },
  { topic: 'events', value: Buffer.from([0, 1, 2, 255]), key: Buffer.from([9, 8, 7]), partition: 7 },
  { topic: 'events', value: '', key: '' },
  { topic: 'events', value: new Uint8Array(0), key: null },
  { topic: 'tombstones', value: null, key: 'gone' },
  { topic: 'tombstones', value: null },
  { topic: 'hashed', value: 'v', key: 'k', partitioner: 'hash' },
  { topic: 'hashed', value: 'v', key: null, partitioner: 'hash' },
  { topic: 'events', value: '{"seq":"1"}', key: 'route', unordered: true },
  { topic: 'hashed', value: 'v', key: 'k', partitioner: 'hash', unordered: true },
  { topic: 'async-route', value: 'v', key: null, ffOrdered: true },
  { topic: 'ts', value: 'x', timestamp: 1_700_000_000_123 },
  { topic: 'ts', value: 'x', timestamp: 2 ** 50 + 7 },
  { topic: 'ts', value: 'x', timestamp: 0 },
  { topic: 'héllo-トピック', value: 'ünïcödé ✓ 😀', key: '鍵' },
  { topic: 'h', value: 'x', headers: [] },
  { topic: 'h', value: 'x', headers: [['a', '1']] },
  {
    topic: 'h',
    value: 'x',
    headers: [
      ['x-request-id', 'abc-123'],
      ['bin', Buffer.from([0, 0xff, 0x10])],
      ['', ''],
      ['dup', 'one'],
      ['dup', 'two'],
      ['ключ', 'значение'],
      ['__proto__', 'not a prototype'],
    ],
  },
  { topic: 'p', value: 'x', partition: 0 },
  { topic: 'p', value: 'x', partition: 2147483647 },
  { topic: 'p', value: 'x', partition: -1 },
];

function status(seed: number): ProducerStatus {
  const s = new ProducerStatus();
  s.brokerUp = seed % 2 === 0;
  s.kafkaConnected = seed % 3 !== 0;
  s.txnReady = seed % 5 === 0;
  s.shuttingDown = seed % 7 === 0;
  s.final = seed % 11 === 0;
  s.queueMessages = 4294967295 - seed;
  s.queueBytes = 2 ** 52 + seed;
  s.queueMaxMessages = 100000 + seed;
  s.queueMaxBytes = 64 * 1024 * 1024 * 1024 + seed;
  s.delivered = 2 ** 40 + seed;
  s.failed = seed;
  s.queueFull = seed * 3;
  s.deliveredPerSec = 123456 + seed;
  s.connReceived = 2 ** 33 + seed;
  s.connFfDelivered = 2 ** 32 + seed;
  s.connFfFailed = 2 ** 31 + seed;
  s.connFfUnknown = 2 ** 30 + seed;
  return s;
}

/** A stream with every frame type; returns the bytes and what decoding them must give. */
function mixedStream(): { bytes: Buffer; want: Plain[] } {
  const w = new FrameWriter(16); // tiny: the writer must grow many times
  const want: Plain[] = [];
  w.hello(42);
  want.push({ t: 'hello', version: PROTOCOL_VERSION, workerId: 42 });
  RECORDS.forEach((r, i) => {
    const id = i % 3 === 0 ? 0 : 1000 + i;
    w.produce(id, r);
    want.push({ t: 'produce', rec: expected(id, r) });
  });
  w.produceTxn(77, RECORDS.slice(0, 5));
  want.push({ t: 'txn', id: 77, recs: RECORDS.slice(0, 5).map((r) => expected(77, r)) });
  const offsets = [0, 1, 2 ** 32, 2 ** 40 + 3, 2 ** 53 - 1, -1, -1001, -(2 ** 40)];
  offsets.forEach((o, i) => {
    w.report(i + 1, i % 2 === 0 ? 0 : KERR.MSG_TIMED_OUT, i - 1, o, i % 2 === 0 ? '' : `Local: Message timed out ✗ ${i}`);
    want.push({ t: 'report', id: i + 1, err: i % 2 === 0 ? 0 : KERR.MSG_TIMED_OUT, partition: i - 1, offset: o, message: i % 2 === 0 ? '' : `Local: Message timed out ✗ ${i}` });
  });
  w.txnReport(9, 0, '', [0, 1, 2], [10, 2 ** 45, 0]);
  want.push({ t: 'txnReport', id: 9, err: 0, message: '', partitions: [0, 1, 2], offsets: [10, 2 ** 45, 0] });
  w.txnReport(10, KERR.UNKNOWN_PARTITION, 'Local: Unknown partition', [5], [5]);
  want.push({ t: 'txnReport', id: 10, err: KERR.UNKNOWN_PARTITION, message: 'Local: Unknown partition', partitions: [], offsets: [] });
  for (const seed of [0, 1, 2, 3, 5, 7, 11, 77]) {
    w.status(status(seed));
    want.push({ t: 'status', s: status(seed) });
  }
  return { bytes: w.takeCopy(), want };
}

describe('frame round trips', () => {
  test('every record shape round-trips through PRODUCE', () => {
    RECORDS.forEach((r, i) => {
      const w = new FrameWriter();
      const size = w.produce(i + 1, r);
      const bytes = w.takeCopy();
      assert.equal(size, bytes.length);
      const { reader, out } = collector();
      reader.push(bytes);
      assert.deepEqual(out, [{ t: 'produce', rec: expected(i + 1, r) }], `record ${i}`);
    });
  });

  test('the whole mixed stream decodes from one read', () => {
    const { bytes, want } = mixedStream();
    const { reader, out } = collector();
    reader.push(bytes);
    assert.deepEqual(out, want);
    assert.equal(reader.buffered, 0);
  });

  test('a stream split into two reads at every byte offset decodes the same', () => {
    const { bytes, want } = mixedStream();
    for (let i = 0; i <= bytes.length; i++) {
      const { reader, out } = collector();
      reader.push(bytes.subarray(0, i));
      reader.push(bytes.subarray(i));
      assert.deepEqual(out, want, `split at ${i}`);
      assert.equal(reader.buffered, 0);
    }
  });

  test('a stream fed one byte at a time decodes the same', () => {
    const { bytes, want } = mixedStream();
    const { reader, out } = collector();
    for (let i = 0; i < bytes.length; i++) reader.push(bytes.subarray(i, i + 1));
    assert.deepEqual(out, want);
  });

  test('random chunkings (fresh Buffers, as sockets deliver them) decode the same', () => {
    const { bytes, want } = mixedStream();
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const { reader, out } = collector();
      let off = 0;
      while (off < bytes.length) {
        const n = 1 + rnd(round % 2 === 0 ? 7 : 200);
        reader.push(Buffer.from(bytes.subarray(off, off + n)));
        off += n;
      }
      assert.deepEqual(out, want, `round ${round}`);
    }
  });

  test('frames are handed out as soon as they are complete, in order', () => {
    const w = new FrameWriter();
    w.report(1, 0, 0, 10, '');
    w.report(2, 0, 0, 11, '');
    const bytes = w.takeCopy();
    const { reader, out } = collector();
    const first = bytes.length / 2;
    reader.push(bytes.subarray(0, first - 1));
    assert.equal(out.length, 0);
    reader.push(bytes.subarray(first - 1, first + 3));
    assert.equal(out.length, 1);
    reader.push(bytes.subarray(first + 3));
    assert.deepEqual(
      out.map((p) => (p.t === 'report' ? p.offset : -1)),
      [10, 11],
    );
  });

  test('large values (5 MiB, and one per frame among small ones) survive 64 KiB reads', () => {
    const big = randomBytes(5 * 1024 * 1024);
    const w = new FrameWriter();
    const recs: KafkaRecord[] = [
      { topic: 'big', value: big, key: 'k' },
      { topic: 'small', value: 'x' },
      { topic: 'big', value: big.subarray(7, 3 * 1024 * 1024), headers: [['h', big.subarray(0, 70000)]] },
      { topic: 'small', value: 'y' },
    ];
    recs.forEach((r, i) => w.produce(i + 1, r));
    const bytes = w.takeCopy();
    const { reader, out } = collector();
    for (let off = 0; off < bytes.length; off += 65536) reader.push(bytes.subarray(off, off + 65536));
    assert.equal(out.length, recs.length);
    recs.forEach((r, i) => assert.deepEqual(out[i], { t: 'produce', rec: expected(i + 1, r) }, `record ${i}`));
  });

  test('a transaction of many records is one frame', () => {
    const recs: KafkaRecord[] = Array.from({ length: 1000 }, (_, i) => ({ topic: `t${i % 3}`, value: `v${i}`, key: `k${i}`, partitioner: 'hash' as const }));
    const w = new FrameWriter();
    w.produceTxn(5, recs);
    const { reader, out } = collector();
    reader.push(w.takeCopy());
    assert.deepEqual(out, [{ t: 'txn', id: 5, recs: recs.map((r) => expected(5, r)) }]);
  });

  test('STATUS keeps every flag and counter', () => {
    for (const seed of [0, 1, 2, 3, 5, 7, 11, 2310]) {
      const w = new FrameWriter();
      w.status(status(seed));
      const { reader, out } = collector();
      reader.push(w.takeCopy());
      assert.deepEqual(out, [{ t: 'status', s: status(seed) }]);
    }
  });

  test('long report messages are cut to 1000 characters', () => {
    const w = new FrameWriter();
    w.report(1, -1, 0, 0, 'x'.repeat(5000));
    const { reader, out } = collector();
    reader.push(w.takeCopy());
    assert.equal((out[0] as { message: string }).message.length, 1000);
  });
});

describe('reader runs (the producer hands runs of PRODUCE frames to the native client)', () => {
  /**
   * A run taker like the native one: takes consecutive PRODUCE frames with id 0 from `start`,
   * stops at anything else or an incomplete frame, and returns where it stopped.
   */
  function taker(taken: number[]): (buf: Buffer, start: number, end: number) => number {
    return (buf, start, end) => {
      let at = start;
      while (end - at >= 4) {
        const len = buf.readUInt32LE(at);
        const frameEnd = at + 4 + len;
        if (frameEnd > end || buf[at + 4] !== FRAME.PRODUCE || buf.readUInt32LE(at + 5) !== 0) break;
        taken.push(buf.readUInt32LE(at + 9)); // the record's partition: the test's tag
        at = frameEnd;
      }
      return at;
    };
  }

  test('frames the run taker leaves go to onFrame, in order, whatever the read boundaries', () => {
    const w = new FrameWriter();
    w.hello(1);
    const plan: [number, number][] = [];
    for (let i = 0; i < 40; i++) {
      const id = i % 7 === 3 ? 100 + i : 0; // every seventh wants a report: not the taker's
      plan.push([id, i]);
      w.produce(id, { topic: 'events', value: `v${i}`, key: null, partition: i, unordered: true });
    }
    const all = w.takeCopy();
    for (const cut of [1, 3, 17, 64, 200, all.length]) {
      const taken: number[] = [];
      const { reader, out } = collector(taker(taken));
      for (let o = 0; o < all.length; o += cut) reader.push(all.subarray(o, Math.min(all.length, o + cut)));
      assert.equal(out[0]?.t, 'hello');
      const viaFrame = out.filter((f) => f.t === 'produce').map((f) => (f as { rec: PlainRecord }).rec.partition);
      const wanted = plan.filter(([id]) => id !== 0).map(([, i]) => i);
      // A frame split across reads reaches onFrame from the reader's own buffer, so some id-0
      // frames come that way too: each record exactly once, either way.
      assert.deepEqual([...taken, ...viaFrame].sort((a, b) => a - b), plan.map(([, i]) => i), `cut ${cut}`);
      for (const i of wanted) assert.ok(viaFrame.includes(i), `record ${i} (wants a report) went to onFrame, cut ${cut}`);
      if (cut === all.length) assert.deepEqual(viaFrame, wanted, 'one read: the taker took every id-0 frame');
    }
  });
});

describe('writer', () => {
  test('takeCopy() hands out an independent copy and the writer starts over', () => {
    const w = new FrameWriter(8);
    w.report(1, 0, 0, 1, '');
    const a = w.takeCopy();
    const aHex = a.toString('hex');
    assert.equal(w.len, 0);
    w.report(2, 0, 0, 2, '');
    const b = w.takeCopy();
    assert.equal(a.toString('hex'), aHex, 'the first copy is not overwritten');
    assert.notEqual(a.toString('hex'), b.toString('hex'));
  });

  test('truncate() undoes a frame', () => {
    const w = new FrameWriter();
    w.report(1, 0, 0, 1, '');
    const mark = w.len;
    w.produce(3, { topic: 't', value: 'v' });
    w.truncate(mark);
    const { reader, out } = collector();
    reader.push(w.takeCopy());
    assert.equal(out.length, 1);
    assert.equal(out[0]?.t, 'report');
  });

  test('bad records are refused before anything is written', () => {
    const w = new FrameWriter();
    for (const bad of [
      { topic: 't', value: 'v', partition: -2 },
      { topic: 't', value: 'v', partition: 1.5 },
      { topic: 't', value: 'v', timestamp: -1 },
      { topic: 't', value: 'v', timestamp: 1.5 },
      { topic: 'x'.repeat(70000), value: 'v' },
    ] as KafkaRecord[]) {
      assert.throws(() => w.produce(1, bad), RangeError);
      assert.equal(w.len, 0);
    }
    assert.throws(() => w.produceTxn(1, []), RangeError);
    assert.throws(() => w.produceTxn(1, new Array<KafkaRecord>(MAX_TXN_RECORDS + 1).fill({ topic: 't', value: 'v' })), RangeError);
    assert.equal(w.len, 0);
  });
});

describe('malformed input', () => {
  const frame = (type: number, body: number[]): Buffer => {
    const b = Buffer.alloc(5 + body.length);
    b.writeUInt32LE(1 + body.length, 0);
    b[4] = type;
    Buffer.from(body).copy(b, 5);
    return b;
  };

  test('a zero or oversized length is a FrameError', () => {
    const { reader } = collector();
    assert.throws(() => reader.push(Buffer.from([0, 0, 0, 0, 1])), FrameError);
    const small = new FrameReader(() => undefined, 100);
    assert.throws(() => small.push(Buffer.from([101, 0, 0, 0])), FrameError);
    // Split over two reads as well.
    const split = new FrameReader(() => undefined, 100);
    split.push(Buffer.from([101, 0]));
    assert.throws(() => split.push(Buffer.from([0, 0])), FrameError);
  });

  test('truncated and over-long bodies are FrameErrors, not reads past the frame', () => {
    const w = new FrameWriter();
    w.produce(1, { topic: 'topic', value: 'value', key: 'key', headers: [['h', 'v']] });
    const good = w.takeCopy();
    const body = [...good.subarray(5)];
    for (let cut = 0; cut < body.length; cut++) {
      const { reader } = collector();
      assert.throws(() => reader.push(frame(FRAME.PRODUCE, body.slice(0, cut))), FrameError, `cut at ${cut}`);
    }
    const { reader } = collector();
    assert.throws(() => reader.push(frame(FRAME.PRODUCE, [...body, 0])), FrameError);
    for (const t of [FRAME.REPORT, FRAME.TXN_REPORT, FRAME.STATUS, FRAME.HELLO]) {
      const c = collector();
      assert.throws(() => c.reader.push(frame(t, [1, 2, 3])), FrameError, `type ${t}`);
    }
    const c = collector();
    assert.throws(() => c.reader.push(frame(FRAME.PRODUCE_TXN, [1, 0, 0, 0, 0, 0, 0, 0])), FrameError, 'zero records');
  });
});

describe('error codes', () => {
  test('librdkafka and link codes map onto registry codes', () => {
    const cases: [number, keyof typeof ERRORS][] = [
      [KERR.QUEUE_FULL, 'SLUICE_ERR_KAFKA_QUEUE_FULL'],
      [KERR.MSG_TIMED_OUT, 'SLUICE_ERR_KAFKA_UNAVAILABLE'],
      [KERR.TRANSPORT, 'SLUICE_ERR_KAFKA_UNAVAILABLE'],
      [KERR.ALL_BROKERS_DOWN, 'SLUICE_ERR_KAFKA_UNAVAILABLE'],
      [KERR.NOT_ENOUGH_REPLICAS, 'SLUICE_ERR_KAFKA_UNAVAILABLE'],
      [KERR.LINK_CLOSED, 'SLUICE_ERR_KAFKA_UNAVAILABLE'],
      [KERR.MSG_SIZE_TOO_LARGE, 'SLUICE_ERR_KAFKA_RECORD_TOO_LARGE'],
      [KERR.UNKNOWN_TOPIC_OR_PART, 'SLUICE_ERR_KAFKA_REJECTED'],
      [KERR.UNKNOWN_PARTITION, 'SLUICE_ERR_KAFKA_REJECTED'],
      [29, 'SLUICE_ERR_KAFKA_REJECTED'],
      [KERR.TXN_DISABLED, 'SLUICE_ERR_KAFKA_REJECTED'],
      [KERR.PRODUCER_SHUTTING_DOWN, 'SLUICE_ERR_SHUTTING_DOWN'],
      [KERR.LINK_LOST, 'SLUICE_ERR_KAFKA_UNKNOWN_OUTCOME'],
    ];
    for (const [k, code] of cases) assert.equal(kafkaErrorCode(k), code, String(k));
  });

  test('KafkaDeliveryError carries both codes and the registry status', () => {
    const e = new KafkaDeliveryError(KERR.QUEUE_FULL, 'Local: Queue full');
    assert.equal(e.code, 'SLUICE_ERR_KAFKA_QUEUE_FULL');
    assert.equal(e.status, 503);
    assert.equal(e.kafkaCode, -184);
    assert.equal(e.kafkaMessage, 'Local: Queue full');
    assert.match(e.message, /Queue full.*-184/);
    assert.deepEqual(Object.keys(e.toRecord()).sort(), ['code', 'message', 'source']);
  });
});
