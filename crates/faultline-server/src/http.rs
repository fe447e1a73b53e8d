//! The HTTP/1.1 accept loop: what `axum::serve` does, with the connection
//! settings it does not expose.
//!
//! An idle keep-alive connection keeps what its last request made it hold.
//! Served by `axum::serve`, a connection held ≈100 KB of heap after
//! posting 39 KB batches: ≈37 KB of route maps (axum rebuilds a plain
//! `Router` for every connection) and a read buffer grown to the largest
//! body. Here the router is shared (an `Arc` clone per connection) and
//! hyper's read buffer is capped at [`MAX_READ_BUFFER`] (a body is read in
//! pieces of at most that size, a few more reads for a large batch). A
//! studio's agents each keep one connection open, and so did the
//! benchmark's load generator (40–130 connections idle after the load).

use axum::Router;
use futures_util::FutureExt;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest read buffer of a connection (hyper's minimum is 8 KiB; its
/// default, ≈400 KB, let the buffer grow to each connection's largest
/// request). A request head must fit in it (else 431). hyper also queues
/// at most this much of a response before writing it out.
pub const MAX_READ_BUFFER: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets every connection finish the request it is serving
/// (idle keep-alive connections close) and returns once all are closed.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    // Connections wait for `signal_rx` to be dropped (shutdown); the loop
    // waits for every connection's `close_rx` to be dropped (closed).
    let (signal_tx, signal_rx) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    // Shared by every connection; converted once (it already is when built
    // with `with_state`, as `routes::router` does).
    let app: Router = app.with_state(());
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                if lasting(&e) {
                    // Out of file descriptors or the like: pause instead
                    // of spinning, still listening for shutdown.
                    tracing::warn!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                continue;
            }
        };
        // Responses and live-tail frames are small writes: send them at
        // once instead of holding them back for the peer's ACK (Nagle).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder.max_buf_size(MAX_READ_BUFFER);
            let mut conn = pin!(
                builder
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
            );
            let mut stopping = pin!(signal_tx.closed().fuse());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut stopping => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(close_rx);
        });
    }
    drop(listener);
    drop(signal_rx);
    drop(close_rx);
    close_tx.closed().await;
}

/// Whether an accept error is more than one connection reset before it was
/// accepted.
fn lasting(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}
