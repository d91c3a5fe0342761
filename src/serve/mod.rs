//! Serving one listener: our own accept loop over hyper's HTTP/1 connection, so that each
//! listener bounds how long a client may take to send its headers, how long a connection may
//! sit idle, and how many connections are open at once. A flood of slow clients on the public
//! listener therefore holds at most its own connections, never the internal listener's.

mod bare;
mod fd_limit;
mod threads;
mod watched;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use bare::BareAnswers;
pub use fd_limit::{FdLimitError, fit_connection_caps};
pub use threads::ConnectionThreads;
use watched::{Activity, Watched};

/// How long an accept waits after the process ran out of descriptors (or memory), so the loop
/// does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One listener's bounds on its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// One listener, ready to serve.
pub struct Listener {
    pub name: &'static str,
    pub socket: TcpListener,
    pub router: Router,
    pub limits: ConnectionLimits,
    pub bare: Arc<BareAnswers>,
    /// Where its connections are served, shared with the other listener.
    pub threads: Arc<ConnectionThreads>,
}

impl Listener {
    /// Accepts until `stop` is cancelled; then stops accepting, asks every open connection to
    /// close after the request under way, and returns once all are closed.
    pub async fn serve(self, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let connections = TaskTracker::new();
        loop {
            // A slot first: at the cap nothing is accepted, and new connections wait in the
            // kernel's backlog instead of taking descriptors.
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                () = stop.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.socket.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        self.accept_failed(&error).await;
                        continue;
                    }
                },
                () = stop.cancelled() => break,
            };
            // Registered again with the event loop of the thread that serves it.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(listener = self.name, %error, "cannot hand an accepted connection over");
                    continue;
                }
            };
            let (router, limits, bare, stop) = (
                self.router.clone(),
                self.limits,
                Arc::clone(&self.bare),
                stop.clone(),
            );
            let tracked = connections.token();
            self.threads.serve(stream, move |stream| async move {
                serve_connection(stream, peer, router, limits, bare, slot, stop).await;
                drop(tracked);
            });
        }
        drop(self.socket);
        connections.close();
        connections.wait().await;
    }

    async fn accept_failed(&self, error: &std::io::Error) {
        use std::io::ErrorKind;
        // The peer gave up between SYN and accept: nothing to wait for.
        if matches!(
            error.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return;
        }
        tracing::warn!(listener = self.name, %error, "cannot accept a connection: pausing");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    bare: Arc<BareAnswers>,
    slot: OwnedSemaphorePermit,
    stop: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity), bare));
    // The rate limiter keys clients by their address.
    let service = TowerToHyperService::new(router.map_request(
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        },
    ));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this clock whenever it waits for a request's head: at the connection's
        // start and after each answer, so it also ends kept-alive connections that send nothing.
        .header_read_timeout(limits.header_read_timeout)
        // One buffer per write, so a bodiless error answer of hyper's own can be recognised.
        .writev(false);
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            // Nothing moved either way: a client that stopped reading or sending. Requests
            // under way are not cut: the idle limit is longer than the request time limit.
            () = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!("closing an idle connection");
                break;
            }
        }
    }
    drop(slot);
}
