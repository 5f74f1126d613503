//! Key hashing.
//!
//! - [`hash_key`]: xxh3-64 (seed 0, default secret) of the key bytes, truncated to its low 53
//!   bits so that it crosses N-API as an exact JavaScript number (a double carries 53 bits
//!   exactly; a `u32` would throw away entropy other users such as Kafka partitioning want, a
//!   `BigInt` costs an allocation per call). Ring lookups use the low 32 bits (`h >>> 0` in JS).
//! - [`crc32`]: IEEE CRC-32 (the zlib/`cksum -o3` one), which nginx's `hash ... consistent`
//!   uses both to place servers on the ring and to hash request keys. Sluice uses it for ring
//!   placement; pass `crc32(key)` instead of `hash_key(key)` as the lookup hash to map keys
//!   exactly as nginx does.

/// Keeps a `u64` within the range a JavaScript number represents exactly.
pub const SAFE_INTEGER_MASK: u64 = (1 << 53) - 1;

/// xxh3-64 of `key`, masked to the low 53 bits (see module docs).
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64(key) & SAFE_INTEGER_MASK
}

/// Full xxh3-64 (seed 0). Maglev derives its offset and skip from the two halves.
#[inline]
pub fn xxh3_64(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Jump consistent hash (Lamping and Veach, arXiv:1406.2294): the bucket in `[0, buckets)` of
/// a 64-bit key, exactly the paper's C++; Kafka partitioning uses it with `hash_key(key)`
/// (src/workers/producer/partitions.ts is the JavaScript twin). `buckets` 0 gives 0.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

const CRC32_TABLE: [u32; 256] = make_crc32_table();

const fn make_crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Starts an incremental CRC-32 (the state is the pre-inverted register, as in nginx's
/// `ngx_crc32_init`).
pub const CRC32_INIT: u32 = 0xFFFF_FFFF;

/// Feeds `bytes` into an incremental CRC-32 state.
#[inline]
pub fn crc32_update(mut state: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        state = CRC32_TABLE[((state ^ b as u32) & 0xFF) as usize] ^ (state >> 8);
    }
    state
}

/// Finishes an incremental CRC-32.
#[inline]
pub fn crc32_final(state: u32) -> u32 {
    state ^ 0xFFFF_FFFF
}

/// One-shot IEEE CRC-32 of `bytes`.
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_final(crc32_update(CRC32_INIT, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut s = CRC32_INIT;
        s = crc32_update(s, b"1234");
        s = crc32_update(s, b"56789");
        assert_eq!(crc32_final(s), 0xCBF4_3926);
    }

    #[test]
    fn xxh3_known_values() {
        // Reference values of XXH3_64bits (seed 0) from the xxHash test suite.
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(xxh3_64(b"a"), 0xE6C6_32B6_1E96_4E1F);
        assert_eq!(xxh3_64(b"abc"), 0x78AF_5F94_892F_3950);
    }

    #[test]
    fn hash_key_is_safe_integer() {
        for n in 0..1000u32 {
            let h = hash_key(format!("key-{n}").as_bytes());
            assert!(h <= SAFE_INTEGER_MASK);
            assert_eq!(
                h,
                xxh3_64(format!("key-{n}").as_bytes()) & SAFE_INTEGER_MASK
            );
        }
    }

    #[test]
    fn jump_consistent_hash_matches_the_javascript_twin() {
        // From jumpConsistentHash(hashKey(key), n) in src/workers/producer/partitions.ts.
        for (key, n, hash, want) in [
            ("one-key", 3, 8129219140097090u64, 2),
            ("user-1", 7, 6216368499779017, 1),
            ("", 1, 1829609776846018, 0),
            ("abc", 1000, 4327216212031824, 489),
            ("zzz", 2147483647, 5291155108563388, 1106025474),
        ] {
            assert_eq!(hash_key(key.as_bytes()), hash, "{key}");
            assert_eq!(jump_consistent_hash(hash, n), want, "{key} over {n}");
        }
    }
}
