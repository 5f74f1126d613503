/** xxh3-64 as a BigInt, for tests that check the JavaScript XXH3 against published vectors. */
import { xxh3Parts } from '../../src/shared/native/xxh3';

const parts = new Uint32Array(2);

/** xxh3-64 of `bytes[0 .. len)` as a BigInt (allocates). */
export function xxh3BigInt(bytes: Uint8Array, len = bytes.length): bigint {
  xxh3Parts(bytes, len, parts);
  return (BigInt((parts[0] as number) >>> 0) << 32n) | BigInt((parts[1] as number) >>> 0);
}
