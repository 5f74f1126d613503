//! The dlopen'ed librdkafka (never linked): fire-and-forget Kafka records (request events)
//! straight from link frames into librdkafka, for the producer process (`KafkaFf`).
//!
//! The producer process's JavaScript path spends most of a record's time on its one thread
//! decoding the frame into objects, then in the Kafka client's `produce()` argument conversion.
//! Here a `PRODUCE` body goes from the link's Buffer to `rd_kafka_produceva` without a
//! JavaScript object (`sluice_core::frames` reads it in place; librdkafka copies).
//!
//! - librdkafka is the one the Kafka client (@confluentinc/kafka-javascript) already loaded
//!   into this process: `dlopen("librdkafka.so.1", RTLD_NOLOAD)` finds it by its soname, so
//!   there is one librdkafka, one version and one set of features, and nothing here links it.
//! - Every record carries `connNo << 32 | bytes` as its opaque; delivery reports (all of
//!   them) are counted per link on a poll thread, and JavaScript takes the counts
//!   (`takeOutcomes`), so no record's outcome goes uncounted.
//! - librdkafka's error, log and statistics callbacks queue what they get for JavaScript
//!   (`takeEvents`, `takeStats`); they never call into JavaScript.
//!
//! Must never: call JavaScript from a librdkafka thread; free the shared state before
//! librdkafka is destroyed (its callbacks hold it).

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use sluice_core::frames::{self, FrameError};
use sluice_core::event_json;
use sluice_core::hash;

// ---- librdkafka's C API, resolved at run time ------------------------------------------------

type Rk = c_void;
type Conf = c_void;
type Rkt = c_void;
type RdError = c_void;

/// rd_kafka_message_t (rdkafka.h).
#[repr(C)]
struct RdMessage {
    err: c_int,
    rkt: *mut Rkt,
    partition: i32,
    payload: *mut c_void,
    len: usize,
    key: *mut c_void,
    key_len: usize,
    offset: i64,
    private: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct VuMem {
    ptr: *const c_void,
    size: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct VuHeader {
    name: *const c_char,
    val: *const c_void,
    size: isize,
}

#[repr(C)]
#[derive(Clone, Copy)]
union VuValue {
    ptr: *const c_void,
    i: c_int,
    i32_: i32,
    i64_: i64,
    mem: VuMem,
    header: VuHeader,
    pad: [u8; 64],
}

/// rd_kafka_vu_t (rdkafka.h): 72 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct Vu {
    vtype: c_int,
    u: VuValue,
}

const VTYPE_RKT: c_int = 2;
const VTYPE_PARTITION: c_int = 3;
const VTYPE_VALUE: c_int = 4;
const VTYPE_KEY: c_int = 5;
const VTYPE_OPAQUE: c_int = 6;
const VTYPE_MSGFLAGS: c_int = 7;
const VTYPE_TIMESTAMP: c_int = 8;
const VTYPE_HEADER: c_int = 9;
const MSG_F_COPY: c_int = 0x2;
const PURGE_F_QUEUE: c_int = 0x1;
const PURGE_F_INFLIGHT: c_int = 0x2;
const RD_KAFKA_PRODUCER: c_int = 0;
const CONF_OK: c_int = 0;

type DrMsgCb = unsafe extern "C" fn(*mut Rk, *const RdMessage, *mut c_void);
type ErrorCb = unsafe extern "C" fn(*mut Rk, c_int, *const c_char, *mut c_void);
type LogCb = unsafe extern "C" fn(*const Rk, c_int, *const c_char, *const c_char);
type StatsCb = unsafe extern "C" fn(*mut Rk, *mut c_char, usize, *mut c_void) -> c_int;

struct Api {
    conf_new: unsafe extern "C" fn() -> *mut Conf,
    conf_set: unsafe extern "C" fn(*mut Conf, *const c_char, *const c_char, *mut c_char, usize) -> c_int,
    conf_set_dr_msg_cb: unsafe extern "C" fn(*mut Conf, DrMsgCb),
    conf_set_error_cb: unsafe extern "C" fn(*mut Conf, ErrorCb),
    conf_set_log_cb: unsafe extern "C" fn(*mut Conf, LogCb),
    conf_set_stats_cb: unsafe extern "C" fn(*mut Conf, StatsCb),
    conf_set_opaque: unsafe extern "C" fn(*mut Conf, *mut c_void),
    conf_destroy: unsafe extern "C" fn(*mut Conf),
    new: unsafe extern "C" fn(c_int, *mut Conf, *mut c_char, usize) -> *mut Rk,
    destroy: unsafe extern "C" fn(*mut Rk),
    poll: unsafe extern "C" fn(*mut Rk, c_int) -> c_int,
    flush: unsafe extern "C" fn(*mut Rk, c_int) -> c_int,
    purge: unsafe extern "C" fn(*mut Rk, c_int) -> c_int,
    outq_len: unsafe extern "C" fn(*mut Rk) -> c_int,
    opaque: unsafe extern "C" fn(*const Rk) -> *mut c_void,
    topic_new: unsafe extern "C" fn(*mut Rk, *const c_char, *mut c_void) -> *mut Rkt,
    topic_destroy: unsafe extern "C" fn(*mut Rkt),
    produceva: unsafe extern "C" fn(*mut Rk, *const Vu, usize) -> *mut RdError,
    error_code: unsafe extern "C" fn(*const RdError) -> c_int,
    error_destroy: unsafe extern "C" fn(*mut RdError),
    err2str: unsafe extern "C" fn(c_int) -> *const c_char,
}

/// The librdkafka this process already loaded (never loads one).
fn api() -> Result<&'static Api> {
    static API: std::sync::OnceLock<std::result::Result<Api, String>> = std::sync::OnceLock::new();
    API.get_or_init(|| unsafe { load_api() }).as_ref().map_err(|m| Error::new(Status::GenericFailure, m.clone()))
}

// Each transmute's target is the type of the Api field it initialises.
#[allow(clippy::missing_transmute_annotations)]
unsafe fn load_api() -> std::result::Result<Api, String> {
    let handle = libc::dlopen(c"librdkafka.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
    if handle.is_null() {
        return Err("librdkafka.so.1 is not loaded in this process (load @confluentinc/kafka-javascript first)".into());
    }
    macro_rules! sym {
        ($name:literal) => {{
            let p = libc::dlsym(handle, concat!($name, "\0").as_ptr() as *const c_char);
            if p.is_null() {
                return Err(format!("librdkafka has no {}", $name));
            }
            std::mem::transmute::<*mut c_void, _>(p)
        }};
    }
    Ok(Api {
        conf_new: sym!("rd_kafka_conf_new"),
        conf_set: sym!("rd_kafka_conf_set"),
        conf_set_dr_msg_cb: sym!("rd_kafka_conf_set_dr_msg_cb"),
        conf_set_error_cb: sym!("rd_kafka_conf_set_error_cb"),
        conf_set_log_cb: sym!("rd_kafka_conf_set_log_cb"),
        conf_set_stats_cb: sym!("rd_kafka_conf_set_stats_cb"),
        conf_set_opaque: sym!("rd_kafka_conf_set_opaque"),
        conf_destroy: sym!("rd_kafka_conf_destroy"),
        new: sym!("rd_kafka_new"),
        destroy: sym!("rd_kafka_destroy"),
        poll: sym!("rd_kafka_poll"),
        flush: sym!("rd_kafka_flush"),
        purge: sym!("rd_kafka_purge"),
        outq_len: sym!("rd_kafka_outq_len"),
        opaque: sym!("rd_kafka_opaque"),
        topic_new: sym!("rd_kafka_topic_new"),
        topic_destroy: sym!("rd_kafka_topic_destroy"),
        produceva: sym!("rd_kafka_produceva"),
        error_code: sym!("rd_kafka_error_code"),
        error_destroy: sym!("rd_kafka_error_destroy"),
        err2str: sym!("rd_kafka_err2str"),
    })
}

// ---- state shared with librdkafka's threads -------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Outcome {
    delivered: u64,
    failed: u64,
    bytes: u64,
    last_error: c_int,
}

/// Events queued for JavaScript at most; past it they are counted in `dropped_events`.
const MAX_EVENTS: usize = 1000;

struct Shared {
    outcomes: Mutex<HashMap<u32, Outcome>>,
    events: Mutex<VecDeque<FfEvent>>,
    dropped_events: std::sync::atomic::AtomicU64,
    stats: Mutex<Option<String>>,
    stop: AtomicBool,
    flushing: AtomicBool,
}

impl Shared {
    fn push_event(&self, e: FfEvent) {
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_EVENTS {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push_back(e);
    }
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

unsafe extern "C" fn on_delivery(_rk: *mut Rk, m: *const RdMessage, opaque: *mut c_void) {
    let (Some(m), Some(shared)) = (m.as_ref(), (opaque as *const Shared).as_ref()) else { return };
    let tag = m.private as usize as u64;
    let mut map = shared.outcomes.lock().unwrap_or_else(|p| p.into_inner());
    let o = map.entry((tag >> 32) as u32).or_default();
    if m.err == 0 {
        o.delivered += 1;
    } else {
        o.failed += 1;
        o.last_error = m.err;
    }
    o.bytes += tag & 0xffff_ffff;
}

unsafe extern "C" fn on_error(_rk: *mut Rk, err: c_int, reason: *const c_char, opaque: *mut c_void) {
    if let Some(shared) = (opaque as *const Shared).as_ref() {
        shared.push_event(FfEvent { kind: "error".into(), code: err, fac: String::new(), message: text(reason) });
    }
}

unsafe extern "C" fn on_log(rk: *const Rk, level: c_int, fac: *const c_char, buf: *const c_char) {
    let Ok(api) = api() else { return };
    if let Some(shared) = ((api.opaque)(rk) as *const Shared).as_ref() {
        shared.push_event(FfEvent { kind: "log".into(), code: level, fac: text(fac), message: text(buf) });
    }
}

unsafe extern "C" fn on_stats(_rk: *mut Rk, json: *mut c_char, len: usize, opaque: *mut c_void) -> c_int {
    if let Some(shared) = (opaque as *const Shared).as_ref() {
        let s = String::from_utf8_lossy(std::slice::from_raw_parts(json as *const u8, len)).into_owned();
        *shared.stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }
    0 // librdkafka frees the JSON
}

// ---- the client ---------------------------------------------------------------------------

/// An error, or one of librdkafka's log lines (`code` = syslog level), for JavaScript.
#[napi(object)]
pub struct FfEvent {
    pub kind: String,
    pub code: i32,
    pub fac: String,
    pub message: String,
}

struct RkPtr(*mut Rk);
// SAFETY: librdkafka handles are thread-safe; the poll thread only polls and flushes.
unsafe impl Send for RkPtr {}

/// `produce()` result when the frame is not for this path (JavaScript decodes it).
pub const NOT_HANDLED: i32 = -1;
/// `produce()` result when librdkafka refused the record (`lastError()` says why).
pub const REFUSED: i32 = -2;

#[napi]
pub struct KafkaFf {
    rk: *mut Rk,
    shared: Arc<Shared>,
    /// The `Arc` librdkafka's callbacks hold (released after rd_kafka_destroy).
    callback_ref: *const Shared,
    topics: HashMap<Vec<u8>, *mut Rkt>,
    header_names: HashMap<Vec<u8>, CString>,
    /// Partition counts of topics, as the JavaScript side learned them (setPartitionCount).
    partition_counts: HashMap<Vec<u8>, u32>,
    /// The JSON of the request event being produced (RF_EVENT records), reused.
    event_json: Vec<u8>,
    poller: Option<JoinHandle<()>>,
    last_error: i32,
}

#[napi]
impl KafkaFf {
    /// A producer with these librdkafka properties (`[name, value, name, value, ...]`);
    /// throws with librdkafka's message when one is refused.
    #[napi(constructor)]
    pub fn new(properties: Vec<String>) -> Result<Self> {
        let api = api()?;
        if !properties.len().is_multiple_of(2) {
            return Err(Error::new(Status::InvalidArg, "properties come in name, value pairs"));
        }
        let shared = Arc::new(Shared {
            outcomes: Mutex::new(HashMap::new()),
            events: Mutex::new(VecDeque::new()),
            dropped_events: std::sync::atomic::AtomicU64::new(0),
            stats: Mutex::new(None),
            stop: AtomicBool::new(false),
            flushing: AtomicBool::new(false),
        });
        let mut errstr = [0 as c_char; 512];
        unsafe {
            let conf = (api.conf_new)();
            for pair in properties.chunks(2) {
                let (Ok(k), Ok(v)) = (CString::new(pair[0].as_str()), CString::new(pair[1].as_str())) else {
                    (api.conf_destroy)(conf);
                    return Err(Error::new(Status::InvalidArg, format!("librdkafka property {} contains a NUL byte", pair[0])));
                };
                if (api.conf_set)(conf, k.as_ptr(), v.as_ptr(), errstr.as_mut_ptr(), errstr.len()) != CONF_OK {
                    (api.conf_destroy)(conf);
                    return Err(Error::new(Status::InvalidArg, text(errstr.as_ptr())));
                }
            }
            (api.conf_set_dr_msg_cb)(conf, on_delivery);
            (api.conf_set_error_cb)(conf, on_error);
            (api.conf_set_log_cb)(conf, on_log);
            (api.conf_set_stats_cb)(conf, on_stats);
            let callback_ref = Arc::into_raw(shared.clone());
            (api.conf_set_opaque)(conf, callback_ref as *mut c_void);
            let rk = (api.new)(RD_KAFKA_PRODUCER, conf, errstr.as_mut_ptr(), errstr.len());
            if rk.is_null() {
                (api.conf_destroy)(conf);
                drop(Arc::from_raw(callback_ref));
                return Err(Error::new(Status::GenericFailure, text(errstr.as_ptr())));
            }
            let poll_rk = RkPtr(rk);
            let poll_shared = shared.clone();
            let poller = std::thread::Builder::new()
                .name("sluice-kafka-ff".into())
                .spawn(move || {
                    let rk = poll_rk;
                    while !poll_shared.stop.load(Ordering::Acquire) {
                        // flush serves delivery reports as poll does, and sends at once (no linger).
                        if poll_shared.flushing.load(Ordering::Acquire) {
                            (api.flush)(rk.0, 100);
                        } else {
                            (api.poll)(rk.0, 100);
                        }
                    }
                })
                .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start the poll thread: {e}")))?;
            Ok(KafkaFf {
                rk,
                shared,
                callback_ref,
                topics: HashMap::new(),
                header_names: HashMap::new(),
                partition_counts: HashMap::new(),
                event_json: Vec::with_capacity(1024),
                poller: Some(poller),
                last_error: 0,
            })
        }
    }

    /// Produces the `PRODUCE` body `buf[start..end]` for link `connNo` when it is a
    /// fire-and-forget record (id 0; keyed and hash-partitioned only once its topic's count
    /// was set, see setPartitionCount) of a kind `accept` lets
    /// through (ACCEPT_UNORDERED: RF_UNORDERED records; ACCEPT_ORDERED: RF_FF_ORDERED ones):
    /// returns its bytes (key + value), NOT_HANDLED (-1) for any other body (JavaScript decodes
    /// it, and refuses a malformed one), or REFUSED (-2) when librdkafka refused it (see
    /// lastError()).
    #[napi]
    pub fn produce(&mut self, buf: &[u8], start: u32, end: u32, conn_no: u32, accept: u32) -> Result<i32> {
        let Some(body) = buf.get(start as usize..end as usize) else { return Ok(NOT_HANDLED) };
        self.produce_body(body, conn_no, accept)
    }

    /// Produces the complete `PRODUCE` frames of link `connNo` in `buf[start..end)`, from
    /// `start` on, while they are fire-and-forget records that librdkafka accepts: one call
    /// for a read's worth of events. Returns where it stopped (`end`, or the first frame it
    /// did not take: incomplete, another type or record, a length outside `1..=maxFrameBytes`,
    /// or refused; the caller handles that one as before) and writes the records taken and
    /// their bytes to `out[0]` and `out[1]`.
    #[napi]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call: each argument is a plain number or view, no struct to build per read
    pub fn produce_frames(&mut self, buf: &[u8], start: u32, end: u32, conn_no: u32, accept: u32, max_frame_bytes: u32, mut out: Float64ArraySlice) -> Result<u32> {
        // SAFETY: JS is single-threaded and blocked in this call; nothing else touches `out`.
        let out = unsafe { out.as_mut() };
        if out.len() < 2 {
            return Err(Error::new(Status::InvalidArg, "produceFrames: out needs 2 elements"));
        }
        let buf = buf.get(..(end as usize).min(buf.len())).unwrap_or(&[]);
        let (mut at, mut records, mut bytes) = (start as usize, 0u32, 0f64);
        while let Some((kind, body_start, frame_end)) = frames::next_frame(buf, at, max_frame_bytes) {
            if kind != frames::FRAME_PRODUCE {
                break;
            }
            // Not taken, refused or an error: stop before it (what was taken stays counted in
            // `out`); the caller hands that frame to the frame-by-frame path.
            let r = match self.produce_body(&buf[body_start..frame_end], conn_no, accept) {
                Ok(r) if r >= 0 => r,
                _ => break,
            };
            records += 1;
            bytes += r as f64;
            at = frame_end;
        }
        out[0] = records as f64;
        out[1] = bytes;
        Ok(at as u32)
    }

    fn produce_body(&mut self, body: &[u8], conn_no: u32, accept: u32) -> Result<i32> {
        if self.rk.is_null() {
            return Ok(NOT_HANDLED);
        }
        let p = match frames::parse_produce(body) {
            Ok(p) => p,
            Err(FrameError::Malformed | FrameError::TooManyHeaders) => return Ok(NOT_HANDLED),
        };
        if !frames::fire_and_forget(&p, accept) {
            return Ok(NOT_HANDLED);
        }
        // Jump consistent hash of the key, as the JavaScript path places it; without the
        // topic's count the record is JavaScript's (it fetches the count).
        let partition = if frames::needs_partition_count(&p) {
            match self.partition_counts.get(p.topic) {
                Some(&count) => hash::jump_consistent_hash(hash::hash_key(p.key.unwrap_or(&[])), count) as i32,
                None => return Ok(NOT_HANDLED),
            }
        } else {
            p.partition
        };
        let api = api()?;
        let rkt = match self.topics.get(p.topic) {
            Some(&t) => t,
            None => {
                let Ok(name) = CString::new(p.topic) else { return Ok(NOT_HANDLED) };
                let t = unsafe { (api.topic_new)(self.rk, name.as_ptr(), std::ptr::null_mut()) };
                if t.is_null() {
                    return Ok(NOT_HANDLED);
                }
                self.topics.insert(p.topic.to_vec(), t);
                t
            }
        };
        let mut vus = [Vu { vtype: 0, u: VuValue { pad: [0; 64] } }; 8 + frames::MAX_HEADERS];
        let mut n = 0;
        let mut push = |vtype: c_int, u: VuValue| {
            vus[n] = Vu { vtype, u };
            n += 1;
        };
        push(VTYPE_RKT, VuValue { ptr: rkt });
        push(VTYPE_PARTITION, VuValue { i32_: partition });
        push(VTYPE_MSGFLAGS, VuValue { i: MSG_F_COPY });
        let value = if p.flags & frames::RF_EVENT != 0 {
            // A request event's binary fields: its JSON goes out (librdkafka copies it).
            self.event_json.clear();
            if event_json::format_event(p.value.unwrap_or(&[]), &mut self.event_json).is_err() {
                return Ok(NOT_HANDLED);
            }
            Some(&self.event_json[..])
        } else {
            p.value
        };
        if let Some(v) = value {
            push(VTYPE_VALUE, VuValue { mem: VuMem { ptr: v.as_ptr() as *const c_void, size: v.len() } });
        }
        if let Some(k) = p.key {
            push(VTYPE_KEY, VuValue { mem: VuMem { ptr: k.as_ptr() as *const c_void, size: k.len() } });
        }
        if p.timestamp != 0 {
            push(VTYPE_TIMESTAMP, VuValue { i64_: p.timestamp });
        }
        let tag = ((conn_no as u64) << 32) | p.bytes as u64;
        push(VTYPE_OPAQUE, VuValue { ptr: tag as usize as *const c_void });
        for &(name, value) in &p.headers[..p.header_count] {
            let cname = match self.header_names.get(name) {
                Some(c) => c.as_ptr(),
                None => {
                    let Ok(c) = CString::new(name) else { return Ok(NOT_HANDLED) };
                    let ptr = c.as_ptr();
                    self.header_names.insert(name.to_vec(), c);
                    ptr
                }
            };
            push(VTYPE_HEADER, VuValue { header: VuHeader { name: cname, val: value.as_ptr() as *const c_void, size: value.len() as isize } });
        }
        let err = unsafe { (api.produceva)(self.rk, vus.as_ptr(), n) };
        if err.is_null() {
            return Ok(p.bytes as i32);
        }
        self.last_error = unsafe { (api.error_code)(err) };
        unsafe { (api.error_destroy)(err) };
        Ok(REFUSED)
    }

    /// The partition count of `topic` for records placed by key hash (what the JavaScript
    /// side fetched from metadata); 0 forgets it (those records go back to JavaScript).
    #[napi]
    pub fn set_partition_count(&mut self, topic: String, count: u32) {
        if count == 0 {
            self.partition_counts.remove(topic.as_bytes());
        } else {
            self.partition_counts.insert(topic.into_bytes(), count);
        }
    }

    /// The librdkafka error code of the last REFUSED record.
    #[napi]
    pub fn last_error(&self) -> i32 {
        self.last_error
    }

    /// librdkafka's name for an error code.
    #[napi]
    pub fn error_text(&self, code: i32) -> Result<String> {
        Ok(text(unsafe { (api()?.err2str)(code) }))
    }

    /// Outcomes since the last call, per link: `[connNo, delivered, failed, bytes, lastError, ...]`.
    #[napi]
    pub fn take_outcomes(&self) -> Vec<f64> {
        let mut map = self.shared.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(map.len() * 5);
        for (conn, o) in map.drain() {
            out.extend_from_slice(&[conn as f64, o.delivered as f64, o.failed as f64, o.bytes as f64, o.last_error as f64]);
        }
        out
    }

    /// Errors and log lines since the last call (at most 1000 are kept; see takeDroppedEvents()).
    #[napi]
    pub fn take_events(&self) -> Vec<FfEvent> {
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect()
    }

    /// Events not queued since the last call because the queue was full.
    #[napi]
    pub fn take_dropped_events(&self) -> f64 {
        self.shared.dropped_events.swap(0, Ordering::Relaxed) as f64
    }

    /// librdkafka's latest statistics JSON (once), or null.
    #[napi]
    pub fn take_stats(&self) -> Option<String> {
        self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Records librdkafka holds (queued, in flight, or with a report not yet counted).
    #[napi]
    pub fn outq_len(&self) -> Result<i32> {
        if self.rk.is_null() {
            return Ok(0);
        }
        Ok(unsafe { (api()?.outq_len)(self.rk) })
    }

    /// From now on records are sent at once (linger no longer applies): for shutdown.
    #[napi]
    pub fn start_flushing(&self) {
        self.shared.flushing.store(true, Ordering::Release);
    }

    /// Fails what is still queued or in flight (their reports say so, and are counted), waits
    /// up to `waitMs` for those reports, stops the poll thread and destroys the client.
    #[napi]
    pub fn close(&mut self, wait_ms: u32) -> Result<()> {
        if self.rk.is_null() {
            return Ok(());
        }
        let api = api()?;
        unsafe { (api.purge)(self.rk, PURGE_F_QUEUE | PURGE_F_INFLIGHT) };
        let end = std::time::Instant::now() + std::time::Duration::from_millis(wait_ms as u64);
        while unsafe { (api.outq_len)(self.rk) } > 0 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.poller.take() {
            let _ = t.join();
        }
        unsafe {
            for (_, t) in self.topics.drain() {
                (api.topic_destroy)(t);
            }
            (api.destroy)(self.rk);
            drop(Arc::from_raw(self.callback_ref));
        }
        self.rk = std::ptr::null_mut();
        Ok(())
    }
}

impl Drop for KafkaFf {
    fn drop(&mut self) {
        let _ = self.close(0);
    }
}
