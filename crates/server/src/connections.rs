//! Accepting connections as a server facing untrusted clients must: a limit
//! on how many are open at once, a deadline for request headers (so
//! half-sent requests cannot hold descriptors forever) and a shutdown that
//! waits for in-flight requests only a bounded time.

use crate::ServerConfig;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Serves connections from `listener` until `stop` resolves, then lets the
/// open ones finish their requests for `config.shutdown_grace` and drops
/// what is left (a dropped request cancels its generation).
pub(crate) async fn accept_until(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let mut open = JoinSet::new();
    tokio::pin!(stop);
    loop {
        while open.try_join_next().is_some() {}
        // A free slot first: past the limit, new connections wait in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        open.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, "connection ended: {err}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        open = open.len(),
        "shutting down: finishing in-flight requests for at most {:?}",
        config.shutdown_grace
    );
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(config.shutdown_grace) => {
            tracing::warn!(
                open = open.len(),
                "requests still running after {:?}; dropping them",
                config.shutdown_grace
            );
        }
    }
    open.abort_all();
    while open.join_next().await.is_some() {}
}
