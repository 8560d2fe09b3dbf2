//! Prompt ACKs while an answer is awaited. Codex's app-server (0.169 to
//! 0.171) leaves Nagle on and writes some answers in two parts: the second
//! part waits until we acknowledge the first, and Linux delays that ACK by
//! up to 40 ms when we have nothing to send. A fresh connection's first
//! request after `initialize` waited so in about one call in four (seen in
//! a capture of B7: the answer's last 300 bytes left 43 ms after its first
//! 343, right after our delayed ACK). `TCP_QUICKACK` makes the kernel
//! acknowledge at once; it does not stick, so it is set again after each
//! frame read while a request is pending. macOS has no such switch; a
//! `unix://` socket has no Nagle.

/// A socket that can be asked to acknowledge what it has read at once.
pub(super) trait PromptAck {
    fn ack_promptly(&self);
}

impl PromptAck for tokio::net::TcpStream {
    fn ack_promptly(&self) {
        #[cfg(target_os = "linux")]
        if let Err(error) = socket2::SockRef::from(self).set_tcp_quickack(true) {
            tracing::debug!(%error, "could not set TCP_QUICKACK");
        }
    }
}

impl PromptAck for tokio::net::UnixStream {
    fn ack_promptly(&self) {}
}

/// `wss://`: the TCP socket under the TLS session.
impl PromptAck for tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    fn ack_promptly(&self) {
        self.get_ref().0.ack_promptly();
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tcp_socket_is_switched_to_quick_acks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        let (client, _server) = (client.unwrap(), accepted.unwrap());
        let socket = socket2::SockRef::from(&client);
        socket.set_tcp_quickack(false).unwrap();
        assert!(!socket.tcp_quickack().unwrap());
        client.ack_promptly();
        assert!(socket.tcp_quickack().unwrap());
    }
}
