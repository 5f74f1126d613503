/**
 * Key hashing, ketama, Maglev and the lookups: native addon against JavaScript twins (same
 * hashes, word-for-word identical tables, same picks, same errors), nginx compatibility of
 * ketama placement, and the distribution properties each algorithm promises.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import {
  DEFAULT_MAGLEV_SIZE,
  HDR_LEN,
  HDR_SIZE,
  KIND_KETAMA,
  KIND_MAGLEV,
  loadNative,
  type HostSpec,
  type NativeApi,
} from '../../src/shared/native';
import { jsNative } from '../oracles/js-native';
import { xxh3BigInt } from '../oracles/xxh3';

const native = loadNative();
const IMPLS = [
  ['native', native],
  ['js', jsNative],
] as const;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hosts(n: number, weight: (i: number) => number = () => 1): HostSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `10.1.${i >> 8}.${i & 255}:8080`, weight: weight(i) }));
}

function keyHashes(n: number, seed = 7): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = jsNative.hashKey(`user-${seed}-${i}`) >>> 0;
  return out;
}

/** The same result from both implementations, or the same error message. */
function same<T>(f: (api: NativeApi) => T, what: string): T {
  let nativeResult: T | undefined;
  let nativeError: string | undefined;
  try {
    nativeResult = f(native);
  } catch (e) {
    nativeError = (e as Error).message;
  }
  if (nativeError !== undefined) {
    assert.throws(() => f(jsNative), { message: nativeError }, what);
    throw new Error(nativeError);
  }
  assert.deepEqual(f(jsNative), nativeResult, what);
  return nativeResult as T;
}

describe('key hashing', () => {
  test('xxh3 and crc32 check values', () => {
    assert.equal(xxh3BigInt(new Uint8Array(0)), 0x2d06800538d394c2n);
    assert.equal(xxh3BigInt(Buffer.from('a')), 0xe6c632b61e964e1fn);
    assert.equal(xxh3BigInt(Buffer.from('abc')), 0x78af5f94892f3950n);
    for (const [, api] of IMPLS) {
      assert.equal(api.hashKey(''), Number(0x2d06800538d394c2n & ((1n << 53n) - 1n)));
      assert.equal(api.crc32('123456789'), 0xcbf43926);
      assert.equal(api.crc32(''), 0);
    }
  });

  test('native and JS agree on every length through the long-input path', () => {
    const r = rng(11);
    for (let len = 0; len <= 2100; len += len < 300 ? 1 : 7) {
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
      assert.equal(jsNative.hashKey(b), native.hashKey(b), `len ${len}`);
      assert.equal(jsNative.crc32(b), native.crc32(b), `len ${len}`);
      const sub = b.subarray(Math.min(3, len));
      assert.equal(jsNative.hashKey(sub), native.hashKey(sub), `subarray len ${sub.length}`);
    }
  });

  test('strings hash as their UTF-8 bytes, identically in both', () => {
    const strings = ['', 'a', '10.0.0.1', 'GET /index.html', 'é', 'ünïcödé-ключ-键', '\u{1f600}x', '\ud800', 'a\udc00b',
      'x'.repeat(250) + 'é', 'y'.repeat(256), 'z'.repeat(5000), 'é'.repeat(130)];
    for (const s of strings) {
      const h = native.hashKey(s);
      assert.equal(jsNative.hashKey(s), h, JSON.stringify(s));
      assert.equal(native.hashKey(Buffer.from(s, 'utf8')), h, JSON.stringify(s));
      assert.equal(jsNative.crc32(s), native.crc32(s), JSON.stringify(s));
      assert.ok(Number.isSafeInteger(h) && h >= 0);
    }
  });

  test('rejects other key types', () => {
    for (const [, api] of IMPLS) {
      assert.throws(() => api.hashKey(42 as unknown as string));
      assert.throws(() => api.crc32(new Uint16Array(2) as unknown as Uint8Array));
    }
  });
});

describe('ketama', () => {
  test('placement matches nginx `hash $request_uri consistent` (1001 recorded picks)', () => {
    const csv = fs.readFileSync(path.resolve(__dirname, '../../../native/core/testdata/sample-nginx-upstream.csv'), 'utf8');
    const rows = csv.trim().split('\n').map((l) => l.split(',') as [string, string]);
    assert.equal(rows.length, 1001);
    const ids = Array.from({ length: 9 }, (_, i) => `10.0.0.${i + 1}:443`);
    for (const [, api] of IMPLS) {
      const ring = api.buildKetama(ids.map((id) => ({ id, weight: 100 })));
      for (const [uri, upstream] of rows) assert.equal(ids[api.lookup(ring, api.crc32(uri))], upstream, uri);
    }
  });

  test('native and JS build identical rings', () => {
    const sets: HostSpec[][] = [
      [],
      hosts(1),
      hosts(3, (i) => i + 1),
      hosts(17, (i) => 1 + (i % 5)),
      [
        { id: '[::1]:80', weight: 2 },
        { id: 'backend.example.com', weight: 1 },
        { id: 'unix:/var/run/app.sock', weight: 3 },
        { id: 'UNIX:/x', weight: 1 },
        { id: 'héllo:8080', weight: 1 },
        { id: 'a:1', weight: 1 },
        { id: 'a:1', weight: 1 }, // duplicate id: all its points collide; lowest index wins
      ],
    ];
    for (const set of sets) {
      const ring = same((api) => Array.from(api.buildKetama(set)), `ring of ${set.length}`);
      assert.equal(ring[0], KIND_KETAMA);
      const n = ring[HDR_SIZE] as number;
      const hashes = ring.slice(HDR_LEN + set.length, HDR_LEN + set.length + n);
      for (let i = 1; i < hashes.length; i++) assert.ok((hashes[i - 1] as number) < (hashes[i] as number));
    }
    const dup = native.buildKetama([{ id: 'a:1', weight: 1 }, { id: 'a:1', weight: 1 }]);
    assert.ok(Array.from(dup.subarray(HDR_LEN + 2 + 160)).every((h) => h === 0));
  });

  test('adding or removing one of N hosts moves about 1/N of the keys, and only those', () => {
    const keys = keyHashes(30_000);
    for (const n of [5, 10, 20]) {
      const all = hosts(n + 1);
      for (const [name, api] of IMPLS) {
        const before = api.buildKetama(all.slice(0, n));
        const after = api.buildKetama(all);
        let moved = 0;
        for (const k of keys) {
          const a = api.lookup(before, k);
          const b = api.lookup(after, k);
          if (a !== b) {
            assert.equal(b, n, `${name}: a key moved to an old host`);
            moved++;
          }
        }
        const expected = keys.length / (n + 1);
        assert.ok(Math.abs(moved - expected) < expected * 0.35, `${name} n=${n}: moved ${moved}, expected ~${expected}`);
        // Removing a middle host: only its keys move.
        const without = all.slice(0, n).filter((_, i) => i !== 2);
        const removed = api.buildKetama(without);
        let movedOut = 0;
        for (const k of keys) {
          const a = api.lookup(before, k);
          const b = without[api.lookup(removed, k)]?.id;
          if ((all[a] as HostSpec).id !== b) {
            assert.equal(a, 2, `${name}: a key left a surviving host`);
            movedOut++;
          }
        }
        assert.ok(Math.abs(movedOut - keys.length / n) < (keys.length / n) * 0.35, `${name}: removed ${movedOut}`);
      }
    }
  });

  test('native and JS lookups agree on random tables and keys', () => {
    const r = rng(5);
    for (let iter = 0; iter < 20; iter++) {
      const set = hosts(1 + Math.floor(r() * 12), () => 1 + Math.floor(r() * 4));
      const ring = native.buildKetama(set);
      const eligible = Uint8Array.from(set, () => (r() < 0.6 ? 1 : 0));
      for (let k = 0; k < 500; k++) {
        const key = Math.floor(r() * 2 ** 53);
        const steps = [0, 1, 2, 5, 50, Infinity, NaN, -3, 2.9][k % 9] as number;
        same((api) => api.lookup(ring, key), 'lookup');
        same((api) => api.lookupWalk(ring, key, steps, eligible), 'lookupWalk');
      }
    }
  });
});

describe('maglev', () => {
  test('native and JS build identical tables', () => {
    for (const [set, size] of [
      [hosts(1), 7],
      [hosts(3), 7],
      [hosts(7), 7],
      [hosts(5, (i) => i + 1), 101],
      [hosts(10), 1009],
      [hosts(13, (i) => 1 + (i % 3)), DEFAULT_MAGLEV_SIZE],
      [hosts(100), 65521],
      [[], 7],
    ] as [HostSpec[], number][]) {
      const t = same((api) => Array.from(api.buildMaglev(set, size)), `maglev ${set.length}/${size}`);
      assert.equal(t[0], KIND_MAGLEV);
    }
    same((api) => Array.from(api.buildMaglev(hosts(4))), 'default size');
  });

  test('equal weights fill the table evenly; weights skew it proportionally', () => {
    for (const [name, api] of IMPLS) {
      const t = api.buildMaglev(hosts(10));
      const counts = new Array<number>(10).fill(0);
      for (const h of t.subarray(HDR_LEN + 10)) counts[h] = (counts[h] as number) + 1;
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${name}: ${counts.join()}`);
      const w = api.buildMaglev(hosts(3, (i) => [1, 2, 4][i] as number), 10007);
      const wc = [0, 0, 0];
      for (const h of w.subarray(HDR_LEN + 3)) wc[h] = (wc[h] as number) + 1;
      assert.ok(Math.abs((wc[1] as number) / (wc[0] as number) - 2) < 0.05, `${name}: ${wc.join()}`);
      assert.ok(Math.abs((wc[2] as number) / (wc[0] as number) - 4) < 0.05, `${name}: ${wc.join()}`);
    }
  });

  test('removing one of N hosts disrupts little beyond its own slots', () => {
    const keys = keyHashes(20_000, 9);
    for (const [name, api] of IMPLS) {
      const all = hosts(10);
      const before = api.buildMaglev(all);
      const without = all.filter((_, i) => i !== 4);
      const after = api.buildMaglev(without);
      let ownMoved = 0;
      let otherMoved = 0;
      for (const k of keys) {
        const a = (all[api.lookup(before, k)] as HostSpec).id;
        const b = (without[api.lookup(after, k)] as HostSpec).id;
        if (a !== b) {
          if (a === (all[4] as HostSpec).id) ownMoved++;
          else otherMoved++;
        }
      }
      assert.ok(Math.abs(ownMoved - keys.length / 10) < keys.length / 10 * 0.1, `${name}: own ${ownMoved}`);
      assert.ok(otherMoved < keys.length * 0.05, `${name}: ${otherMoved} keys of surviving hosts moved`);
    }
  });

  test('rejects table sizes that are not prime or too small', () => {
    for (const size of [65536, 1, 0, 4, 9, 2 ** 24 + 1]) {
      assert.throws(() => same((api) => api.buildMaglev(hosts(3), size), `size ${size}`), /prime/);
    }
    assert.throws(() => same((api) => api.buildMaglev(hosts(11), 7), 'too small'), /prime/);
  });
});

describe('fallback walk and bounded load', () => {
  test('lookupWalk skips ineligible hosts and never looks further than maxSteps', () => {
    for (const [name, api] of IMPLS) {
      for (const table of [api.buildKetama(hosts(6)), api.buildMaglev(hosts(6), 101)]) {
        const ketama = table[0] === KIND_KETAMA;
        const n = table[HDR_SIZE] as number;
        const base = HDR_LEN + 6 + (ketama ? n : 0);
        for (const key of keyHashes(300, 3)) {
          const first = api.lookup(table, key);
          const eligible = new Uint8Array(6).fill(1);
          assert.equal(api.lookupWalk(table, key, 1, eligible), first);
          eligible[first] = 0;
          // Reference walk over the packed table: position of the key's point/slot, then onwards.
          let start = 0;
          if (ketama) {
            while (start < n && (table[HDR_LEN + 6 + start] as number) < key) start++;
            if (start === n) start = 0;
          } else {
            start = key % n;
          }
          let distance = -1;
          let expected = -1;
          for (let s = 0; s < n; s++) {
            const h = table[base + ((start + s) % n)] as number;
            if (eligible[h]) {
              distance = s;
              expected = h;
              break;
            }
          }
          assert.equal(api.lookupWalk(table, key, Infinity, eligible), expected, name);
          assert.equal(api.lookupWalk(table, key, distance, eligible), -1, `${name}: looked past maxSteps`);
          assert.equal(api.lookupWalk(table, key, distance + 1, eligible), expected, name);
        }
        assert.equal(api.lookupWalk(table, 1, Infinity, new Uint8Array(6)), -1);
        assert.throws(() => api.lookupWalk(table, 1, 5, new Uint8Array(5)), /one entry per host/);
      }
    }
  });

  test('bounded load holds under a Zipf-like key distribution, identically in both', () => {
    const nHosts = 8;
    const factor = 1.25;
    const set = hosts(nHosts);
    const r = rng(13);
    // Zipf(s = 1.2) over 1000 keys: key 0 alone gets ~23% of the requests.
    const weights = Array.from({ length: 1000 }, (_, i) => 1 / (i + 1) ** 1.2);
    const total = weights.reduce((a, b) => a + b, 0);
    const cdf: number[] = [];
    let acc = 0;
    for (const w of weights) cdf.push((acc += w / total));
    const keys = keyHashes(1000, 21);
    const zipfKey = (): number => {
      const u = r();
      let lo = 0;
      let hi = cdf.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((cdf[mid] as number) < u) lo = mid + 1;
        else hi = mid;
      }
      return keys[lo] as number;
    };
    for (const build of ['buildKetama', 'buildMaglev'] as const) {
      const table = native[build](set);
      const eligible = new Uint8Array(nHosts).fill(1);
      const loads = new Int32Array(nHosts);
      const unbounded = new Int32Array(nHosts);
      const inflight: number[] = [];
      const inflightPlain: number[] = [];
      let worstPlain = 0;
      for (let i = 0; i < 20_000; i++) {
        const key = zipfKey();
        const h = same((api) => api.lookupBounded(table, key, Infinity, eligible, loads, factor), 'lookupBounded');
        const totalBefore = loads.reduce((a, b) => a + b, 0);
        const cap = Math.ceil((factor * (totalBefore + 1)) / nHosts);
        loads[h] = (loads[h] as number) + 1;
        assert.ok((loads[h] as number) <= cap, `${build}: host ${h} has ${loads[h]} > ${cap}`);
        inflight.push(h);
        const p = native.lookup(table, key);
        unbounded[p] = (unbounded[p] as number) + 1;
        inflightPlain.push(p);
        // About 100 requests in flight; the oldest completes.
        if (inflight.length > 100) {
          const done = inflight.splice(Math.floor(r() * inflight.length), 1)[0] as number;
          loads[done] = (loads[done] as number) - 1;
          const donePlain = inflightPlain.shift() as number;
          unbounded[donePlain] = (unbounded[donePlain] as number) - 1;
        }
        worstPlain = Math.max(worstPlain, ...unbounded);
      }
      // Without the bound the hot key piles up on one host: the bound is doing something.
      assert.ok(worstPlain > Math.ceil((factor * 101) / nHosts), `${build}: plain worst ${worstPlain}`);
    }
  });

  test('bounded load respects eligibility, weights and its fallbacks', () => {
    const set = hosts(4, (i) => (i === 0 ? 3 : 1));
    for (const [name, api] of IMPLS) {
      const ring = api.buildKetama(set);
      // Everybody over the bound within 1 step: the key's own (eligible) host, load ignored.
      const loads = Int32Array.from([100, 100, 100, 100]);
      const eligible = new Uint8Array(4).fill(1);
      const own = api.lookup(ring, 12345);
      assert.equal(api.lookupBounded(ring, 12345, 1, eligible, loads, 1.25), own, name);
      assert.equal(api.lookupBounded(ring, 12345, 10, new Uint8Array(4), loads, 1.25), -1, name);
      // Host 0 (weight 3) may take up to ceil(1.25 * 7 * 3/6) = 5, the others ceil(1.25 * 7 / 6) = 2.
      const l2 = Int32Array.from([4, 1, 1, 0]);
      for (const key of keyHashes(200, 4)) {
        const h = api.lookupBounded(ring, key, Infinity, eligible, l2, 1.25);
        assert.ok(h === 0 || h === 1 || h === 2 || h === 3);
        if (api.lookup(ring, key) === 0) assert.equal(h, 0, `${name}: weighted cap`);
      }
      assert.throws(() => api.lookupBounded(ring, 1, 5, eligible, loads, 0.5), /factor/);
      assert.throws(() => api.lookupBounded(ring, 1, 5, eligible, loads, NaN), /factor/);
      assert.throws(() => api.lookupBounded(ring, 1, 5, eligible, new Int32Array(3), 1.5), /one entry per host/);
    }
    const r = rng(17);
    const ring = native.buildMaglev(set, 1009);
    for (let i = 0; i < 3000; i++) {
      const loads = Int32Array.from(set, () => Math.floor(r() * 20) - 2);
      const eligible = Uint8Array.from(set, () => (r() < 0.7 ? 1 : 0));
      const steps = [1, 3, 10, Infinity][i % 4] as number;
      const factor = 1 + r();
      const key = Math.floor(r() * 2 ** 32);
      same((api) => api.lookupBounded(ring, key, steps, eligible, loads, factor), 'random bounded');
    }
  });
});

describe('tables as data', () => {
  test('malformed tables are rejected with the same message', () => {
    const good = native.buildKetama(hosts(2));
    const bad = [new Uint32Array(0), new Uint32Array(3), good.subarray(0, good.length - 1), Uint32Array.from([1, 0, 0, 0])];
    for (const t of bad) {
      assert.throws(() => same((api) => api.lookup(t, 1), 'bad table'), /not a ketama ring or Maglev table/);
    }
    for (const t of [native.buildKetama([]), native.buildMaglev([], 7)]) {
      for (const [, api] of IMPLS) {
        assert.equal(api.lookup(t, 5), -1);
        assert.equal(api.lookupWalk(t, 5, 9, new Uint8Array(0)), -1);
      }
    }
  });

  test('weights are validated the same way', () => {
    for (const weight of [0, -1, 1.5, NaN, 10_001, Infinity]) {
      for (const build of ['buildKetama', 'buildMaglev'] as const) {
        assert.throws(
          () => same((api) => api[build]([{ id: 'a:1', weight: 1 }, { id: 'b:1', weight }]), `weight ${weight}`),
          /hosts\[1\]\.weight must be an integer/,
        );
      }
    }
  });

  test('a table built natively survives structured clone and works in the JS twin', () => {
    const ring = native.buildKetama(hosts(5));
    const copy = structuredClone(ring);
    const shared = new Uint32Array(new SharedArrayBuffer(ring.byteLength));
    shared.set(ring);
    for (const key of keyHashes(100)) {
      const h = native.lookup(ring, key);
      assert.equal(jsNative.lookup(copy, key), h);
      assert.equal(native.lookup(shared, key), h);
    }
  });
});
