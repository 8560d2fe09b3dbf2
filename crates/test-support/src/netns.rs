//! Binding a socket inside a network namespace (a second host in a test):
//! a socket belongs to the namespace it was created in for its whole life,
//! so a thread of ours joins the namespace only to bind it, and the test's
//! runtime serves it from anywhere. The namespace itself (`ip netns add`,
//! the veth pair) is the test's to make.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// Where `ip netns add NAME` leaves a handle on the namespace.
const NETNS_DIR: &str = "/run/netns";

/// A listener on `addr` inside the named namespace. The binding thread is
/// a fresh one that ends with the bind, so no other code of ours ever runs
/// in the namespace by accident.
pub fn bind_in_namespace(name: &str, addr: SocketAddr) -> std::io::Result<TcpListener> {
    let handle = Path::new(NETNS_DIR).join(name);
    let bind = move || -> std::io::Result<TcpListener> {
        let namespace = std::fs::File::open(&handle)?;
        setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        TcpListener::bind(addr)
    };
    std::thread::spawn(bind)
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
}
