//! A request event's JSON, written from the binary fields an HTTP worker sends (a `PRODUCE`
//! record with flag `RF_EVENT`, docs/kafka.md "Request events"). The worker copies strings
//! and numbers only; the producer process writes the JSON here, hundreds of events per
//! native call, where the code and its tables stay in cache. The text must equal what
//! `JSON.stringify` gives for the event object, byte for byte: `src/shared/event-binary.ts`
//! (`formatEventJson`) is the JavaScript twin, and test/unit/event-binary.test.ts holds both to
//! `JSON.stringify` on the same inputs.
//!
//! Little-endian. Numbers are `f64`. A string is `u32 n` then its bytes: `n = u32::MAX` is
//! `null`; with bit 31 set the `n & 0x7fff_ffff` bytes are already a JSON string literal
//! (quotes and escapes included: the worker's way for text with non-ASCII characters); else
//! they are ASCII, escaped here as `JSON.stringify` escapes. Fields, in order: seq (number,
//! written as a string), instance, worker, ts, requestId, client, method, host, path, route,
//! upstream, upstreamHost, lbKey (nullable), status, bytesIn, bytesOut, latency (thousandths
//! of a ms), `u32` attempt count (`u32::MAX` = null) then per attempt host, at and ms
//! (thousandths), outcome; `u32` flag count then the flags; error (nullable); `u32` header
//! count (`u32::MAX` = no `headers` member) then name, value pairs.

/// Why a binary event was not formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

const NULL_LEN: u32 = u32::MAX;
const LITERAL: u32 = 0x8000_0000;
const HEX: &[u8; 16] = b"0123456789abcdef";

struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.p.checked_add(n).ok_or(Malformed)?;
        let s = self.b.get(self.p..end).ok_or(Malformed)?;
        self.p = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn f64(&mut self) -> Result<f64, Malformed> {
        let s = self.take(8)?;
        Ok(f64::from_le_bytes([
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ]))
    }
}

/// Appends the JSON of the binary event `bin` to `out`; on error `out` may hold a part.
pub fn format_event(bin: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let mut r = Reader { b: bin, p: 0 };
    out.extend_from_slice(b"{\"seq\":\"");
    num(out, r.f64()?);
    out.extend_from_slice(b"\",\"instance\":");
    string(&mut r, out)?;
    out.extend_from_slice(b",\"worker\":");
    num(out, r.f64()?);
    out.extend_from_slice(b",\"ts\":");
    num(out, r.f64()?);
    for key in [
        &b",\"requestId\":"[..],
        b",\"client\":",
        b",\"method\":",
        b",\"host\":",
        b",\"path\":",
        b",\"route\":",
        b",\"upstream\":",
        b",\"upstreamHost\":",
        b",\"lbKey\":",
    ] {
        out.extend_from_slice(key);
        string(&mut r, out)?;
    }
    for key in [&b",\"status\":"[..], b",\"bytesIn\":", b",\"bytesOut\":"] {
        out.extend_from_slice(key);
        num(out, r.f64()?);
    }
    out.extend_from_slice(b",\"latencyMs\":");
    milli(out, r.f64()?);
    out.extend_from_slice(b",\"attempts\":");
    let tries = r.u32()?;
    if tries == NULL_LEN {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'[');
        for i in 0..tries {
            out.extend_from_slice(if i == 0 {
                b"{\"host\":"
            } else {
                b",{\"host\":"
            });
            string(&mut r, out)?;
            out.extend_from_slice(b",\"at\":");
            milli(out, r.f64()?);
            out.extend_from_slice(b",\"ms\":");
            milli(out, r.f64()?);
            out.extend_from_slice(b",\"outcome\":");
            string(&mut r, out)?;
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"flags\":[");
    let flags = r.u32()?;
    for i in 0..flags {
        if i > 0 {
            out.push(b',');
        }
        string(&mut r, out)?;
    }
    out.extend_from_slice(b"],\"error\":");
    string(&mut r, out)?;
    let headers = r.u32()?;
    if headers != NULL_LEN {
        out.extend_from_slice(b",\"headers\":{");
        for i in 0..headers {
            if i > 0 {
                out.push(b',');
            }
            string(&mut r, out)?;
            out.push(b':');
            string(&mut r, out)?;
        }
        out.push(b'}');
    }
    out.push(b'}');
    if r.p != bin.len() {
        return Err(Malformed);
    }
    Ok(())
}

/// A string field: null, a ready literal, or ASCII to escape.
fn string(r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let n = r.u32()?;
    if n == NULL_LEN {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    let bytes = r.take((n & !LITERAL) as usize)?;
    if n & LITERAL != 0 {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[from..i]);
        from = i + 1;
        out.push(b'\\');
        match c {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            0x08 => out.push(b'b'),
            b'\t' => out.push(b't'),
            b'\n' => out.push(b'n'),
            0x0c => out.push(b'f'),
            b'\r' => out.push(b'r'),
            _ => out.extend_from_slice(&[
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
    Ok(())
}

const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

fn is_safe_integer(v: f64) -> bool {
    v.is_finite() && v.trunc() == v && v.abs() <= MAX_SAFE
}

fn int(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = v;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A number as `JSON.stringify` writes it: safe integers in decimal, non-finite as null, the
/// rest in the shortest text that reads back the same (JavaScript's exponent forms outside
/// 1e-6 ≤ |v| < 1e21).
fn num(out: &mut Vec<u8>, v: f64) {
    if is_safe_integer(v) {
        if v < 0.0 {
            out.push(b'-');
        }
        int(out, v.abs() as u64);
    } else if !v.is_finite() {
        out.extend_from_slice(b"null");
    } else {
        let a = v.abs();
        if (1e-6..1e21).contains(&a) {
            out.extend_from_slice(format!("{v}").as_bytes());
        } else {
            // Rust writes 1.5e-7 and 1e21; JavaScript 1.5e-7 and 1e+21.
            let t = format!("{v:e}");
            match t.split_once('e') {
                Some((m, e)) if !e.starts_with('-') => {
                    out.extend_from_slice(m.as_bytes());
                    out.extend_from_slice(b"e+");
                    out.extend_from_slice(e.as_bytes());
                }
                _ => out.extend_from_slice(t.as_bytes()),
            }
        }
    }
}

/// `k / 1000` as `JSON.stringify` writes that number, for an integer `k` (a duration kept in
/// thousandths): k's digits with the point three places in, trailing zeros dropped.
fn milli(out: &mut Vec<u8>, k: f64) {
    if !is_safe_integer(k) || k.abs() >= 1e15 {
        num(out, k / 1000.0);
        return;
    }
    if k < 0.0 {
        out.push(b'-');
    }
    let k = k.abs() as u64;
    int(out, k / 1000);
    let mut frac = k % 1000;
    if frac == 0 {
        return;
    }
    out.push(b'.');
    let mut width = 3;
    while frac.is_multiple_of(10) {
        frac /= 10;
        width -= 1;
    }
    let mut d = [b'0'; 3];
    for i in (0..width).rev() {
        d[i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.extend_from_slice(&d[..width]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            None => out.extend_from_slice(&NULL_LEN.to_le_bytes()),
            Some(t) => {
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
    fn lit(out: &mut Vec<u8>, t: &str) {
        out.extend_from_slice(&(t.len() as u32 | LITERAL).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    fn f(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    fn sample(
        tries: Option<&[(&str, f64, f64, &str)]>,
        headers: Option<&[(&str, &str)]>,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b, 42.0);
        s(&mut b, Some("inst\"1"));
        f(&mut b, 3.0);
        f(&mut b, 1_764_000_000_123.0);
        s(&mut b, Some("rid-1"));
        s(&mut b, Some("127.0.0.1"));
        s(&mut b, Some("GET"));
        s(&mut b, Some("example.com"));
        s(&mut b, Some("/a\\b\n\u{1}"));
        s(&mut b, Some("r"));
        s(&mut b, Some("app"));
        s(&mut b, Some("10.0.0.1:80"));
        s(&mut b, None);
        f(&mut b, 200.0);
        f(&mut b, 0.0);
        f(&mut b, 123_456_789.0);
        f(&mut b, 1500.0);
        match tries {
            None => u(&mut b, NULL_LEN),
            Some(ts) => {
                u(&mut b, ts.len() as u32);
                for &(h, at, ms, o) in ts {
                    s(&mut b, Some(h));
                    f(&mut b, at);
                    f(&mut b, ms);
                    s(&mut b, Some(o));
                }
            }
        }
        u(&mut b, 2);
        s(&mut b, Some("RL"));
        lit(&mut b, "\"é\"");
        s(&mut b, Some("SLUICE_ERR_X"));
        match headers {
            None => u(&mut b, NULL_LEN),
            Some(hs) => {
                u(&mut b, hs.len() as u32);
                for &(n, v) in hs {
                    s(&mut b, Some(n));
                    s(&mut b, Some(v));
                }
            }
        }
        b
    }

    fn text(bin: &[u8]) -> String {
        let mut out = Vec::new();
        format_event(bin, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_every_field_as_json_stringify_does() {
        let t = text(&sample(
            Some(&[
                ("10.0.0.1:80", 0.0, 1250.0, "ok"),
                ("b", 3000.0, -1000.0, ""),
            ]),
            Some(&[("x-tenant", "t1"), ("x-b", "2")]),
        ));
        assert_eq!(
            t,
            concat!(
                r#"{"seq":"42","instance":"inst\"1","worker":3,"ts":1764000000123,"requestId":"rid-1","client":"127.0.0.1","#,
                r#""method":"GET","host":"example.com","path":"/a\\b\n\u0001","route":"r","upstream":"app","upstreamHost":"10.0.0.1:80","#,
                r#""lbKey":null,"status":200,"bytesIn":0,"bytesOut":123456789,"latencyMs":1.5,"#,
                r#""attempts":[{"host":"10.0.0.1:80","at":0,"ms":1.25,"outcome":"ok"},{"host":"b","at":3,"ms":-1,"outcome":""}],"#,
                r#""flags":["RL","é"],"error":"SLUICE_ERR_X","headers":{"x-tenant":"t1","x-b":"2"}}"#
            )
        );
        let t = text(&sample(None, None));
        assert!(
            t.contains(r#""attempts":null,"#) && t.ends_with(r#""error":"SLUICE_ERR_X"}"#),
            "{t}"
        );
    }

    #[test]
    fn numbers_and_thousandths() {
        let cases: [(f64, &str); 10] = [
            (0.0, "0"),
            (-0.0, "0"),
            (-5.0, "-5"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (9_007_199_254_740_993.0, "9007199254740992"),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            num(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{v}");
        }
        let cases: [(f64, &str); 7] = [
            (0.0, "0"),
            (1.0, "0.001"),
            (10.0, "0.01"),
            (1234.0, "1.234"),
            (1200.0, "1.2"),
            (-1000.0, "-1"),
            (-1.0, "-0.001"),
        ];
        for (k, want) in cases {
            let mut out = Vec::new();
            milli(&mut out, k);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{k}");
        }
    }

    #[test]
    fn every_truncation_is_malformed_and_trailing_bytes_too() {
        let b = sample(Some(&[("h", 1.0, 2.0, "ok")]), Some(&[("n", "v")]));
        for cut in 0..b.len() {
            assert_eq!(
                format_event(&b[..cut], &mut Vec::new()),
                Err(Malformed),
                "cut at {cut}"
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(format_event(&longer, &mut Vec::new()), Err(Malformed));
        // A length past the end, with the literal bit or without.
        let mut bad = Vec::new();
        f(&mut bad, 1.0);
        u(&mut bad, 0x7fff_ffff);
        assert_eq!(format_event(&bad, &mut Vec::new()), Err(Malformed));
    }
}
