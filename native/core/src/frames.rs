//! The body of a `PRODUCE` frame of the worker → producer link (docs/kafka.md, "Frame
//! format"), read in place: the native fire-and-forget path of the producer process hands the
//! slices straight to librdkafka. `src/shared/kafka-frames.ts` (`decodeProduce`) is the
//! JavaScript twin; test/integration/kafka-events.test.ts sends the same events through both
//! paths to a real broker and compares what arrives.
//!
//! Little-endian. Body: `u32 id`, then the record: `i32 partition` · `u8 flags` · `u64
//! timestamp` (two `u32`, low first) · `u16 topicLength`, topic · `u32 keyLength`, key · `u16
//! headerCount`, per header `u16 nameLength`, name, `u32 valueLength`, value · `u32
//! valueLength`, value.

/// Record flags.
pub const RF_HASH_KEY: u8 = 1;
pub const RF_KEY_NULL: u8 = 2;
pub const RF_VALUE_NULL: u8 = 4;
pub const RF_UNORDERED: u8 = 8;
/// Fire-and-forget, order kept: may take the native client (one client, link order).
pub const RF_FF_ORDERED: u8 = 16;
/// The value is a request event's binary fields; the producer writes its JSON ([`crate::event_json`]).
pub const RF_EVENT: u8 = 32;

/// Most headers a record may carry here; a record with more takes the JavaScript path.
pub const MAX_HEADERS: usize = 8;

/// One `PRODUCE` body, as slices of the frame.
#[derive(Debug, Clone, Copy)]
pub struct Produce<'a> {
    pub id: u32,
    /// -1 = the producer decides.
    pub partition: i32,
    pub flags: u8,
    /// Milliseconds since the epoch; 0 = now.
    pub timestamp: i64,
    pub topic: &'a [u8],
    pub key: Option<&'a [u8]>,
    pub headers: [(&'a [u8], &'a [u8]); MAX_HEADERS],
    pub header_count: usize,
    pub value: Option<&'a [u8]>,
    /// Key + value lengths as framed: what the producer counts as the record's bytes.
    pub bytes: u32,
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its lengths say, or bytes after the value.
    Malformed,
    /// More than [`MAX_HEADERS`] headers (valid, but not for this path).
    TooManyHeaders,
}

struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.p.checked_add(n).ok_or(FrameError::Malformed)?;
        let s = self.b.get(self.p..end).ok_or(FrameError::Malformed)?;
        self.p = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// Reads a `PRODUCE` body (the bytes after the frame's type byte).
pub fn parse_produce(body: &[u8]) -> Result<Produce<'_>, FrameError> {
    let mut r = Reader { b: body, p: 0 };
    let id = r.u32()?;
    let partition = r.u32()? as i32;
    let flags = r.u8()?;
    let lo = r.u32()? as u64;
    let hi = r.u32()? as u64;
    let timestamp = ((hi << 32) | lo) as i64;
    let tl = r.u16()? as usize;
    let topic = r.take(tl)?;
    let kl = r.u32()?;
    let key_bytes = r.take(kl as usize)?;
    let hn = r.u16()? as usize;
    if hn > MAX_HEADERS {
        return Err(FrameError::TooManyHeaders);
    }
    let mut headers: [(&[u8], &[u8]); MAX_HEADERS] = [(&[], &[]); MAX_HEADERS];
    for h in headers.iter_mut().take(hn) {
        let nl = r.u16()? as usize;
        let name = r.take(nl)?;
        let vl = r.u32()? as usize;
        *h = (name, r.take(vl)?);
    }
    let vl = r.u32()?;
    let value_bytes = r.take(vl as usize)?;
    if r.p != body.len() {
        return Err(FrameError::Malformed);
    }
    Ok(Produce {
        id,
        partition: if partition < 0 { -1 } else { partition },
        flags,
        timestamp,
        topic,
        key: if flags & RF_KEY_NULL != 0 { None } else { Some(key_bytes) },
        headers,
        header_count: hn,
        value: if flags & RF_VALUE_NULL != 0 { None } else { Some(value_bytes) },
        bytes: kl.wrapping_add(vl),
    })
}

/// `accept` bits for [`fire_and_forget`]: RF_UNORDERED records (request events).
pub const ACCEPT_UNORDERED: u32 = 1;
/// `accept` bits: RF_FF_ORDERED records (async-only HTTP → Kafka routes).
pub const ACCEPT_ORDERED: u32 = 2;

/// Whether the native fire-and-forget client may take this record: no report wanted (id 0)
/// and a kind `accept` lets through. A record with [`needs_partition_count`] also needs its
/// topic's partition count.
pub fn fire_and_forget(p: &Produce<'_>, accept: u32) -> bool {
    let kind = (p.flags & RF_UNORDERED != 0 && accept & ACCEPT_UNORDERED != 0) || (p.flags & RF_FF_ORDERED != 0 && accept & ACCEPT_ORDERED != 0);
    p.id == 0 && kind
}

/// A record placed by jump consistent hash of its key over its topic's partition count (no
/// explicit partition; a keyless one is librdkafka's to place).
pub fn needs_partition_count(p: &Produce<'_>) -> bool {
    p.flags & RF_HASH_KEY != 0 && p.key.is_some() && p.partition < 0
}

/// Bytes of a frame's length prefix (`u32`, the type byte and body that follow).
pub const LENGTH_BYTES: usize = 4;
/// The frame type of a `PRODUCE` frame.
pub const FRAME_PRODUCE: u8 = 2;

/// One complete frame at the start of `buf[at..]`: `(type, body start, frame end)`, or None
/// when the frame is incomplete or its length is outside `1..=max_len` (the caller's reader
/// then holds it, or refuses it, as `FrameReader` in src/shared/kafka-frames.ts does).
pub fn next_frame(buf: &[u8], at: usize, max_len: u32) -> Option<(u8, usize, usize)> {
    let len_bytes = buf.get(at..at.checked_add(LENGTH_BYTES)?)?;
    let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if len < 1 || len > max_len {
        return None;
    }
    let end = (at + LENGTH_BYTES).checked_add(len as usize)?;
    if end > buf.len() {
        return None;
    }
    Some((buf[at + LENGTH_BYTES], at + LENGTH_BYTES + 1, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: u32, partition: i32, flags: u8, ts: u64, topic: &str, key: &[u8], headers: &[(&str, &[u8])], value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&partition.to_le_bytes());
        b.push(flags);
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(headers.len() as u16).to_le_bytes());
        for (n, v) in headers {
            b.extend_from_slice(&(n.len() as u16).to_le_bytes());
            b.extend_from_slice(n.as_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(v);
        }
        b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        b.extend_from_slice(value);
        b
    }

    #[test]
    fn reads_every_field() {
        let b = body(7, -1, RF_UNORDERED, 1_700_000_000_123, "events", b"route|1.2.3.4", &[("x-request-id", b"abc")], b"{\"a\":1}");
        let p = parse_produce(&b).unwrap();
        assert_eq!(p.id, 7);
        assert_eq!(p.partition, -1);
        assert_eq!(p.flags, RF_UNORDERED);
        assert_eq!(p.timestamp, 1_700_000_000_123);
        assert_eq!(p.topic, b"events");
        assert_eq!(p.key, Some(&b"route|1.2.3.4"[..]));
        assert_eq!(p.header_count, 1);
        assert_eq!(p.headers[0], (&b"x-request-id"[..], &b"abc"[..]));
        assert_eq!(p.value, Some(&b"{\"a\":1}"[..]));
        assert_eq!(p.bytes, 13 + 7);
    }

    #[test]
    fn null_key_and_value_and_negative_partitions() {
        let b = body(0, -5, RF_KEY_NULL | RF_VALUE_NULL, 0, "t", b"", &[], b"");
        let p = parse_produce(&b).unwrap();
        assert_eq!(p.partition, -1);
        assert_eq!(p.key, None);
        assert_eq!(p.value, None);
        assert_eq!(p.bytes, 0);
        let b = body(0, 3, 0, 0, "t", b"", &[], b"");
        assert_eq!(parse_produce(&b).unwrap().key, Some(&b""[..]));
        assert_eq!(parse_produce(&b).unwrap().partition, 3);
    }

    #[test]
    fn refuses_short_long_and_header_heavy_bodies() {
        let b = body(1, -1, 0, 0, "topic", b"k", &[("h", b"v")], b"value");
        for cut in 0..b.len() {
            assert_eq!(parse_produce(&b[..cut]).unwrap_err(), FrameError::Malformed, "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(parse_produce(&long).unwrap_err(), FrameError::Malformed);
        let many: Vec<(&str, &[u8])> = (0..=MAX_HEADERS).map(|_| ("h", &b"v"[..])).collect();
        let b = body(1, -1, 0, 0, "t", b"", &many, b"");
        assert_eq!(parse_produce(&b).unwrap_err(), FrameError::TooManyHeaders);
        // A length that overflows the position is malformed, not a panic.
        let mut huge = body(1, -1, 0, 0, "t", b"", &[], b"");
        let at = huge.len() - 4;
        huge[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_produce(&huge).unwrap_err(), FrameError::Malformed);
    }

    #[test]
    fn splits_frames() {
        let a = body(0, -1, RF_UNORDERED, 0, "t", b"", &[], b"v");
        let mut buf = vec![9u8]; // bytes before the first frame
        for _ in 0..2 {
            buf.extend_from_slice(&((a.len() + 1) as u32).to_le_bytes());
            buf.push(FRAME_PRODUCE);
            buf.extend_from_slice(&a);
        }
        let (t, s, e) = next_frame(&buf, 1, 1 << 20).unwrap();
        assert_eq!((t, s, e), (FRAME_PRODUCE, 6, 6 + a.len()));
        assert!(parse_produce(&buf[s..e]).is_ok());
        let (_, s2, e2) = next_frame(&buf, e, 1 << 20).unwrap();
        assert_eq!((s2, e2), (e + 5, buf.len()));
        assert_eq!(next_frame(&buf, e2, 1 << 20), None);
        // Every truncation of the second frame is incomplete.
        for cut in e..buf.len() {
            assert_eq!(next_frame(&buf[..cut], e, 1 << 20), None, "cut at {cut}");
        }
        // Lengths outside 1..=max are not frames here.
        assert_eq!(next_frame(&buf, 1, a.len() as u32), None);
        assert_eq!(next_frame(&[0, 0, 0, 0, 2], 0, 1 << 20), None);
        assert_eq!(next_frame(&[0xff, 0xff, 0xff, 0xff, 2], 0, u32::MAX), None);
    }

    #[test]
    fn which_records_the_native_client_takes() {
        let take = |id: u32, flags: u8, key: &[u8], accept: u32| {
            let b = body(id, -1, flags, 0, "t", key, &[], b"v");
            fire_and_forget(&parse_produce(&b).unwrap(), accept)
        };
        let all = ACCEPT_UNORDERED | ACCEPT_ORDERED;
        assert!(take(0, RF_UNORDERED, b"k", all));
        assert!(take(0, RF_FF_ORDERED, b"k", all));
        assert!(!take(7, RF_UNORDERED, b"k", all), "a report is wanted");
        assert!(!take(0, 0, b"k", all), "neither kind");
        assert!(!take(0, RF_UNORDERED, b"k", ACCEPT_ORDERED));
        assert!(!take(0, RF_FF_ORDERED, b"k", ACCEPT_UNORDERED));
        let needs = |flags: u8, key: &[u8], partition: i32| {
            let b = body(0, partition, flags, 0, "t", key, &[], b"v");
            needs_partition_count(&parse_produce(&b).unwrap())
        };
        assert!(needs(RF_FF_ORDERED | RF_HASH_KEY, b"k", -1));
        assert!(!needs(RF_FF_ORDERED | RF_HASH_KEY | RF_KEY_NULL, b"", -1), "keyless: librdkafka places it");
        assert!(!needs(RF_FF_ORDERED | RF_HASH_KEY, b"k", 2), "an explicit partition");
        assert!(!needs(RF_FF_ORDERED, b"k", -1), "librdkafka's partitioner");
    }
}
