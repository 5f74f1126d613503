/**
 * Consistent-hash partitioning (src/workers/producer/partitions.ts): jump consistent hash is
 * bit-exact with the paper's algorithm (published vectors and a BigInt transcription of the
 * C++), spreads keys evenly, moves only keys that must move when partitions are added, and
 * the key hash is the same natively and in JS.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { jumpConsistentHash, keyHasher, keyPartition } from '../../src/workers/producer/partitions';
import { jsNative, loadNative } from '../../src/shared/native';

/** The paper's C++, transcribed with BigInt (64-bit unsigned arithmetic). */
function reference(key: number, buckets: number): number {
  let k = BigInt(key);
  let b = -1n;
  let j = 0n;
  const mask = (1n << 64n) - 1n;
  while (j < BigInt(buckets)) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & mask;
    j = BigInt(Math.floor(Number(b + 1n) * (2147483648 / Number((k >> 33n) + 1n))));
  }
  return Number(b);
}

let seed = 0x9e3779b9;
function rnd(): number {
  seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
  return seed;
}
function rndKey(): number {
  return (rnd() & 0x1fffff) * 4294967296 + rnd();
}

describe('jumpConsistentHash', () => {
  test('matches published vectors (dgryski/go-jump)', () => {
    const vectors: [number, number, number][] = [
      [1, 1, 0],
      [42, 57, 43],
      [0xdead10cc, 1, 0],
      [0xdead10cc, 666, 361],
      [256, 1024, 520],
    ];
    for (const [key, n, want] of vectors) assert.equal(jumpConsistentHash(key, n), want, `key ${key}, ${n} buckets`);
  });

  test('matches a BigInt transcription of the paper on random 53-bit keys', () => {
    for (let i = 0; i < 20000; i++) {
      const key = i < 10 ? [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 52, 12345, 2 ** 31, 7, 99][i] as number : rndKey();
      const n = 1 + (rnd() % (i % 2 === 0 ? 16 : 100000));
      assert.equal(jumpConsistentHash(key, n), reference(key, n), `key ${key}, ${n} buckets`);
    }
  });

  test('spreads keys evenly', () => {
    const n = 12;
    const counts = new Array<number>(n).fill(0);
    const keys = 120000;
    for (let i = 0; i < keys; i++) {
      const b = jumpConsistentHash(jsNative.hashKey(`user-${i}`), n);
      counts[b] = (counts[b] ?? 0) + 1;
    }
    for (const c of counts) assert.ok(Math.abs(c - keys / n) < (keys / n) * 0.05, `bucket count ${c} within 5% of ${keys / n}`);
  });

  test('growing from n to n+1 partitions moves keys only to the new one, about 1/(n+1) of them', () => {
    for (const n of [1, 3, 6, 31]) {
      let moved = 0;
      const keys = 20000;
      for (let i = 0; i < keys; i++) {
        const h = jsNative.hashKey(`order-${i}`);
        const a = jumpConsistentHash(h, n);
        const b = jumpConsistentHash(h, n + 1);
        if (a !== b) {
          assert.equal(b, n, 'a moved key goes to the new partition');
          moved++;
        }
      }
      const share = moved / keys;
      assert.ok(Math.abs(share - 1 / (n + 1)) < 0.02, `moved ${share} for ${n} → ${n + 1}`);
    }
  });

  test('refuses bucket counts below 1', () => {
    assert.throws(() => jumpConsistentHash(1, 0), RangeError);
    assert.throws(() => jumpConsistentHash(1, 1.5), RangeError);
  });
});

describe('key hashing', () => {
  test('keyHasher() uses the addon, and the addon and JS agree on keys', () => {
    const h = keyHasher();
    assert.equal(h.native, true, 'the native addon is built in this tree');
    const native = loadNative();
    for (const k of ['', 'a', 'user-1', '日本語', 'x'.repeat(300)]) {
      assert.equal(native.hashKey(k), jsNative.hashKey(k));
      assert.equal(native.hashKey(Buffer.from(k)), jsNative.hashKey(k));
      assert.equal(keyPartition(h.hashKey, Buffer.from(k), 7), keyPartition(jsNative.hashKey, k, 7));
    }
  });
});
