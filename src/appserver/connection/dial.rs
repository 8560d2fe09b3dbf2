//! Reaching the server: the stream (TCP or a Unix socket), the WebSocket
//! upgrade with our token, and the start of the worker that owns the socket.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};

use super::worker::{Command, ServerEvent, Worker, WorkerShared};
use super::{ConnectOptions, ConnectionError};

/// Opens the stream (TCP for `ws://`, a Unix socket for `unix://PATH`) and
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
        let socket = upgrade(request, stream, url).await?;
        tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
        return Ok(());
    }
    let authority = url
        .strip_prefix("ws://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|authority| !authority.is_empty())
        .ok_or_else(invalid)?;
    let request = upgrade_request(url, options, url)?;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(connect_error)?;
    // Frames are small JSON messages; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let socket = upgrade(request, stream, url).await?;
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
    url: &str,
) -> Result<WebSocketStream<S>, ConnectionError> {
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
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
