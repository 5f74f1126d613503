//! The socket calls the addon makes that Node cannot: a listening socket with SO_REUSEPORT,
//! and a connection's peer address written into caller-owned bytes. Plain libc, so that
//! `cargo test` runs them without Node.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr;

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A listening TCP socket on `addr` with SO_REUSEADDR and SO_REUSEPORT, non-blocking and
/// close-on-exec: its file descriptor, which the caller owns; or what failed and why.
pub fn listen_reuse_port(addr: SocketAddr, backlog: i32) -> Result<i32, String> {
    // SAFETY: plain socket syscalls on a descriptor this function owns until it returns it;
    // the sockaddr structures are zeroed and filled before use and outlive the calls.
    unsafe {
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(os_error("socket"));
        }
        let fail = |what: &str| {
            let e = os_error(what);
            libc::close(fd);
            e
        };
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            if libc::setsockopt(fd, libc::SOL_SOCKET, opt, &one as *const _ as *const c_void, len) != 0 {
                return Err(fail("setsockopt"));
            }
        }
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let sa_len = match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        if libc::bind(fd, &storage as *const _ as *const libc::sockaddr, sa_len as libc::socklen_t) != 0 {
            return Err(fail(&format!("bind {addr}")));
        }
        if libc::listen(fd, backlog) != 0 {
            return Err(fail("listen"));
        }
        Ok(fd)
    }
}

/// `getpeername` of `fd` into `out`: 4 or 16 bytes written (IPv4, IPv6), 0 for none.
pub fn peer_name(fd: i32, out: &mut [u8; 16]) -> usize {
    let mut addr = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername writes at most `len` bytes into the storage; an error leaves it
    // unread. The family then says which sockaddr the storage holds.
    unsafe {
        if libc::getpeername(fd, addr.as_mut_ptr() as *mut libc::sockaddr, &mut len) != 0 {
            return 0;
        }
        let addr = addr.assume_init();
        match addr.ss_family as i32 {
            libc::AF_INET => {
                let a = &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in);
                ptr::copy_nonoverlapping(&a.sin_addr.s_addr as *const u32 as *const u8, out.as_mut_ptr(), 4);
                4
            }
            libc::AF_INET6 => {
                let a = &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6);
                out.copy_from_slice(&a.sin6_addr.s6_addr);
                16
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};

    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        let a = listen_reuse_port("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        // SAFETY: the descriptor just returned, owned here from now on.
        let a = unsafe { TcpListener::from_raw_fd(a) };
        let at = a.local_addr().unwrap();
        let b = listen_reuse_port(at, 16).unwrap();
        let b = unsafe { TcpListener::from_raw_fd(b) };
        assert_eq!(b.local_addr().unwrap(), at);
    }

    #[test]
    fn a_taken_port_says_what_failed() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = listen_reuse_port(plain.local_addr().unwrap(), 16).unwrap_err();
        assert!(err.starts_with(&format!("bind {}: ", plain.local_addr().unwrap())), "{err}");
    }

    #[test]
    fn the_peer_of_a_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut out = [0u8; 16];
        assert_eq!(peer_name(s.as_raw_fd(), &mut out), 4);
        assert_eq!(&out[..4], &[127, 0, 0, 1]);
        // A listening socket has no peer.
        assert_eq!(peer_name(l.as_raw_fd(), &mut out), 0);
    }
}
