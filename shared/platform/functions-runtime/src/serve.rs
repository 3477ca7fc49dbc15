//! `serve()`: the custom handler process's main loop.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;

use crate::app::FunctionApp;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "FUNCTIONS_CUSTOMHANDLER_PORT is not set: this binary is started by the Functions host (or use the local runner)"
    )]
    NoPort,
    #[error("FUNCTIONS_CUSTOMHANDLER_PORT={0:?} is not a port number")]
    BadPort(String),
    #[error(transparent)]
    Declaration(#[from] crate::declare::DeclarationError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The port the host chose, from the documented variable or its legacy name.
pub fn port_from_env(get: impl Fn(&str) -> Option<String>) -> Result<u16, ServeError> {
    let raw = get("FUNCTIONS_CUSTOMHANDLER_PORT")
        .or_else(|| get("FUNCTIONS_HTTPWORKER_PORT"))
        .ok_or(ServeError::NoPort)?;
    raw.trim().parse().map_err(|_| ServeError::BadPort(raw))
}

/// Serves the app on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` until SIGTERM or Ctrl-C.
///
/// The host connects to the literal `127.0.0.1`, so an IPv6-only listener would never be
/// seen as ready. `GET /` answers at once, before any app state is warmed.
pub async fn serve(app: FunctionApp) -> Result<(), ServeError> {
    app.validate()?;
    let port = port_from_env(|k| std::env::var(k).ok())?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!(app = app.slug(), %addr, "custom handler listening");
    serve_on(listener, app, shutdown_signal()).await
}

/// `listener` with `TCP_NODELAY` on every connection it accepts: a streamed answer is
/// many small writes, and with Nagle's algorithm each one after the first waits for the
/// peer's ACK, which a delayed-ACK peer holds back about 40 ms.
pub fn no_delay(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set on a connection");
        }
    })
}

/// Serves on a bound listener until `shutdown` completes (tests pass a oneshot).
pub async fn serve_on(
    listener: TcpListener,
    app: FunctionApp,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(no_delay(listener), app.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C. (The host itself kills with SIGKILL; this is for
/// people running the handler by hand and for orderly shutdowns of the local runner.)
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener as _;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_acks() {
        let listener = super::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = super::no_delay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is set");
    }
}
