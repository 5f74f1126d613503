//! The client address of a uWS connection as `accept` gave it, so a request does not pay a
//! `getpeername` for it (nginx keeps the address `accept` returned the same way).
//!
//! uSockets (inside uWS.js 20.30; see mod.rs for the layouts this relies on) accepts a connection and calls its context's `on_open(s,
//! is_client, ip, ip_length)` with the address bytes `accept4` wrote: 4 for IPv4, 16 for IPv6,
//! 0 for anything else. uWS.js has no hook there, so the context's `on_open` is wrapped with
//! `on_open_hook`, through uSockets' own setter (`us_socket_context_on_open`, found in the
//! loaded uWS binary with `dlsym`): when the worker's listener starts (`wrap_listener`), or
//! else on the first `uwsPeerAddress` call for one of its connections. The hook notes the
//! address under the descriptor and calls the function it wrapped.
//!
//! A note is used only when it is certainly the connection's own: the note for descriptor
//! `fd` carries the context it was made in and that context's hook epoch, and the request's
//! socket must be in that same context, whose `on_open` is still this hook at the same epoch.
//! Then the note was written when this connection was accepted: every connection that context
//! accepted since the hook went in wrote its note, and no other connection of the thread could
//! get this descriptor number, and so overwrite the note, while this one holds it. A
//! connection accepted before the hook went in finds no note of its context (or one from an
//! older epoch) and is answered with `getpeername`, as is everything when the hook could not
//! be installed. A context freed and another made at the same address starts with uWS's own
//! `on_open` again, so it is hooked again under a new epoch.
//!
//! Everything is per thread: each worker thread runs its own uWS loop and contexts, and the
//! hook runs on the thread of the loop that accepts.
//!
//! Must never: call `on_open` of a context it did not wrap, or skip the function it wrapped;
//! answer from a note whose context or epoch differs from the socket's.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use sluice_core::uws20::marked_slot;

use super::socket_fd;

/// uSockets' `on_open` handler.
type OnOpen = unsafe extern "C" fn(*mut c_void, c_int, *mut c_char, c_int) -> *mut c_void;
/// `us_socket_context(ssl, s)`: the context of socket `s`.
type ContextOf = unsafe extern "C" fn(c_int, *mut c_void) -> *mut c_void;
/// `us_socket_context_on_open(ssl, context, on_open)`.
type SetOnOpen = unsafe extern "C" fn(c_int, *mut c_void, OnOpen);

/// uSockets' functions and where a context keeps its `on_open`.
struct Usockets {
    context_of: ContextOf,
    set_on_open: SetOnOpen,
    /// Byte offset of `on_open` in `struct us_socket_context_t`, found by asking the setter.
    on_open_at: usize,
}

static USOCKETS: OnceLock<Option<Usockets>> = OnceLock::new();

/// A context whose `on_open` this thread wrapped.
struct Hooked {
    context: usize,
    wrapped: OnOpen,
    epoch: u32,
}

/// What `accept` said about the connection on a descriptor.
#[derive(Clone, Copy)]
struct Note {
    context: usize,
    epoch: u32,
    len: u8,
    ip: [u8; 16],
}

const NO_NOTE: Note = Note { context: 0, epoch: 0, len: 0, ip: [0; 16] };

thread_local! {
    static HOOKED: RefCell<Vec<Hooked>> = const { RefCell::new(Vec::new()) };
    /// Indexed by descriptor.
    static NOTES: RefCell<Vec<Note>> = const { RefCell::new(Vec::new()) };
    static EPOCH: Cell<u32> = const { Cell::new(0) };
}

/// Finds uSockets' functions in the loaded uWS binary `file` (opened with RTLD_NOLOAD: only a
/// binary this process already loaded) and the offset of `on_open`, once per process.
/// Whether accept-time addresses can be used.
pub fn open(file: &CStr) -> bool {
    USOCKETS.get_or_init(|| unsafe { find(file) }).is_some()
}

unsafe fn find(file: &CStr) -> Option<Usockets> {
    let lib = libc::dlopen(file.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
    if lib.is_null() {
        return None;
    }
    let context_of = libc::dlsym(lib, c"us_socket_context".as_ptr());
    let set_on_open = libc::dlsym(lib, c"us_socket_context_on_open".as_ptr());
    if context_of.is_null() || set_on_open.is_null() {
        return None;
    }
    let context_of: ContextOf = std::mem::transmute::<*mut c_void, ContextOf>(context_of);
    let set_on_open: SetOnOpen = std::mem::transmute::<*mut c_void, SetOnOpen>(set_on_open);
    // The plain (ssl = 0) setter only stores the pointer in the context: let it store a marker
    // in a zeroed stand-in and see where it went. Exactly one pointer-sized slot must change.
    // 2 KiB, where the 20.30 setter writes at byte 0x38 (after the loop, a tick and two
    // timestamps, and five list pointers): room for any likely layout of the struct's head.
    let mut stand_in = [0usize; 256];
    set_on_open(0, stand_in.as_mut_ptr() as *mut c_void, marker);
    let i = marked_slot(&stand_in, marker as OnOpen as usize)?;
    Some(Usockets { context_of, set_on_open, on_open_at: i * std::mem::size_of::<usize>() })
}

/// Only ever stored in the stand-in context of `find`.
unsafe extern "C" fn marker(s: *mut c_void, _: c_int, _: *mut c_char, _: c_int) -> *mut c_void {
    s
}

/// The accept-time address of socket `s` into `out` (16 bytes): its length (4 or 16), or 0
/// when there is no usable note (the caller then asks `getpeername`). The first call for a
/// context not wrapped at listen time (`wrap_listener`) wraps it, so its later connections
/// have notes.
///
/// # Safety
/// `s` is a live uSockets socket of this thread's loop; `out` has room for 16 bytes.
pub unsafe fn lookup(s: *mut c_void, out: *mut u8) -> usize {
    let Some(Some(us)) = USOCKETS.get() else { return 0 };
    let context = (us.context_of)(0, s);
    let Some(epoch) = wrapped_epoch(us, context) else {
        wrap(us, context);
        return 0;
    };
    let fd = socket_fd(s);
    let note = NOTES.with_borrow(|n| if fd >= 0 { n.get(fd as usize).copied() } else { None }).unwrap_or(NO_NOTE);
    if note.len == 0 || note.context != context as usize || note.epoch != epoch {
        return 0;
    }
    ptr::copy_nonoverlapping(note.ip.as_ptr(), out, note.len as usize);
    note.len as usize
}

/// Wraps the context of listen socket `s` before it accepts anything, so that every
/// connection it accepts has a note. Whether it is wrapped (false: uSockets was not found, or
/// `s` is not listening).
///
/// # Safety
/// `s` is null or a live uSockets listen socket (`us_listen_socket_t`, which starts with its
/// `us_socket_t`) of this thread's loop.
pub unsafe fn wrap_listener(s: *mut c_void) -> bool {
    let Some(Some(us)) = USOCKETS.get() else { return false };
    if s.is_null() {
        return false;
    }
    let mut listening: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    let fd = socket_fd(s);
    if libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, &mut listening as *mut c_int as *mut c_void, &mut len) != 0 || listening == 0 {
        return false;
    }
    let context = (us.context_of)(0, s);
    if wrapped_epoch(us, context).is_none() {
        wrap(us, context);
    }
    wrapped_epoch(us, context).is_some()
}

/// The epoch under which `context` is wrapped by this thread, or None when its `on_open` is
/// not this thread's hook (never wrapped, or a new context where a wrapped one was freed).
unsafe fn wrapped_epoch(us: &Usockets, context: *mut c_void) -> Option<u32> {
    if on_open_of(us, context) != on_open_hook as OnOpen as usize {
        return None;
    }
    HOOKED.with_borrow(|h| h.iter().find(|k| k.context == context as usize).map(|k| k.epoch))
}

unsafe fn on_open_of(us: &Usockets, context: *mut c_void) -> usize {
    ptr::read((context as *const u8).add(us.on_open_at) as *const usize)
}

/// Wraps the `on_open` of `context` with the hook, under a new epoch.
unsafe fn wrap(us: &Usockets, context: *mut c_void) {
    let current = on_open_of(us, context);
    if current == 0 || current == on_open_hook as OnOpen as usize {
        // Nothing to wrap, or a hook this thread has no record of: leave the context alone.
        return;
    }
    let epoch = EPOCH.get().wrapping_add(1);
    EPOCH.set(epoch);
    let wrapped: OnOpen = std::mem::transmute::<usize, OnOpen>(current);
    HOOKED.with_borrow_mut(|h| {
        h.retain(|k| k.context != context as usize);
        h.push(Hooked { context: context as usize, wrapped, epoch });
    });
    (us.set_on_open)(0, context, on_open_hook);
}

/// A wrapped context's `on_open`: notes the address `accept` gave for the descriptor, then
/// calls the function it wrapped.
unsafe extern "C" fn on_open_hook(s: *mut c_void, is_client: c_int, ip: *mut c_char, ip_len: c_int) -> *mut c_void {
    let Some(Some(us)) = USOCKETS.get() else { std::process::abort() };
    let context = (us.context_of)(0, s) as usize;
    let found = HOOKED
        .try_with(|h| h.try_borrow().ok().and_then(|h| h.iter().find(|k| k.context == context).map(|k| (k.wrapped, k.epoch))))
        .ok()
        .flatten();
    let Some((wrapped, epoch)) = found else {
        // Only this thread's wrap() installs the hook, and it records the context first.
        eprintln!("sluice-native: uSockets on_open for a context this thread did not wrap");
        std::process::abort();
    };
    let fd = socket_fd(s);
    if fd >= 0 {
        let len = if is_client == 0 && !ip.is_null() && (ip_len == 4 || ip_len == 16) { ip_len as usize } else { 0 };
        let mut note = Note { context, epoch, len: len as u8, ip: [0; 16] };
        if len > 0 {
            ptr::copy_nonoverlapping(ip as *const u8, note.ip.as_mut_ptr(), len);
        }
        // Nothing else borrows the notes while uSockets runs: a failure here aborts (no
        // unwinding out of an extern "C" function) rather than leave an older note in place.
        NOTES.with_borrow_mut(|n| {
            let i = fd as usize;
            if n.len() <= i {
                n.resize(i + 1, NO_NOTE);
            }
            n[i] = note;
        });
    }
    wrapped(s, is_client, ip, ip_len)
}
