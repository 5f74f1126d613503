/**
 * XXH3-64 (seed 0, default secret) in JavaScript: the twin of the `xxhash-rust` crate's
 * `xxh3_64` that the native addon uses, bit for bit, for every input length (the 0–16,
 * 17–128, 129–240 byte and long-input paths).
 *
 * 64-bit lanes are carried as two uint32 halves in locals; helpers return their result in the
 * module-level `rHi`/`rLo` pair instead of allocating, and 32×32→64 products are assembled
 * from 16-bit pieces in doubles (every partial sum stays below 2^53, so all of it is exact).
 * BigInt would be shorter and ~20× slower. Nothing here allocates per call except the long
 * path's accumulator, which is module-level and reused.
 */

// Default secret (XXH3_kSecret), 192 bytes.
const SECRET = new Uint8Array([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);
const SECRET_SIZE = 192;

// Primes, as [hi, lo].
const P32_1 = 0x9e3779b1;
const P32_2 = 0x85ebca77;
const P32_3 = 0xc2b2ae3d;
const P64_1_HI = 0x9e3779b1, P64_1_LO = 0x85ebca87;
const P64_2_HI = 0xc2b2ae3d, P64_2_LO = 0x27d4eb4f;
const P64_3_HI = 0x165667b1, P64_3_LO = 0x9e3779f9;
const P64_4_HI = 0x85ebca77, P64_4_LO = 0xc2b2ae63;
const P64_5_HI = 0x27d4eb2f, P64_5_LO = 0x165667c5;
const PMX1_HI = 0x16566791, PMX1_LO = 0x9e3779f9;
const PMX2_HI = 0x9fb21c65, PMX2_LO = 0x1e98df25;

const TWO32 = 4294967296;

// Result registers of the helpers below.
let rHi = 0;
let rLo = 0;

function r32(b: Uint8Array, i: number): number {
  return ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24)) >>> 0;
}

/** Full 64-bit product of two uint32 → rHi:rLo. */
function mul32(a: number, b: number): void {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid = a1 * b0 + a0 * b1; // < 2^33
  const lo = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  rLo = lo >>> 0;
  rHi = (a1 * b1 + Math.floor(mid / 65536) + Math.floor(lo / TWO32)) >>> 0;
}

/** Low 64 bits of a 64×64 product → rHi:rLo. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  rHi = (rHi + Math.imul(aHi, bLo) + Math.imul(aLo, bHi)) >>> 0;
}

/** XXH3_mul128_fold64: the 128-bit product's high half XOR its low half → rHi:rLo. */
function mul128Fold64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  const w0 = rLo, p0h = rHi;
  mul32(aHi, bLo);
  const p1l = rLo, p1h = rHi;
  mul32(aLo, bHi);
  const p2l = rLo, p2h = rHi;
  mul32(aHi, bHi);
  const p3l = rLo, p3h = rHi;
  const t1 = p0h + p1l + p2l;
  const w1 = t1 >>> 0;
  const t2 = p1h + p2h + p3l + Math.floor(t1 / TWO32);
  const w2 = t2 >>> 0;
  const w3 = (p3h + Math.floor(t2 / TWO32)) >>> 0;
  rHi = (w3 ^ w1) >>> 0;
  rLo = (w2 ^ w0) >>> 0;
}

/** rHi:rLo += bHi:bLo */
function addTo(bHi: number, bLo: number): void {
  const lo = rLo + bLo;
  rLo = lo >>> 0;
  rHi = (rHi + bHi + (lo >= TWO32 ? 1 : 0)) >>> 0;
}

/** XXH3_avalanche(rHi:rLo) in place. */
function avalanche3(): void {
  // h ^= h >> 37
  rLo = (rLo ^ (rHi >>> 5)) >>> 0;
  mul64(rHi, rLo, PMX1_HI, PMX1_LO);
  // h ^= h >> 32
  rLo = (rLo ^ rHi) >>> 0;
}

/** XXH64_avalanche(rHi:rLo) in place. */
function avalanche64(): void {
  rLo = (rLo ^ (rHi >>> 1)) >>> 0; // >> 33
  mul64(rHi, rLo, P64_2_HI, P64_2_LO);
  rLo = (rLo ^ ((rLo >>> 29) | (rHi << 3))) >>> 0; // >> 29
  rHi = (rHi ^ (rHi >>> 29)) >>> 0;
  mul64(rHi, rLo, P64_3_HI, P64_3_LO);
  rLo = (rLo ^ rHi) >>> 0; // >> 32
}

function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}

/** mix16B(input + i, secret + s, seed 0) → rHi:rLo. */
function mix16(b: Uint8Array, i: number, s: number): void {
  mul128Fold64(
    (r32(b, i + 4) ^ r32(SECRET, s + 4)) >>> 0,
    (r32(b, i) ^ r32(SECRET, s)) >>> 0,
    (r32(b, i + 12) ^ r32(SECRET, s + 12)) >>> 0,
    (r32(b, i + 8) ^ r32(SECRET, s + 8)) >>> 0,
  );
}

function len1to3(b: Uint8Array, len: number): void {
  const c1 = b[0] as number, c2 = b[len >>> 1] as number, c3 = b[len - 1] as number;
  const combined = ((c1 << 16) | (c2 << 24) | c3 | (len << 8)) >>> 0;
  const bitflip = (r32(SECRET, 0) ^ r32(SECRET, 4)) >>> 0;
  rHi = 0;
  rLo = (combined ^ bitflip) >>> 0;
  avalanche64();
}

function len4to8(b: Uint8Array, len: number): void {
  const in1 = r32(b, 0), in2 = r32(b, len - 4);
  const bfHi = (r32(SECRET, 12) ^ r32(SECRET, 20)) >>> 0;
  const bfLo = (r32(SECRET, 8) ^ r32(SECRET, 16)) >>> 0;
  // keyed = (in2 + (in1 << 32)) ^ bitflip
  let hi = (in1 ^ bfHi) >>> 0;
  let lo = (in2 ^ bfLo) >>> 0;
  // XXH3_rrmxmx(keyed, len): h ^= rotl(h, 49) ^ rotl(h, 24)
  const r49Hi = ((hi >>> 15) | (lo << 17)) >>> 0, r49Lo = ((lo >>> 15) | (hi << 17)) >>> 0;
  const r24Hi = ((hi << 24) | (lo >>> 8)) >>> 0, r24Lo = ((lo << 24) | (hi >>> 8)) >>> 0;
  hi = (hi ^ r49Hi ^ r24Hi) >>> 0;
  lo = (lo ^ r49Lo ^ r24Lo) >>> 0;
  mul64(hi, lo, PMX2_HI, PMX2_LO);
  // h ^= (h >> 35) + len
  const sLo = (rHi >>> 3) + len; // < 2^30, no carry
  rLo = (rLo ^ sLo) >>> 0;
  mul64(rHi, rLo, PMX2_HI, PMX2_LO);
  // h ^= h >> 28
  rLo = (rLo ^ ((rLo >>> 28) | (rHi << 4))) >>> 0;
  rHi = (rHi ^ (rHi >>> 28)) >>> 0;
}

function len9to16(b: Uint8Array, len: number): void {
  const loHi = (r32(b, 4) ^ r32(SECRET, 28) ^ r32(SECRET, 36)) >>> 0;
  const loLo = (r32(b, 0) ^ r32(SECRET, 24) ^ r32(SECRET, 32)) >>> 0;
  const hiHi = (r32(b, len - 4) ^ r32(SECRET, 44) ^ r32(SECRET, 52)) >>> 0;
  const hiLo = (r32(b, len - 8) ^ r32(SECRET, 40) ^ r32(SECRET, 48)) >>> 0;
  // acc = len + swap64(input_lo) + input_hi + mul128_fold64(input_lo, input_hi)
  mul128Fold64(loHi, loLo, hiHi, hiLo);
  addTo(0, len);
  addTo(bswap32(loLo), bswap32(loHi));
  addTo(hiHi, hiLo);
  avalanche3();
}

// Accumulator of the mid-size paths (module-level so that no closure is allocated per call).
let accHi = 0;
let accLo = 0;

/** acc += mix16B(input + i, secret + s) */
function accMix(b: Uint8Array, i: number, s: number): void {
  mix16(b, i, s);
  addTo(accHi, accLo);
  accHi = rHi;
  accLo = rLo;
}

function len17to128(b: Uint8Array, len: number): void {
  mul64(0, len, P64_1_HI, P64_1_LO);
  accHi = rHi;
  accLo = rLo;
  if (len > 32) {
    if (len > 64) {
      if (len > 96) {
        accMix(b, 48, 96);
        accMix(b, len - 64, 112);
      }
      accMix(b, 32, 64);
      accMix(b, len - 48, 80);
    }
    accMix(b, 16, 32);
    accMix(b, len - 32, 48);
  }
  accMix(b, 0, 0);
  accMix(b, len - 16, 16);
  rHi = accHi;
  rLo = accLo;
  avalanche3();
}

function len129to240(b: Uint8Array, len: number): void {
  mul64(0, len, P64_1_HI, P64_1_LO);
  accHi = rHi;
  accLo = rLo;
  for (let i = 0; i < 8; i++) accMix(b, 16 * i, 16 * i);
  rHi = accHi;
  rLo = accLo;
  avalanche3();
  accHi = rHi;
  accLo = rLo;
  const rounds = len >>> 4;
  for (let i = 8; i < rounds; i++) accMix(b, 16 * i, 16 * (i - 8) + 3);
  // XXH3_SECRET_SIZE_MIN (136) - XXH3_MIDSIZE_LASTOFFSET (17)
  accMix(b, len - 16, 119);
  rHi = accHi;
  rLo = accLo;
  avalanche3();
}

// Long inputs: 8 accumulator lanes as [hi, lo] pairs.
const ACC = new Uint32Array(16);
const STRIPE = 64;
const STRIPES_PER_BLOCK = (SECRET_SIZE - STRIPE) / 8;
const BLOCK = STRIPE * STRIPES_PER_BLOCK;

function accumulate512(b: Uint8Array, i: number, s: number): void {
  for (let lane = 0; lane < 8; lane++) {
    const dHi = r32(b, i + 8 * lane + 4), dLo = r32(b, i + 8 * lane);
    const kHi = (dHi ^ r32(SECRET, s + 8 * lane + 4)) >>> 0;
    const kLo = (dLo ^ r32(SECRET, s + 8 * lane)) >>> 0;
    // acc[lane ^ 1] += data
    const sw = (lane ^ 1) * 2;
    rHi = ACC[sw] as number;
    rLo = ACC[sw + 1] as number;
    addTo(dHi, dLo);
    ACC[sw] = rHi;
    ACC[sw + 1] = rLo;
    // acc[lane] += lo32(key) * hi32(key)
    mul32(kLo, kHi);
    addTo(ACC[lane * 2] as number, ACC[lane * 2 + 1] as number);
    ACC[lane * 2] = rHi;
    ACC[lane * 2 + 1] = rLo;
  }
}

function scramble(s: number): void {
  for (let lane = 0; lane < 8; lane++) {
    let hi = ACC[lane * 2] as number, lo = ACC[lane * 2 + 1] as number;
    lo = (lo ^ (hi >>> 15)) >>> 0; // ^= >> 47
    hi = (hi ^ r32(SECRET, s + 8 * lane + 4)) >>> 0;
    lo = (lo ^ r32(SECRET, s + 8 * lane)) >>> 0;
    mul64(hi, lo, 0, P32_1);
    ACC[lane * 2] = rHi;
    ACC[lane * 2 + 1] = rLo;
  }
}

function hashLong(b: Uint8Array, len: number): void {
  ACC.set([0, P32_3, P64_1_HI, P64_1_LO, P64_2_HI, P64_2_LO, P64_3_HI, P64_3_LO,
    P64_4_HI, P64_4_LO, 0, P32_2, P64_5_HI, P64_5_LO, 0, P32_1]);
  const blocks = Math.floor((len - 1) / BLOCK);
  for (let n = 0; n < blocks; n++) {
    for (let st = 0; st < STRIPES_PER_BLOCK; st++) accumulate512(b, n * BLOCK + st * STRIPE, st * 8);
    scramble(SECRET_SIZE - STRIPE);
  }
  const stripes = Math.floor((len - 1 - BLOCK * blocks) / STRIPE);
  for (let st = 0; st < stripes; st++) accumulate512(b, blocks * BLOCK + st * STRIPE, st * 8);
  // last stripe; XXH_SECRET_LASTACC_START = 7
  accumulate512(b, len - STRIPE, SECRET_SIZE - STRIPE - 7);
  // merge; XXH_SECRET_MERGEACCS_START = 11
  mul64(0, len, P64_1_HI, P64_1_LO);
  accHi = rHi;
  accLo = rLo;
  for (let k = 0; k < 4; k++) {
    const s = 11 + 16 * k;
    mul128Fold64(
      ((ACC[k * 4] as number) ^ r32(SECRET, s + 4)) >>> 0,
      ((ACC[k * 4 + 1] as number) ^ r32(SECRET, s)) >>> 0,
      ((ACC[k * 4 + 2] as number) ^ r32(SECRET, s + 12)) >>> 0,
      ((ACC[k * 4 + 3] as number) ^ r32(SECRET, s + 8)) >>> 0,
    );
    addTo(accHi, accLo);
    accHi = rHi;
    accLo = rLo;
  }
  avalanche3();
}

function run(b: Uint8Array, len: number): void {
  if (len <= 16) {
    if (len > 8) len9to16(b, len);
    else if (len >= 4) len4to8(b, len);
    else if (len > 0) len1to3(b, len);
    else {
      rHi = (r32(SECRET, 60) ^ r32(SECRET, 68)) >>> 0;
      rLo = (r32(SECRET, 56) ^ r32(SECRET, 64)) >>> 0;
      avalanche64();
    }
  } else if (len <= 128) len17to128(b, len);
  else if (len <= 240) len129to240(b, len);
  else hashLong(b, len);
}

/** xxh3-64 of `bytes[0 .. len)`, as [high 32 bits, low 32 bits] written into `into`. */
export function xxh3Parts(bytes: Uint8Array, len: number, into: Uint32Array): void {
  run(bytes, len);
  into[0] = rHi;
  into[1] = rLo;
}

/** xxh3-64 of `bytes[0 .. len)`, low 53 bits as an exact number. */
export function xxh3Low53(bytes: Uint8Array, len: number): number {
  run(bytes, len);
  return (rHi & 0x1fffff) * TWO32 + rLo;
}

/** xxh3-64 of `bytes[0 .. len)` as a BigInt (tests and debugging only: allocates). */
export function xxh3BigInt(bytes: Uint8Array, len = bytes.length): bigint {
  run(bytes, len);
  return (BigInt(rHi) << 32n) | BigInt(rLo);
}
