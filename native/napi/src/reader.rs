//! Upstream reads without Node's stream machinery: the plain TCP connections of a thread's
//! pools sit in one epoll set of this addon, which libuv watches as one descriptor. When it
//! is readable, `on_ready` reads every ready connection into one arena (no JavaScript), and
//! in the loop's check phase `on_check` makes one call into JavaScript for all the reads of
//! the turn (src/workers/http/upstream/pool.ts, `NativeReader`). The same call ends the turn for the
//! request heads JavaScript queued: it asks for it with `readerWant`, once per turn, instead
//! of a `setImmediate` (whose `MakeCallback` and JavaScript entry cost about as much again).
//!
//! Node's own read path costs a `MakeCallback` (async hooks, tick queue, microtasks) and its
//! `onStreamRead` per read; here the turn's reads cost one call in all.
//!
//! Layout of `entries` (an Int32Array JavaScript keeps): at `COUNT`, the number of triples
//! `on_check` hands over (written just before its call); from index `ENTRY_BASE`, one triple
//! per read: the connection's slot, the read's start in the arena, and its length: > 0 bytes,
//! 0 the end of the stream, < 0 `-errno`. A connection that reported an end or an error is no
//! longer watched (its registration stays until JavaScript removes it).
//!
//! Must never: read more than `PER_TURN` bytes of one connection in one turn (the owner's
//! backpressure pauses between turns); call JavaScript from `on_ready`; keep a registration
//! JavaScript did not ask for (`readerRemove` checks the slot, so a descriptor number reused
//! by another connection is never touched).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;

use napi::sys;

use crate::args::typed_array;

// ---- libuv, resolved from the Node executable at load time ------------------------------------

type UvLoop = c_void;
type UvHandle = c_void;

extern "C" {
    fn uv_handle_size(kind: i32) -> usize;
    fn uv_poll_init(lp: *mut UvLoop, handle: *mut UvHandle, fd: i32) -> i32;
    fn uv_poll_start(handle: *mut UvHandle, events: i32, cb: unsafe extern "C" fn(*mut UvHandle, i32, i32)) -> i32;
    fn uv_check_init(lp: *mut UvLoop, handle: *mut UvHandle) -> i32;
    fn uv_check_start(handle: *mut UvHandle, cb: unsafe extern "C" fn(*mut UvHandle)) -> i32;
    fn uv_idle_init(lp: *mut UvLoop, handle: *mut UvHandle) -> i32;
    fn uv_idle_start(handle: *mut UvHandle, cb: unsafe extern "C" fn(*mut UvHandle)) -> i32;
    fn uv_idle_stop(handle: *mut UvHandle) -> i32;
    fn uv_unref(handle: *mut UvHandle);
    fn uv_close(handle: *mut UvHandle, cb: Option<unsafe extern "C" fn(*mut UvHandle)>);
}

/// uv_handle_type (uv.h).
const UV_CHECK: i32 = 2;
const UV_IDLE: i32 = 6;
const UV_POLL: i32 = 8;
const UV_READABLE: i32 = 1;

/// Where `on_check` writes the number of triples it hands over.
pub const COUNT: usize = 0;
/// First triple of `entries` (the slots before it are reserved).
pub const ENTRY_BASE: usize = 4;
/// One `read`: Node's read size for `onread` buffers.
pub const PER_READ: usize = 64 * 1024;
/// At most this many bytes of one connection per turn (reads go on while they come back full).
pub const PER_TURN: usize = 256 * 1024;

/// The per-thread reader. Boxed and never moved: the libuv handles point at it.
struct Reader {
    env: sys::napi_env,
    epfd: i32,
    poll: *mut UvHandle,
    check: *mut UvHandle,
    /// Started while JavaScript wants the check-phase call: an active idle handle makes
    /// libuv poll without blocking, so the call comes in this turn even if JavaScript asked
    /// outside the poll phase (a timer's callback), as Node's immediates do.
    idle: *mut UvHandle,
    /// JavaScript asked for the check-phase call (`readerWant`) since the last one.
    want: bool,
    arena: *mut u8,
    arena_len: usize,
    entries: *mut i32,
    entries_len: usize,
    /// References that keep the arena, the entries and the callback alive.
    refs: [sys::napi_ref; 3],
    async_ctx: sys::napi_async_context,
    /// Bytes of the arena used this turn, and triples written.
    used: usize,
    count: usize,
    /// The slot each watched descriptor was added with.
    slots: HashMap<i32, i32>,
}

thread_local! {
    static READER: RefCell<*mut Reader> = const { RefCell::new(ptr::null_mut()) };
}

fn current() -> *mut Reader {
    READER.with(|r| *r.borrow())
}

/// Set as `data`, the first field of every uv handle.
unsafe fn set_data(handle: *mut UvHandle, data: *mut c_void) {
    *(handle as *mut *mut c_void) = data;
}

unsafe fn data_of(handle: *mut UvHandle) -> *mut Reader {
    *(handle as *mut *mut Reader)
}

/// This thread's arena while the reader is open: the bytes of the reads `on_check` handed over
/// stay there until the next poll phase (response_head.rs parses heads in place from it).
pub fn arena() -> Option<(*const u8, usize)> {
    let r = current();
    // SAFETY: a non-null reader is live until its cleanup hook, which clears READER first.
    (!r.is_null()).then(|| unsafe { ((*r).arena as *const u8, (*r).arena_len) })
}

unsafe extern "C" fn free_handle(handle: *mut UvHandle) {
    libc::free(handle);
}

unsafe fn push(r: &mut Reader, slot: i32, start: usize, len: i32) {
    let i = ENTRY_BASE + r.count * 3;
    *r.entries.add(i) = slot;
    *r.entries.add(i + 1) = start as i32;
    *r.entries.add(i + 2) = len;
    r.count += 1;
}

/// What a watched connection is registered for: edge-triggered, so that a connection read
/// this turn is not polled again by the next `epoll_wait` (level-triggered, the kernel puts
/// every reported descriptor back on the ready list and polls it again, a `tcp_poll` per
/// response for nothing); EPOLLRDHUP, so that an end that came with the last bytes is seen.
const WATCH: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Has the kernel report `fd` again (its data is waiting but was not read this turn): an
/// edge-triggered registration reports only new data, while MOD checks readiness at once.
unsafe fn rearm(epfd: i32, key: u64) {
    let mut ev = libc::epoll_event { events: WATCH, u64: key };
    libc::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, (key >> 32) as i32, &mut ev);
}

/// The epoll set is readable: read every ready connection into the arena (on while reads
/// come back full, up to `PER_TURN` each).
unsafe extern "C" fn on_ready(handle: *mut UvHandle, _status: i32, _events: i32) {
    let r = &mut *data_of(handle);
    let mut events: [libc::epoll_event; 64] = std::mem::zeroed();
    let n = libc::epoll_wait(r.epfd, events.as_mut_ptr(), events.len() as i32, 0);
    let ready = &events[..n.max(0) as usize];
    for (i, ev) in ready.iter().enumerate() {
        // Room for two more triples (the bytes, then an end or error: a read error is given
        // once, so it must be reported when read) and some bytes; what is left is reported
        // again (rearm) and read next turn.
        if ENTRY_BASE + (r.count + 2) * 3 > r.entries_len || r.used >= r.arena_len {
            for left in &ready[i..] {
                rearm(r.epfd, left.u64);
            }
            break;
        }
        let key = ev.u64;
        let fd = (key >> 32) as i32;
        let slot = (key & 0xffff_ffff) as i32;
        // The peer's end or an error came with this event: read on to it (a short read is
        // then no sign that nothing is left), since no later event will tell.
        let to_end = ev.events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
        // Read while reads come back full (more is waiting), up to PER_TURN for this
        // connection: one entry for what is contiguous in the arena.
        let start = r.used;
        let mut k;
        loop {
            let room = (r.arena_len - r.used).min(PER_READ).min(PER_TURN - (r.used - start));
            if room == 0 {
                k = 1; // stop: this turn's share is read
                rearm(r.epfd, key);
                break;
            }
            k = libc::read(fd, r.arena.add(r.used) as *mut c_void, room);
            if k <= 0 {
                break;
            }
            r.used += k as usize;
            if (k as usize) < room && !to_end {
                break;
            }
        }
        if r.used > start {
            push(r, slot, start, (r.used - start) as i32);
        }
        if k > 0 {
            continue;
        }
        let err = if k == 0 { 0 } else { *libc::__errno_location() };
        if err == libc::EAGAIN || err == libc::EINTR {
            continue;
        }
        push(r, slot, r.used, -err);
        // Reported once: stop watching until JavaScript removes it.
        let mut quiet = libc::epoll_event { events: 0, u64: key };
        libc::epoll_ctl(r.epfd, libc::EPOLL_CTL_MOD, fd, &mut quiet);
    }
}

unsafe extern "C" fn on_idle(_handle: *mut UvHandle) {}

/// The check phase: one call into JavaScript when the turn read anything or JavaScript asked
/// for it. The reads are handed over as they are (`COUNT`), and the arena and entries are
/// free again for the next poll phase: JavaScript handles them synchronously in this call.
unsafe extern "C" fn on_check(handle: *mut UvHandle) {
    let r = &mut *data_of(handle);
    if r.count == 0 && !r.want {
        return;
    }
    if r.want {
        r.want = false;
        uv_idle_stop(r.idle);
    }
    *r.entries.add(COUNT) = r.count as i32;
    r.count = 0;
    r.used = 0;
    let env = r.env;
    let mut scope = ptr::null_mut();
    if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
    }
    let mut cb = ptr::null_mut();
    let mut recv = ptr::null_mut();
    if sys::napi_get_reference_value(env, r.refs[2], &mut cb) == sys::Status::napi_ok && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok {
        let mut result = ptr::null_mut();
        let status = sys::napi_make_callback(env, r.async_ctx, recv, cb, 0, ptr::null(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // As Node does for its own callbacks: the process's uncaught-exception handling.
            let mut exc = ptr::null_mut();
            if sys::napi_get_and_clear_last_exception(env, &mut exc) == sys::Status::napi_ok {
                sys::napi_fatal_exception(env, exc);
            }
        }
    }
    sys::napi_close_handle_scope(env, scope);
}

unsafe extern "C" fn cleanup(arg: *mut c_void) {
    let r = Box::from_raw(arg as *mut Reader);
    READER.with(|c| *c.borrow_mut() = ptr::null_mut());
    uv_close(r.poll, Some(free_handle));
    uv_close(r.check, Some(free_handle));
    uv_close(r.idle, Some(free_handle));
    libc::close(r.epfd);
}

unsafe fn throw(env: sys::napi_env, msg: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_error(env, ptr::null(), msg.as_ptr());
    ptr::null_mut()
}

unsafe fn int(env: sys::napi_env, v: i32) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_int32(env, v, &mut out);
    out
}

/// `readerOpen(arena, entries, onTurn)`: starts this thread's reader. `arena` (a Uint8Array of
/// at least 64 KiB) receives the bytes, `entries` (an Int32Array) the triples; `onTurn` is
/// called in the check phase of a turn that read anything or after `readerWant`, with the
/// count of triples at `entries[COUNT]`. Once per thread; a second call throws.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn reader_open_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 3;
    let mut argv: [sys::napi_value; 3] = [ptr::null_mut(); 3];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok || argc < 3 {
        return throw(env, c"readerOpen(arena, entries, onTurn): three arguments");
    }
    if !current().is_null() {
        return throw(env, c"readerOpen: this thread's reader is already open");
    }
    let Some((arena, arena_len)) = typed_array::<u8>(env, argv[0], sys::TypedarrayType::uint8_array) else {
        return throw(env, c"readerOpen: arena must be a Uint8Array");
    };
    let Some((entries, entries_len)) = typed_array::<i32>(env, argv[1], sys::TypedarrayType::int32_array) else {
        return throw(env, c"readerOpen: entries must be an Int32Array");
    };
    let mut ty = 0;
    if arena_len < PER_READ || entries_len < ENTRY_BASE + 6 || sys::napi_typeof(env, argv[2], &mut ty) != sys::Status::napi_ok || ty != sys::ValueType::napi_function {
        return throw(env, c"readerOpen: an arena of at least 64 KiB, room for two entries and a function");
    }
    let mut lp = ptr::null_mut();
    if sys::napi_get_uv_event_loop(env, &mut lp) != sys::Status::napi_ok {
        return throw(env, c"readerOpen: no event loop");
    }
    let epfd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
    if epfd < 0 {
        return throw(env, c"readerOpen: epoll_create1 failed");
    }
    let mut refs = [ptr::null_mut(); 3];
    for (i, v) in argv.iter().enumerate() {
        sys::napi_create_reference(env, *v, 1, &mut refs[i]);
    }
    let mut name = ptr::null_mut();
    sys::napi_create_string_utf8(env, c"SluiceUpstreamReads".as_ptr(), -1, &mut name);
    let mut resource = ptr::null_mut();
    sys::napi_create_object(env, &mut resource);
    let mut async_ctx = ptr::null_mut();
    sys::napi_async_init(env, resource, name, &mut async_ctx);
    let poll = libc::malloc(uv_handle_size(UV_POLL)) as *mut UvHandle;
    let check = libc::malloc(uv_handle_size(UV_CHECK)) as *mut UvHandle;
    let idle = libc::malloc(uv_handle_size(UV_IDLE)) as *mut UvHandle;
    let r = Box::into_raw(Box::new(Reader {
        env,
        epfd,
        poll,
        check,
        idle,
        want: false,
        arena,
        arena_len,
        entries,
        entries_len,
        refs,
        async_ctx,
        used: 0,
        count: 0,
        slots: HashMap::new(),
    }));
    let lp = lp as *mut UvLoop;
    if uv_poll_init(lp, poll, epfd) != 0 || uv_check_init(lp, check) != 0 || uv_idle_init(lp, idle) != 0 {
        return throw(env, c"readerOpen: libuv refused the handles");
    }
    set_data(poll, r as *mut c_void);
    set_data(check, r as *mut c_void);
    set_data(idle, r as *mut c_void);
    uv_poll_start(poll, UV_READABLE, on_ready);
    uv_check_start(check, on_check);
    // None keeps the loop alive: the sockets' owners do.
    uv_unref(poll);
    uv_unref(check);
    uv_unref(idle);
    READER.with(|c| *c.borrow_mut() = r);
    sys::napi_add_env_cleanup_hook(env, Some(cleanup), r as *mut c_void);
    int(env, 0)
}

unsafe fn args3(env: sys::napi_env, info: sys::napi_callback_info) -> Option<[i32; 3]> {
    let mut argc: usize = 3;
    let mut argv: [sys::napi_value; 3] = [ptr::null_mut(); 3];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return None;
    }
    let mut out = [0i32; 3];
    for i in 0..argc.min(3) {
        if sys::napi_get_value_int32(env, argv[i], &mut out[i]) != sys::Status::napi_ok {
            return None;
        }
    }
    Some(out)
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// `readerWatch(fd, slot, on)`: watches `fd` for reads (on = 1) or stops (on = 0), adding it
/// to the set the first time. Returns 0 or -errno.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn reader_watch_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let r = current();
    let Some([fd, slot, on]) = args3(env, info) else {
        return throw(env, c"readerWatch(fd, slot, on): numbers");
    };
    if r.is_null() {
        return throw(env, c"readerWatch: the reader is not open");
    }
    let r = &mut *r;
    let key = ((fd as u64) << 32) | (slot as u32 as u64);
    let mut ev = libc::epoll_event { events: if on != 0 { WATCH } else { 0 }, u64: key };
    let op = if r.slots.get(&fd) == Some(&slot) { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
    let mut rc = libc::epoll_ctl(r.epfd, op, fd, &mut ev);
    if rc != 0 && errno() == libc::EEXIST {
        // A registration of a descriptor number now reused: the new connection takes it.
        rc = libc::epoll_ctl(r.epfd, libc::EPOLL_CTL_MOD, fd, &mut ev);
    }
    if rc != 0 {
        return int(env, -errno());
    }
    r.slots.insert(fd, slot);
    int(env, 0)
}

/// `readerRemove(fd, slot)`: stops watching `fd` if it was added for `slot` (call it before
/// the descriptor is closed). Returns 0, or -1 when `fd` belongs to another slot or none.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn reader_remove_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let r = current();
    let Some([fd, slot, _]) = args3(env, info) else {
        return throw(env, c"readerRemove(fd, slot): numbers");
    };
    if r.is_null() {
        return int(env, -1);
    }
    let r = &mut *r;
    if r.slots.get(&fd) != Some(&slot) {
        return int(env, -1);
    }
    r.slots.remove(&fd);
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    libc::epoll_ctl(r.epfd, libc::EPOLL_CTL_DEL, fd, &mut ev);
    int(env, 0)
}

/// `readerTake()`: the number of triples in `entries` read since the last take, and the
/// arena and entries are free again. The caller handles them before anything else runs.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn reader_take_raw(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    let r = current();
    if r.is_null() {
        return int(env, 0);
    }
    let r = &mut *r;
    let n = r.count as i32;
    r.count = 0;
    r.used = 0;
    int(env, n)
}

/// `readerWant()`: asks for this turn's check-phase call of `onTurn` even if nothing is read
/// (JavaScript queued request heads to send at the end of the turn). Returns 0, or -1 when
/// the reader is not open (the caller then uses `setImmediate`).
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn reader_want_raw(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    let r = current();
    if r.is_null() {
        return int(env, -1);
    }
    let r = &mut *r;
    if !r.want {
        r.want = true;
        uv_idle_start(r.idle, on_idle);
    }
    int(env, 0)
}
