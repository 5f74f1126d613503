//! Consistent-hashing tables: a ketama ring (nginx `hash ... consistent` placement) and a Maglev
//! lookup table, each packed into one `u32` array ("table") with a self-describing header, so
//! that the same array can be searched natively or by the JavaScript twin
//! (`src/shared/native/hashing.ts`), copied into a SharedArrayBuffer, or posted to a worker.
//!
//! Table layout (all `u32`):
//!
//! ```text
//! [0] kind           KIND_KETAMA or KIND_MAGLEV
//! [1] host count     H
//! [2] size           N: ring points (ketama, after de-duplication) or table size M (Maglev)
//! [3] total weight   sum of host weights
//! [4 .. 4+H)         weight of each host, in input order
//! ketama: [4+H .. 4+H+N)      point hashes, ascending
//!         [4+H+N .. 4+H+2N)   host index of each point
//! maglev: [4+H .. 4+H+M)      host index of each slot
//! ```
//!
//! Lookups take the key's hash as a `u32` (the low 32 bits of `hash_key`, or `crc32(key)` to
//! map keys exactly like nginx) and never allocate.

use crate::hash::{crc32_final, crc32_update, xxh3_64, CRC32_INIT};

pub const KIND_KETAMA: u32 = 0x534C_4B31; // "SLK1"
pub const KIND_MAGLEV: u32 = 0x534C_4D31; // "SLM1"

pub const HDR_KIND: usize = 0;
pub const HDR_HOSTS: usize = 1;
pub const HDR_SIZE: usize = 2;
pub const HDR_TOTAL_WEIGHT: usize = 3;
pub const HDR_LEN: usize = 4;

/// Ring points per unit of weight, as nginx and pingora-ketama use.
pub const KETAMA_POINTS_PER_WEIGHT: u32 = 160;
/// Largest accepted weight of one host.
pub const MAX_WEIGHT: u32 = 10_000;

/// `maxSteps` as the lookups take it from JavaScript: NaN and negatives are 0, fractions round
/// down, anything from 2^32 - 1 up (Infinity included) is `u32::MAX`, i.e. the whole table.
/// The JavaScript twin does the same.
pub fn steps(max_steps: f64) -> u32 {
    if max_steps >= u32::MAX as f64 {
        u32::MAX
    } else if max_steps > 0.0 {
        max_steps as u32
    } else {
        0
    }
}
/// Largest accepted host count (host indices must fit the JS twin's sort key).
pub const MAX_HOSTS: usize = 65_536;
/// Cap on ring points (total weight * 160), i.e. 64 MiB of ring.
pub const MAX_KETAMA_POINTS: u64 = 1 << 23;
/// Default Maglev table size (prime, as in the Maglev paper's examples).
pub const DEFAULT_MAGLEV_SIZE: u32 = 65_537;
/// Largest accepted Maglev table size.
pub const MAX_MAGLEV_SIZE: u32 = 1 << 24;

/// One upstream host as the builders see it.
#[derive(Debug, Clone)]
pub struct HostSpec<'a> {
    /// `host:port` (nginx splits at the last `:` for ketama placement; Maglev hashes all of it).
    pub id: &'a [u8],
    /// Integer weight, 1..=MAX_WEIGHT.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    TooManyHosts,
    BadWeight(usize),
    TooManyPoints,
    BadTableSize,
    BadTable,
    ShortArray,
    BadFactor,
}

impl RingError {
    pub fn message(&self) -> String {
        match self {
            RingError::TooManyHosts => format!("at most {MAX_HOSTS} hosts"),
            RingError::BadWeight(i) => {
                format!("hosts[{i}].weight must be an integer from 1 to {MAX_WEIGHT}")
            }
            RingError::TooManyPoints => {
                format!("total weight * 160 must not exceed {MAX_KETAMA_POINTS} ring points")
            }
            RingError::BadTableSize => format!(
                "Maglev table size must be a prime >= the host count and <= {MAX_MAGLEV_SIZE}"
            ),
            RingError::BadTable => "not a ketama ring or Maglev table".to_string(),
            RingError::ShortArray => "eligible/loads must have one entry per host".to_string(),
            RingError::BadFactor => "balance factor must be a finite number >= 1".to_string(),
        }
    }
}

fn check_hosts(hosts: &[HostSpec]) -> Result<u64, RingError> {
    if hosts.len() > MAX_HOSTS {
        return Err(RingError::TooManyHosts);
    }
    let mut total = 0u64;
    for (i, h) in hosts.iter().enumerate() {
        if h.weight == 0 || h.weight > MAX_WEIGHT {
            return Err(RingError::BadWeight(i));
        }
        total += h.weight as u64;
    }
    Ok(total)
}

fn header(kind: u32, hosts: &[HostSpec], size: usize, total_weight: u64, data: usize) -> Vec<u32> {
    let mut t = Vec::with_capacity(HDR_LEN + hosts.len() + data);
    t.extend_from_slice(&[kind, hosts.len() as u32, size as u32, total_weight as u32]);
    t.extend(hosts.iter().map(|h| h.weight));
    t
}

/// nginx's split of a server name for ketama: host before the last `:`, port after it (no
/// `:` → all host, empty port). `unix:` names hash the path as host with an empty port.
fn split_host_port(id: &[u8]) -> (&[u8], &[u8]) {
    if id.len() >= 5 && id[..5].eq_ignore_ascii_case(b"unix:") {
        return (&id[5..], &[]);
    }
    match id.iter().rposition(|&c| c == b':') {
        Some(i) => (&id[..i], &id[i + 1..]),
        None => (id, &[]),
    }
}

/// Builds a ketama ring: for each host, `160 * weight` points whose hashes are
/// `crc32(host "\0" port prev_hash_le32)`, `prev_hash` starting at 0 and then the previous
/// point's hash — nginx's `ngx_http_upstream_update_chash` (and pingora-ketama's) placement.
/// Points are sorted by hash; of several points with one hash only the one of the lowest host
/// index is kept (nginx keeps whichever its unstable qsort put first).
pub fn build_ketama(hosts: &[HostSpec]) -> Result<Vec<u32>, RingError> {
    let total_weight = check_hosts(hosts)?;
    let total_points = total_weight * KETAMA_POINTS_PER_WEIGHT as u64;
    if total_points > MAX_KETAMA_POINTS {
        return Err(RingError::TooManyPoints);
    }
    // (hash << 32 | host) sorts by hash, then host.
    let mut points: Vec<u64> = Vec::with_capacity(total_points as usize);
    for (index, h) in hosts.iter().enumerate() {
        let (host, port) = split_host_port(h.id);
        let mut base = crc32_update(CRC32_INIT, host);
        base = crc32_update(base, &[0]);
        base = crc32_update(base, port);
        let mut prev: u32 = 0;
        for _ in 0..h.weight * KETAMA_POINTS_PER_WEIGHT {
            let hash = crc32_final(crc32_update(base, &prev.to_le_bytes()));
            points.push(((hash as u64) << 32) | index as u64);
            prev = hash;
        }
    }
    points.sort_unstable();
    points.dedup_by_key(|p| *p >> 32);
    let n = points.len();
    let mut t = header(KIND_KETAMA, hosts, n, total_weight, 2 * n);
    t.extend(points.iter().map(|p| (p >> 32) as u32));
    t.extend(points.iter().map(|p| *p as u32));
    Ok(t)
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

const EMPTY_SLOT: u32 = u32::MAX;

/// Builds a Maglev table of prime size `m` (Eisenbud et al., NSDI '16, §3.4). Host `i`'s
/// preference list is `(offset + j * skip) mod m` with `offset = lo32(xxh3(id)) mod m` and
/// `skip = hi32(xxh3(id)) mod (m - 1) + 1`. Hosts take turns claiming their next free
/// preferred slot; weights follow Envoy's scheme: in round `r` (from 1) host `i` takes a turn
/// when `r * weight_i >= target_i`, after which `target_i += max_weight`, so a host of the
/// largest weight claims every round and one of a third of it every third round.
pub fn build_maglev(hosts: &[HostSpec], m: u32) -> Result<Vec<u32>, RingError> {
    let total_weight = check_hosts(hosts)?;
    if !is_prime(m) || m > MAX_MAGLEV_SIZE || (m as usize) < hosts.len() {
        return Err(RingError::BadTableSize);
    }
    if hosts.is_empty() {
        return Ok(header(KIND_MAGLEV, hosts, 0, 0, 0));
    }
    let m64 = m as u64;
    let n = hosts.len();
    let mut offset = Vec::with_capacity(n);
    let mut skip = Vec::with_capacity(n);
    for h in hosts {
        let x = xxh3_64(h.id);
        offset.push((x & 0xFFFF_FFFF) % m64);
        skip.push((x >> 32) % (m64 - 1) + 1);
    }
    let max_weight = hosts.iter().map(|h| h.weight as u64).max().unwrap_or(1);
    let mut next = vec![0u64; n];
    let mut target = vec![0u64; n];
    let mut slots = vec![EMPTY_SLOT; m as usize];
    let mut filled = 0u64;
    let mut round = 1u64;
    while filled < m64 {
        for i in 0..n {
            if filled == m64 {
                break;
            }
            if round * (hosts[i].weight as u64) < target[i] {
                continue;
            }
            target[i] += max_weight;
            let mut c = ((offset[i] + next[i] * skip[i]) % m64) as usize;
            while slots[c] != EMPTY_SLOT {
                next[i] += 1;
                c = ((offset[i] + next[i] * skip[i]) % m64) as usize;
            }
            slots[c] = i as u32;
            next[i] += 1;
            filled += 1;
        }
        round += 1;
    }
    let mut t = header(KIND_MAGLEV, hosts, m as usize, total_weight, m as usize);
    t.extend_from_slice(&slots);
    Ok(t)
}

/// A checked view of a table.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    ketama: bool,
    hosts: usize,
    size: usize,
    weights: &'a [u32],
    /// ketama: point hashes; maglev: slot → host.
    a: &'a [u32],
    /// ketama: point → host; maglev: empty.
    b: &'a [u32],
}

impl<'a> Table<'a> {
    pub fn new(t: &'a [u32]) -> Result<Self, RingError> {
        if t.len() < HDR_LEN {
            return Err(RingError::BadTable);
        }
        let ketama = match t[HDR_KIND] {
            KIND_KETAMA => true,
            KIND_MAGLEV => false,
            _ => return Err(RingError::BadTable),
        };
        let hosts = t[HDR_HOSTS] as usize;
        let size = t[HDR_SIZE] as usize;
        let base = HDR_LEN + hosts;
        let data = if ketama { 2 * size } else { size };
        if t.len() != base + data {
            return Err(RingError::BadTable);
        }
        let weights = &t[HDR_LEN..base];
        Ok(if ketama {
            Table {
                ketama,
                hosts,
                size,
                weights,
                a: &t[base..base + size],
                b: &t[base + size..],
            }
        } else {
            Table {
                ketama,
                hosts,
                size,
                weights,
                a: &t[base..],
                b: &[],
            }
        })
    }

    pub fn host_count(&self) -> usize {
        self.hosts
    }

    /// Index of the key's first point (ketama: first point hash >= key hash, wrapping to 0) or
    /// slot (Maglev: key hash mod M). Requires `size > 0`.
    #[inline]
    fn start(&self, key_hash: u32) -> usize {
        if self.ketama {
            let i = self.a.partition_point(|&h| h < key_hash);
            if i == self.size {
                0
            } else {
                i
            }
        } else {
            key_hash as usize % self.size
        }
    }

    #[inline]
    fn host_at(&self, i: usize) -> u32 {
        if self.ketama {
            self.b[i]
        } else {
            self.a[i]
        }
    }

    /// The key's host, or -1 for an empty table.
    pub fn lookup(&self, key_hash: u32) -> i32 {
        if self.size == 0 {
            return -1;
        }
        self.host_at(self.start(key_hash)) as i32
    }

    /// Walks at most `max_steps` points/slots from the key's position (the first one included)
    /// and returns the first host with a non-zero `eligible` byte, or -1.
    pub fn lookup_walk(
        &self,
        key_hash: u32,
        max_steps: u32,
        eligible: &[u8],
    ) -> Result<i32, RingError> {
        if eligible.len() < self.hosts {
            return Err(RingError::ShortArray);
        }
        if self.size == 0 {
            return Ok(-1);
        }
        let mut i = self.start(key_hash);
        for _ in 0..(max_steps as usize).min(self.size) {
            let h = self.host_at(i);
            if eligible.get(h as usize).is_some_and(|&e| e != 0) {
                return Ok(h as i32);
            }
            i += 1;
            if i == self.size {
                i = 0;
            }
        }
        Ok(-1)
    }

    /// Bounded-load walk (HAProxy `hash-balance-factor`, "consistent hashing with bounded
    /// loads"): like [`Table::lookup_walk`], but skips an eligible host `h` whose in-flight
    /// count would exceed its share, i.e. returns the first with
    /// `loads[h] + 1 <= max(1, ceil(factor * (L + 1) * w[h] / W))`, where `L` is the sum of
    /// `loads` over all hosts and `W` the total weight of the eligible hosts. When every
    /// eligible host within `max_steps` is over its bound, returns the first eligible one
    /// (load is advice, eligibility is not); -1 when none is eligible.
    pub fn lookup_bounded(
        &self,
        key_hash: u32,
        max_steps: u32,
        eligible: &[u8],
        loads: &[i32],
        factor: f64,
    ) -> Result<i32, RingError> {
        if eligible.len() < self.hosts || loads.len() < self.hosts {
            return Err(RingError::ShortArray);
        }
        if factor.is_nan() || factor < 1.0 || factor.is_infinite() {
            return Err(RingError::BadFactor);
        }
        if self.size == 0 {
            return Ok(-1);
        }
        let mut total_load: i64 = 0;
        let mut eligible_weight: u64 = 0;
        for h in 0..self.hosts {
            total_load += loads[h] as i64;
            if eligible[h] != 0 {
                eligible_weight += self.weights[h] as u64;
            }
        }
        if eligible_weight == 0 {
            return Ok(-1);
        }
        let share = factor * (total_load as f64 + 1.0);
        let eligible_weight = eligible_weight as f64;
        let mut first = -1i32;
        let mut i = self.start(key_hash);
        for _ in 0..(max_steps as usize).min(self.size) {
            let h = self.host_at(i) as usize;
            if h < self.hosts && eligible[h] != 0 {
                if first < 0 {
                    first = h as i32;
                }
                let cap = (share * self.weights[h] as f64 / eligible_weight)
                    .ceil()
                    .max(1.0);
                if loads[h] as f64 + 1.0 <= cap {
                    return Ok(h as i32);
                }
            }
            i += 1;
            if i == self.size {
                i = 0;
            }
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::crc32;

    fn specs(ids: &[String], weight: u32) -> Vec<HostSpec<'_>> {
        ids.iter()
            .map(|id| HostSpec {
                id: id.as_bytes(),
                weight,
            })
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:8080", i / 250, i % 250 + 1))
            .collect()
    }

    fn key_hash(i: u32) -> u32 {
        crate::hash::hash_key(format!("key-{i}").as_bytes()) as u32
    }

    /// nginx `hash $request_uri consistent` over 10.0.0.1-9:443 weight=100: 1001 URIs and
    /// the upstream nginx picked (test data from pingora-ketama, Apache-2.0).
    #[test]
    fn matches_nginx_sample_data() {
        let data = include_str!("../testdata/sample-nginx-upstream.csv");
        let ids: Vec<String> = (1..=9).map(|i| format!("10.0.0.{i}:443")).collect();
        let table = build_ketama(&specs(&ids, 100)).unwrap();
        let t = Table::new(&table).unwrap();
        let mut checked = 0;
        for line in data.lines() {
            let (uri, upstream) = line.split_once(',').unwrap();
            let host = t.lookup(crc32(uri.as_bytes()));
            assert_eq!(ids[host as usize], upstream, "{uri}");
            checked += 1;
        }
        assert_eq!(checked, 1001);
    }

    /// pingora-ketama's `matches_nginx_sample` and `node_iter` cases.
    #[test]
    fn matches_pingora_samples() {
        let ids: Vec<String> = vec!["127.0.0.1:7777".into(), "127.0.0.1:7778".into()];
        let table = build_ketama(&specs(&ids, 1)).unwrap();
        let t = Table::new(&table).unwrap();
        for (k, want) in [
            ("/some/path", 1),
            ("/some/longer/path", 0),
            ("/sad/zaidoon", 1),
            ("/g", 0),
            ("/pingora/team/is/cool/and/this/is/a/long/uri", 1),
            ("/i/am/not/confident/in/this/code", 0),
        ] {
            assert_eq!(t.lookup(crc32(k.as_bytes())), want, "{k}");
        }

        let ids: Vec<String> = vec![
            "127.0.0.1:7777".into(),
            "127.0.0.1:7778".into(),
            "127.0.0.1:7779".into(),
        ];
        let table = build_ketama(&specs(&ids, 1)).unwrap();
        let t = Table::new(&table).unwrap();
        let mut seq = Vec::new();
        let mut i = t.start(crc32(b"doghash"));
        for _ in 0..8 {
            seq.push(t.host_at(i));
            i = (i + 1) % t.size;
        }
        assert_eq!(seq, [1, 2, 2, 0, 0, 1, 1, 2]);
    }

    #[test]
    fn ketama_layout() {
        let ids = ids(3);
        let mut hosts = specs(&ids, 1);
        hosts[1].weight = 2;
        let table = build_ketama(&hosts).unwrap();
        assert_eq!(&table[..7], &[KIND_KETAMA, 3, 640, 4, 1, 2, 1]);
        let t = Table::new(&table).unwrap();
        assert!(t.a.windows(2).all(|w| w[0] < w[1]));
        let mut counts = [0; 3];
        for &h in t.b {
            counts[h as usize] += 1;
        }
        assert_eq!(counts, [160, 320, 160]);
    }

    #[test]
    fn ketama_minimal_disruption() {
        let all = ids(10);
        let before = build_ketama(&specs(&all[..9], 1)).unwrap();
        let after = build_ketama(&specs(&all, 1)).unwrap();
        let (b, a) = (Table::new(&before).unwrap(), Table::new(&after).unwrap());
        let mut moved = 0;
        for k in 0..20_000 {
            let (x, y) = (b.lookup(key_hash(k)), a.lookup(key_hash(k)));
            if x != y {
                assert_eq!(y, 9, "keys only move to the new host");
                moved += 1;
            }
        }
        let frac = moved as f64 / 20_000.0;
        assert!((0.05..0.16).contains(&frac), "moved {frac}");
    }

    #[test]
    fn maglev_balance_and_disruption() {
        let all = ids(10);
        let table = build_maglev(&specs(&all, 1), DEFAULT_MAGLEV_SIZE).unwrap();
        let t = Table::new(&table).unwrap();
        let mut counts = [0u32; 10];
        for &h in t.a {
            counts[h as usize] += 1;
        }
        let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");

        let fewer = build_maglev(&specs(&all[..9], 1), DEFAULT_MAGLEV_SIZE).unwrap();
        let f = Table::new(&fewer).unwrap();
        let changed = t.a.iter().zip(f.a).filter(|(x, y)| x != y).count();
        // Slots of the removed host must move (1/10); Maglev moves a few more than that.
        let frac = changed as f64 / DEFAULT_MAGLEV_SIZE as f64;
        assert!((0.09..0.15).contains(&frac), "changed {frac}");
    }

    #[test]
    fn maglev_weights() {
        let ids = ids(3);
        let mut hosts = specs(&ids, 1);
        hosts[2].weight = 3;
        let table = build_maglev(&hosts, 1009).unwrap();
        let t = Table::new(&table).unwrap();
        let mut counts = [0u32; 3];
        for &h in t.a {
            counts[h as usize] += 1;
        }
        assert!(
            (counts[2] as f64 / counts[0] as f64 - 3.0).abs() < 0.05,
            "{counts:?}"
        );
    }

    #[test]
    fn table_size_must_be_prime() {
        let ids = ids(3);
        assert_eq!(
            build_maglev(&specs(&ids, 1), 65_536),
            Err(RingError::BadTableSize)
        );
        assert_eq!(
            build_maglev(&specs(&ids, 1), 2),
            Err(RingError::BadTableSize)
        );
        assert!(build_maglev(&specs(&ids, 1), 3).is_ok());
    }

    #[test]
    fn walk_skips_ineligible_and_is_bounded() {
        let ids = ids(5);
        for table in [
            build_ketama(&specs(&ids, 1)).unwrap(),
            build_maglev(&specs(&ids, 1), 101).unwrap(),
        ] {
            let t = Table::new(&table).unwrap();
            let mut eligible = vec![1u8; 5];
            for k in 0..1000 {
                let first = t.lookup(key_hash(k));
                assert_eq!(t.lookup_walk(key_hash(k), 1, &eligible), Ok(first));
                eligible[first as usize] = 0;
                let next = t.lookup_walk(key_hash(k), 1000, &eligible).unwrap();
                assert!(next >= 0 && next != first);
                eligible[first as usize] = 1;
            }
            let none = vec![0u8; 5];
            assert_eq!(t.lookup_walk(1, u32::MAX, &none), Ok(-1));
            assert_eq!(t.lookup_walk(1, 0, &eligible), Ok(-1));
            assert_eq!(
                t.lookup_walk(1, 1, &eligible[..4]),
                Err(RingError::ShortArray)
            );
        }
    }

    #[test]
    fn bounded_load_holds_for_a_hot_key() {
        let ids = ids(8);
        let table = build_ketama(&specs(&ids, 1)).unwrap();
        let t = Table::new(&table).unwrap();
        let eligible = vec![1u8; 8];
        let mut loads = vec![0i32; 8];
        for _ in 0..1000 {
            // One key only: without the bound every request would land on one host.
            let h = t
                .lookup_bounded(7, u32::MAX, &eligible, &loads, 1.25)
                .unwrap();
            loads[h as usize] += 1;
            let total: i32 = loads.iter().sum();
            let cap = (1.25 * total as f64 / 8.0).ceil() as i32;
            assert!(loads.iter().all(|&l| l <= cap.max(1)), "{loads:?}");
        }
    }

    #[test]
    fn empty_and_bad_tables() {
        let empty = build_ketama(&[]).unwrap();
        let t = Table::new(&empty).unwrap();
        assert_eq!(t.lookup(5), -1);
        assert_eq!(t.lookup_walk(5, 10, &[]), Ok(-1));
        assert_eq!(t.lookup_bounded(5, 10, &[], &[], 1.25), Ok(-1));
        assert!(Table::new(&[1, 2, 3]).is_err());
        let mut bad = build_ketama(&specs(&ids(2), 1)).unwrap();
        bad.pop();
        assert!(Table::new(&bad).is_err());
        assert_eq!(
            build_ketama(&[HostSpec {
                id: b"a:1",
                weight: 0
            }]),
            Err(RingError::BadWeight(0))
        );
    }

    #[test]
    fn split_like_nginx() {
        assert_eq!(
            split_host_port(b"10.0.0.1:443"),
            (&b"10.0.0.1"[..], &b"443"[..])
        );
        assert_eq!(split_host_port(b"[::1]:80"), (&b"[::1]"[..], &b"80"[..]));
        assert_eq!(split_host_port(b"backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(
            split_host_port(b"unix:/tmp/s.sock"),
            (&b"/tmp/s.sock"[..], &b""[..])
        );
    }

    #[test]
    fn steps_from_a_js_number() {
        assert_eq!(steps(f64::NAN), 0);
        assert_eq!(steps(-3.0), 0);
        assert_eq!(steps(0.0), 0);
        assert_eq!(steps(2.9), 2);
        assert_eq!(steps(4294967294.0), 4294967294);
        assert_eq!(steps(4294967295.0), u32::MAX);
        assert_eq!(steps(f64::INFINITY), u32::MAX);
    }
}
