//! Reaching the server: the stream (TCP to any host, TLS over it for
//! `wss://`, or a Unix socket), the WebSocket upgrade with our token, and the
//! start of the worker that owns the socket.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};

use super::worker::{Command, ServerEvent, Worker, WorkerShared};
use super::{ConnectOptions, ConnectionError};

/// Opens the stream (TCP for `ws://`, TLS over TCP for `wss://`, a Unix
/// socket for `unix://PATH`) and
/// performs the WebSocket upgrade with our token, then starts the worker.
pub(super) async fn open_and_spawn(
    options: &ConnectOptions,
    command_rx: mpsc::Receiver<Command>,
    event_tx: mpsc::Sender<ServerEvent>,
    shared: WorkerShared,
) -> Result<(), ConnectionError> {
    let url = options.url.as_str();
    let invalid = || ConnectionError::InvalidUrl(url.to_string());
    let connect_error = |source| ConnectionError::Connect {
        url: url.to_string(),
        source,
    };
    if let Some(path) = url.strip_prefix("unix://") {
        // The upgrade request still needs an http URI; the host is unused.
        let request = upgrade_request("ws://localhost/", options, url)?;
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(connect_error)?;
        let socket = upgrade(request, stream, options).await?;
        tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
        return Ok(());
    }
    let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(invalid()),
    };
    let authority = rest
        .split('/')
        .next()
        .filter(|authority| !authority.is_empty())
        .ok_or_else(invalid)?;
    let request = upgrade_request(url, options, url)?;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(connect_error)?;
    // Frames are small JSON messages; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    if !tls {
        let socket = upgrade(request, stream, options).await?;
        tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
        return Ok(());
    }
    let remote = options.remote.as_ref();
    let config = remote
        .and_then(|remote| remote.tls.clone())
        .ok_or_else(invalid)?;
    let host = crate::config::remote::url_host(url).ok_or_else(invalid)?;
    let server_name = ServerName::try_from(host.to_string()).map_err(|_| invalid())?;
    let stream = TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|error| ConnectionError::Tls {
            url: url.to_string(),
            reason: error.to_string(),
            ca_setting: remote
                .map(|remote| remote.ca_setting.clone())
                .unwrap_or_default(),
        })?;
    let socket = upgrade(request, stream, options).await?;
    tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
    Ok(())
}

fn upgrade_request(
    uri: &str,
    options: &ConnectOptions,
    url: &str,
) -> Result<tungstenite::handshake::client::Request, ConnectionError> {
    let mut request = uri
        .into_client_request()
        .map_err(|_| ConnectionError::InvalidUrl(url.to_string()))?;
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .map_err(|_| ConnectionError::InvalidUrl(url.to_string()))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(request)
}

async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    request: tungstenite::handshake::client::Request,
    stream: S,
    options: &ConnectOptions,
) -> Result<WebSocketStream<S>, ConnectionError> {
    let url = options.url.as_str();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            if let (StatusCode::UNAUTHORIZED, Some(remote)) = (status, &options.remote) {
                Err(ConnectionError::RemoteUnauthorized {
                    url: url.to_string(),
                    hint: remote.auth_hint.clone(),
                })
            } else if status == StatusCode::UNAUTHORIZED {
                Err(ConnectionError::Unauthorized {
                    url: url.to_string(),
                })
            } else {
                Err(ConnectionError::Rejected {
                    url: url.to_string(),
                    status: status.as_u16(),
                })
            }
        }
        Err(source) => Err(ConnectionError::Handshake {
            url: url.to_string(),
            source: Box::new(source),
        }),
    }
}
