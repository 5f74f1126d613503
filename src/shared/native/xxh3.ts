/**
 * XXH3-64 (seed 0, default secret) in JavaScript: the twin of the `xxhash-rust` crate's
 * `xxh3_64` that the native addon uses, bit for bit, for every input length (the 0–16,
 * 17–128, 129–240 byte and long-input paths).
 *
 * 64-bit lanes are carried as two int32 halves; helpers return their result in a module-level
 * Int32Array pair instead of allocating, and 32×32→64 products are assembled from 16-bit
 * pieces (every partial sum stays below 2^53, so all of it is exact). BigInt would be shorter
 * and far slower. Nothing here allocates per call.
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

// Primes, as [hi, lo] int32 halves.
const P32_1 = 0x9e3779b1 | 0;
const P32_2 = 0x85ebca77 | 0;
const P32_3 = 0xc2b2ae3d | 0;
const P64_1_HI = 0x9e3779b1 | 0, P64_1_LO = 0x85ebca87 | 0;
const P64_2_HI = 0xc2b2ae3d | 0, P64_2_LO = 0x27d4eb4f | 0;
const P64_3_HI = 0x165667b1 | 0, P64_3_LO = 0x9e3779f9 | 0;
const P64_4_HI = 0x85ebca77 | 0, P64_4_LO = 0xc2b2ae63 | 0;
const P64_5_HI = 0x27d4eb2f | 0, P64_5_LO = 0x165667c5 | 0;
const PMX1_HI = 0x16566791 | 0, PMX1_LO = 0x9e3779f9 | 0;
const PMX2_HI = 0x9fb21c65 | 0, PMX2_LO = 0x1e98df25 | 0;

const TWO32 = 4294967296;

/** Little-endian int32 of `b` at byte `i`. */
function r32(b: Uint8Array, i: number): number {
  return (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
}

// Every (unaligned) 32-bit word of the secret, by byte offset.
const S = new Int32Array(SECRET_SIZE - 3);
for (let i = 0; i < S.length; i++) S[i] = r32(SECRET, i);
function s32(i: number): number {
  return S[i] as number;
}

// Result registers of the helpers below: [hi, lo] as int32. A typed array rather than
// module-level `let`s, because V8 boxes a non-Smi number stored in a context slot (an
// allocation per store) but stores it raw in an Int32Array.
const R = new Int32Array(2);
// Accumulator of the mid-size and long paths, same layout.
const A = new Int32Array(2);

/** Full 64-bit product of two uint32 (given as int32) → R. */
function mul32(a: number, b: number): void {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p10 = a1 * b0, p01 = a0 * b1; // < 2^32 each: exact doubles
  const mid = ((a0 * b0) >>> 16) + (p10 & 0xffff) + (p01 & 0xffff);
  R[0] = a1 * b1 + (p10 >>> 16) + (p01 >>> 16) + (mid >>> 16);
  R[1] = Math.imul(a, b);
}

/** Low 64 bits of a 64×64 product → R. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  R[0] = (R[0] as number) + Math.imul(aHi, bLo) + Math.imul(aLo, bHi);
}

/** XXH3_mul128_fold64: the 128-bit product's high half XOR its low half → R. */
function mul128Fold64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  const w0 = R[1] as number, p0h = (R[0] as number) >>> 0;
  mul32(aHi, bLo);
  const p1l = (R[1] as number) >>> 0, p1h = (R[0] as number) >>> 0;
  mul32(aLo, bHi);
  const p2l = (R[1] as number) >>> 0, p2h = (R[0] as number) >>> 0;
  mul32(aHi, bHi);
  const p3l = (R[1] as number) >>> 0, p3h = R[0] as number;
  const t1 = p0h + p1l + p2l; // < 3 * 2^32
  const t2 = p1h + p2h + p3l + Math.floor(t1 / TWO32);
  const w3 = p3h + Math.floor(t2 / TWO32);
  R[0] = w3 ^ t1; // int32 conversion of t1/t2 keeps their low 32 bits
  R[1] = t2 ^ w0;
}

/** R += hi:lo */
function addR(hi: number, lo: number): void {
  const l = ((R[1] as number) >>> 0) + (lo >>> 0);
  R[1] = l;
  R[0] = (R[0] as number) + hi + (l >= TWO32 ? 1 : 0);
}

/** XXH3_avalanche(R) in place. */
function avalanche3(): void {
  mul64(R[0] as number, (R[1] as number) ^ ((R[0] as number) >>> 5), PMX1_HI, PMX1_LO); // ^= >> 37, *=
  R[1] = (R[1] as number) ^ (R[0] as number); // ^= >> 32
}

/** XXH64_avalanche(R) in place. */
function avalanche64(): void {
  mul64(R[0] as number, (R[1] as number) ^ ((R[0] as number) >>> 1), P64_2_HI, P64_2_LO); // ^= >> 33, *=
  const hi = R[0] as number, lo = R[1] as number;
  mul64(hi ^ (hi >>> 29), lo ^ ((lo >>> 29) | (hi << 3)), P64_3_HI, P64_3_LO); // ^= >> 29, *=
  R[1] = (R[1] as number) ^ (R[0] as number); // ^= >> 32
}

function bswap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

/** A += mix16B(input + i, secret + s, seed 0) */
function accMix(b: Uint8Array, i: number, s: number): void {
  mul128Fold64(r32(b, i + 4) ^ s32(s + 4), r32(b, i) ^ s32(s), r32(b, i + 12) ^ s32(s + 12), r32(b, i + 8) ^ s32(s + 8));
  addR(A[0] as number, A[1] as number);
  A[0] = R[0] as number;
  A[1] = R[1] as number;
}

function len1to3(b: Uint8Array, len: number): void {
  const c1 = b[0] as number, c2 = b[len >>> 1] as number, c3 = b[len - 1] as number;
  const combined = (c1 << 16) | (c2 << 24) | c3 | (len << 8);
  R[0] = 0;
  R[1] = combined ^ s32(0) ^ s32(4);
  avalanche64();
}

function len4to8(b: Uint8Array, len: number): void {
  // keyed = (in2 + (in1 << 32)) ^ bitflip
  let hi = r32(b, 0) ^ s32(12) ^ s32(20);
  let lo = r32(b, len - 4) ^ s32(8) ^ s32(16);
  // XXH3_rrmxmx(keyed, len): h ^= rotl(h, 49) ^ rotl(h, 24)
  const r49Hi = (hi >>> 15) | (lo << 17), r49Lo = (lo >>> 15) | (hi << 17);
  const r24Hi = (hi << 24) | (lo >>> 8), r24Lo = (lo << 24) | (hi >>> 8);
  hi = hi ^ r49Hi ^ r24Hi;
  lo = lo ^ r49Lo ^ r24Lo;
  mul64(hi, lo, PMX2_HI, PMX2_LO);
  // h ^= (h >> 35) + len   (no carry: < 2^30)
  mul64(R[0] as number, (R[1] as number) ^ (((R[0] as number) >>> 3) + len), PMX2_HI, PMX2_LO);
  // h ^= h >> 28
  hi = R[0] as number;
  lo = R[1] as number;
  R[1] = lo ^ ((lo >>> 28) | (hi << 4));
  R[0] = hi ^ (hi >>> 28);
}

function len9to16(b: Uint8Array, len: number): void {
  const loHi = r32(b, 4) ^ s32(28) ^ s32(36);
  const loLo = r32(b, 0) ^ s32(24) ^ s32(32);
  const hiHi = r32(b, len - 4) ^ s32(44) ^ s32(52);
  const hiLo = r32(b, len - 8) ^ s32(40) ^ s32(48);
  // acc = len + swap64(input_lo) + input_hi + mul128_fold64(input_lo, input_hi)
  mul128Fold64(loHi, loLo, hiHi, hiLo);
  addR(0, len);
  addR(bswap32(loLo), bswap32(loHi));
  addR(hiHi, hiLo);
  avalanche3();
}

function len17to128(b: Uint8Array, len: number): void {
  mul64(0, len, P64_1_HI, P64_1_LO);
  A[0] = R[0] as number;
  A[1] = R[1] as number;
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
  avalanche3();
}

function len129to240(b: Uint8Array, len: number): void {
  mul64(0, len, P64_1_HI, P64_1_LO);
  A[0] = R[0] as number;
  A[1] = R[1] as number;
  for (let i = 0; i < 8; i++) accMix(b, 16 * i, 16 * i);
  avalanche3();
  A[0] = R[0] as number;
  A[1] = R[1] as number;
  const rounds = len >>> 4;
  for (let i = 8; i < rounds; i++) accMix(b, 16 * i, 16 * (i - 8) + 3);
  // XXH3_SECRET_SIZE_MIN (136) - XXH3_MIDSIZE_LASTOFFSET (17)
  accMix(b, len - 16, 119);
  avalanche3();
}

// Long inputs: 8 accumulator lanes as [hi, lo] int32 pairs.
const ACC = new Int32Array(16);
const ACC_INIT = Int32Array.from([0, P32_3, P64_1_HI, P64_1_LO, P64_2_HI, P64_2_LO, P64_3_HI, P64_3_LO,
  P64_4_HI, P64_4_LO, 0, P32_2, P64_5_HI, P64_5_LO, 0, P32_1]);
const STRIPE = 64;
const STRIPES_PER_BLOCK = (SECRET_SIZE - STRIPE) / 8;
const BLOCK = STRIPE * STRIPES_PER_BLOCK;

function accumulate512(b: Uint8Array, i: number, s: number): void {
  for (let lane = 0; lane < 8; lane++) {
    const dHi = r32(b, i + 8 * lane + 4), dLo = r32(b, i + 8 * lane);
    // acc[lane ^ 1] += data
    const sw = (lane ^ 1) * 2;
    R[0] = ACC[sw] as number;
    R[1] = ACC[sw + 1] as number;
    addR(dHi, dLo);
    ACC[sw] = R[0] as number;
    ACC[sw + 1] = R[1] as number;
    // acc[lane] += lo32(key) * hi32(key)
    mul32(dLo ^ s32(s + 8 * lane), dHi ^ s32(s + 8 * lane + 4));
    addR(ACC[lane * 2] as number, ACC[lane * 2 + 1] as number);
    ACC[lane * 2] = R[0] as number;
    ACC[lane * 2 + 1] = R[1] as number;
  }
}

function scramble(s: number): void {
  for (let lane = 0; lane < 8; lane++) {
    const hi = ACC[lane * 2] as number;
    const lo = (ACC[lane * 2 + 1] as number) ^ (hi >>> 15); // ^= >> 47
    mul64(hi ^ s32(s + 8 * lane + 4), lo ^ s32(s + 8 * lane), 0, P32_1);
    ACC[lane * 2] = R[0] as number;
    ACC[lane * 2 + 1] = R[1] as number;
  }
}

function hashLong(b: Uint8Array, len: number): void {
  ACC.set(ACC_INIT);
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
  A[0] = R[0] as number;
  A[1] = R[1] as number;
  for (let k = 0; k < 4; k++) {
    const s = 11 + 16 * k;
    mul128Fold64(
      (ACC[k * 4] as number) ^ s32(s + 4),
      (ACC[k * 4 + 1] as number) ^ s32(s),
      (ACC[k * 4 + 2] as number) ^ s32(s + 12),
      (ACC[k * 4 + 3] as number) ^ s32(s + 8),
    );
    addR(A[0] as number, A[1] as number);
    A[0] = R[0] as number;
    A[1] = R[1] as number;
  }
  avalanche3();
}

function run(b: Uint8Array, len: number): void {
  if (len <= 16) {
    if (len > 8) len9to16(b, len);
    else if (len >= 4) len4to8(b, len);
    else if (len > 0) len1to3(b, len);
    else {
      R[0] = s32(60) ^ s32(68);
      R[1] = s32(56) ^ s32(64);
      avalanche64();
    }
  } else if (len <= 128) len17to128(b, len);
  else if (len <= 240) len129to240(b, len);
  else hashLong(b, len);
}

/** xxh3-64 of `bytes[0 .. len)`, as [high 32 bits, low 32 bits] written into `into`. */
export function xxh3Parts(bytes: Uint8Array, len: number, into: Uint32Array): void {
  run(bytes, len);
  into[0] = R[0] as number;
  into[1] = R[1] as number;
}

/** xxh3-64 of `bytes[0 .. len)`, low 53 bits as an exact number. */
export function xxh3Low53(bytes: Uint8Array, len: number): number {
  run(bytes, len);
  return ((R[0] as number) & 0x1fffff) * TWO32 + ((R[1] as number) >>> 0);
}
