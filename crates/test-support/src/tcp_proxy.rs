//! A TCP proxy between two hosts of a test that can be restarted: a
//! restart resets every connection through it (RST, as a crashed proxy or
//! a rebooted middlebox would) and refuses connects until it listens again
//! on the same address. It counts the connections it accepted, so a test
//! can tell a reconnect from a connection that survived.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long the proxy tries to reach its upstream for one accepted client
/// before it drops the client: longer than a link that is down for a few
/// seconds (the SYN is sent again after 1 s and 3 s), short enough that a
/// client retrying is not left hanging on a dead upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TcpProxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// The accept loop; the pipes it starts live in `pipes`.
    accept: Mutex<Option<JoinHandle<()>>>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Listens on a free port of `127.0.0.1`, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = TcpProxy {
            listen: listener.local_addr()?,
            upstream,
            accepted: Arc::default(),
            accept: Mutex::new(None),
            pipes: Arc::default(),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Connections accepted since the start, over every restart.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stops listening and resets every open connection, waits `down`
    /// (connects are refused meanwhile), then listens again on the same
    /// address. Returns how many connections were open.
    pub async fn restart(&self, down: Duration) -> std::io::Result<usize> {
        let accept = self.lock_accept().take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
        let open: Vec<JoinHandle<()>> = match self.pipes.lock() {
            Ok(mut pipes) => pipes.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let count = open.iter().filter(|pipe| !pipe.is_finished()).count();
        for pipe in open {
            // Dropping the streams with SO_LINGER 0 sends the RSTs.
            pipe.abort();
            let _ = pipe.await;
        }
        tokio::time::sleep(down).await;
        // Tokio sets SO_REUSEADDR, so the port is free again at once.
        let listener = TcpListener::bind(self.listen).await?;
        self.serve(listener);
        Ok(count)
    }

    fn lock_accept(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.accept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, accepted, pipes) =
            (self.upstream, self.accepted.clone(), self.pipes.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let pipe = tokio::spawn(pipe(client, upstream));
                if let Ok(mut pipes) = pipes.lock() {
                    pipes.retain(|pipe| !pipe.is_finished());
                    pipes.push(pipe);
                }
            }
        });
        *self.lock_accept() = Some(accept);
    }
}

/// Copies both ways until either side ends; aborted, it resets both.
async fn pipe(mut client: TcpStream, upstream: SocketAddr) {
    let connect = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let Ok(Ok(mut server)) = connect.await else {
        return;
    };
    for stream in [&client, &server] {
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        let _ = stream.set_nodelay(true);
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(accept) = self.lock_accept().take() {
            accept.abort();
        }
        if let Ok(mut pipes) = self.pipes.lock() {
            for pipe in pipes.drain(..) {
                pipe.abort();
            }
        }
    }
}
