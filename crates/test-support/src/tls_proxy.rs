//! A TLS terminator for the tests: `wss://` in front of an app-server that
//! speaks only `ws://`, as a proxy or tunnel does in front of a real one.
//!
//! The CA and the server certificate (for `localhost` and `127.0.0.1`) are
//! made fresh with the `openssl` command, in a directory the proxy owns; the
//! CA's PEM file is what a client is told to trust. Each accepted
//! connection is decrypted and piped to the upstream address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsProxyError {
    #[error("openssl {step} failed: {detail}")]
    Openssl { step: &'static str, detail: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the test certificate does not load: {0}")]
    Pem(String),
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A listening TLS terminator; stops accepting when dropped.
pub struct TlsProxy {
    /// Where clients connect (`127.0.0.1:PORT`).
    pub address: SocketAddr,
    dir: TempDir,
    accept: JoinHandle<()>,
}

impl TlsProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<TlsProxy, TlsProxyError> {
        let dir = tempfile::tempdir()?;
        make_certificates(dir.path())?;
        let certs = CertificateDer::pem_file_iter(dir.path().join("server.pem"))
            .map_err(|error| TlsProxyError::Pem(error.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsProxyError::Pem(error.to_string()))?;
        let key = PrivateKeyDer::from_pem_file(dir.path().join("server.key"))
            .map_err(|error| TlsProxyError::Pem(error.to_string()))?;
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Ok(TlsProxy {
            address,
            dir,
            accept,
        })
    }

    /// The PEM file of the CA that signed the proxy's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `wss://localhost:PORT`: the name the certificate was made for.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}", self.address.port())
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A P-256 CA, and a server certificate it signs for localhost.
fn make_certificates(dir: &Path) -> Result<(), TlsProxyError> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        "req (CA)",
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=codex-mcp-sidecar test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        "req (server)",
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(
        dir,
        "x509 (sign)",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )
}

fn openssl(dir: &Path, step: &'static str, args: &[&str]) -> Result<(), TlsProxyError> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|error| TlsProxyError::Openssl {
            step,
            detail: error.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TlsProxyError::Openssl {
            step,
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
