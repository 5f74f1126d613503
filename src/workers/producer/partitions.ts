/**
 * Consistent-hash partitioning for Kafka records (the guide's custom partitioner; docs/kafka.md,
 * "Partitioning"):
 *
 *   partition = jumpConsistentHash(xxh3_64(key bytes) & (2^53 - 1), partitionCount)
 *
 * The key hash is the native addon's `hashKey` (xxh3-64 of the key's bytes, low 53 bits), or its
 * bit-identical JavaScript twin when the addon is not loaded. Jump consistent hash (Lamping and
 * Veach, 2014, arXiv:1406.2294) needs no table and moves only ~1/n of the keys when a topic grows
 * from n-1 to n partitions. A consumer or another producer in any language reproduces a
 * partition with those two public algorithms.
 *
 * Must never: allocate per call, or import the Kafka client.
 */
import { jsNative, loadNative, type NativeApi } from '../../shared/native';

// The LCG multiplier 2862933555777941757 = 0x27BB2EE6_87B0B0FD, in 16-bit limbs for exact
// 64-bit arithmetic on doubles.
const C_HI = 0x27bb2ee6;
const C_LO = 0x87b0b0fd;
const C_LO_0 = C_LO & 0xffff;
const C_LO_1 = C_LO >>> 16;
const TWO_16 = 65536;
const TWO_32 = 4294967296;
const TWO_31 = 2147483648;

/**
 * Jump consistent hash: the bucket in [0, buckets) of a 64-bit key given as a non-negative
 * integer below 2^53 (the key hash). Exactly the paper's C++:
 *
 *   int32_t b = -1, j = 0;
 *   while (j < num_buckets) { b = j; key = key * 2862933555777941757ULL + 1;
 *                             j = (b + 1) * (double(1LL << 31) / double((key >> 33) + 1)); }
 */
export function jumpConsistentHash(keyHash: number, buckets: number): number {
  if (!(buckets >= 1) || !Number.isInteger(buckets) || buckets > 0x7fffffff) throw new RangeError(`buckets must be an integer >= 1, got ${buckets}`);
  let lo = keyHash >>> 0;
  let hi = Math.floor(keyHash / TWO_32) >>> 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    // (hi:lo) = (hi:lo) * C + 1 mod 2^64. lo * C_LO needs the full 64-bit product: 16-bit limbs.
    const a0 = lo & 0xffff;
    const a1 = lo >>> 16;
    const mid = a0 * C_LO_1 + a1 * C_LO_0; // < 2^33, exact
    const low = a0 * C_LO_0 + (mid % TWO_16) * TWO_16; // < 2^33, exact
    const carry = Math.floor(low / TWO_32);
    let nhi = (a1 * C_LO_1 + Math.floor(mid / TWO_16) + carry) >>> 0;
    nhi = (nhi + Math.imul(hi, C_LO) + Math.imul(lo, C_HI)) >>> 0;
    let nlo = (low >>> 0) + 1;
    if (nlo === TWO_32) {
      nlo = 0;
      nhi = (nhi + 1) >>> 0;
    }
    lo = nlo;
    hi = nhi;
    j = Math.floor((b + 1) * (TWO_31 / ((hi >>> 1) + 1)));
  }
  return b;
}

/** The key hasher: the native addon's `hashKey` when it loads, else its JS twin. */
export function keyHasher(): { readonly hashKey: NativeApi['hashKey']; readonly native: boolean } {
  try {
    return { hashKey: loadNative().hashKey, native: true };
  } catch {
    return { hashKey: jsNative.hashKey, native: false };
  }
}

/** Partition of `key` among `partitions` (see the header). */
export function keyPartition(hashKey: NativeApi['hashKey'], key: Uint8Array | string, partitions: number): number {
  return jumpConsistentHash(hashKey(key), partitions);
}
