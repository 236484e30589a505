//! Worker threads: one single-threaded runtime per core, like nginx's worker processes.
//!
//! The accept loop hands each accepted connection to a worker in turn; the connection then
//! lives on that worker's thread for its whole life, with the worker's own upstream
//! connections and request counts (its [`Worker`]), so a request crosses no thread on its
//! way through.
//! On shutdown the workers stop receiving, let their in-flight requests finish within
//! `drain_timeout`, and exit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_rustls::TlsAcceptor;

use super::{http_builder, serve_tcp};
use crate::state::AppState;
use crate::worker::Worker;

/// An accepted connection on its way to a worker, holding its `max_connections` slot.
pub struct Accepted {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

/// The running workers.
pub struct Workers {
    senders: Vec<UnboundedSender<Accepted>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
}

/// One worker per available core.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Workers {
    /// Start `n` worker threads.
    pub fn start(
        n: usize,
        state: &Arc<AppState>,
        tls: Option<TlsAcceptor>,
    ) -> Result<Self, String> {
        let mut workers = Self {
            senders: Vec::with_capacity(n),
            handles: Vec::with_capacity(n),
            next: 0,
        };
        for i in 0..n.max(1) {
            let (tx, rx) = unbounded_channel();
            let (state, tls) = (state.clone(), tls.clone());
            let handle = std::thread::Builder::new()
                .name(format!("wxgate-worker-{i}"))
                .spawn(move || run_worker(rx, state, tls))
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
            workers.senders.push(tx);
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    /// Hand a connection to the next worker (round robin).
    pub fn dispatch(&mut self, mut accepted: Accepted) {
        for _ in 0..self.senders.len() {
            let i = self.next % self.senders.len();
            self.next = self.next.wrapping_add(1);
            match self.senders[i].send(accepted) {
                Ok(()) => return,
                Err(returned) => accepted = returned.0,
            }
        }
        tracing::error!(peer = %accepted.peer, "no worker is running; dropping the connection");
    }

    /// Stop handing out connections and wait until every worker has drained.
    pub async fn drain(self) {
        drop(self.senders);
        let handles = self.handles;
        let _ = tokio::task::spawn_blocking(move || {
            for handle in handles {
                let _ = handle.join();
            }
        })
        .await;
    }
}

fn run_worker(rx: UnboundedReceiver<Accepted>, state: Arc<AppState>, tls: Option<TlsAcceptor>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(serve_connections(rx, state, tls));
}

async fn serve_connections(
    mut rx: UnboundedReceiver<Accepted>,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
) {
    let graceful = GracefulShutdown::new();
    let builder = http_builder();
    let worker = Arc::new(Worker::new(&state));
    let pruner = tokio::spawn(prune_idle(worker.clone()));
    while let Some(accepted) = rx.recv().await {
        let Ok(stream) = TcpStream::from_std(accepted.stream) else {
            continue;
        };
        let (state, worker, tls, builder, watcher) = (
            state.clone(),
            worker.clone(),
            tls.clone(),
            builder.clone(),
            graceful.watcher(),
        );
        let accepted = (stream, accepted.peer, accepted.permit);
        tokio::spawn(serve_tcp(state, worker, accepted, tls, builder, watcher));
    }
    pruner.abort();
    let drain = state.config.server.drain_timeout;
    let drained = async {
        graceful.shutdown().await;
        if worker.tunnels.count() > 0 {
            tracing::info!(open = worker.tunnels.count(), "waiting for open WebSockets");
        }
        worker.tunnels.all_closed().await;
    };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(
            ?drain,
            open_websockets = worker.tunnels.count(),
            "drain timeout reached; closing remaining connections"
        );
    }
}

/// Close this worker's upstream connections that stayed idle too long.
async fn prune_idle(worker: Arc<Worker>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        every.tick().await;
        worker.upstreams.prune();
    }
}
