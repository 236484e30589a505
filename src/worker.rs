//! What one worker thread owns: its upstream connections and its share of the metrics.
//!
//! A [`Worker`] is made once per worker thread and handed to every connection that
//! thread serves, so the hot path touches no pool, no counter and no reference count that
//! another core also writes (it holds the shared state, so a request need not clone it). The admin listener sums the request counts of every worker when it renders.
//! Nothing here is global: each worker thread owns its own.

use std::sync::Arc;

use crate::metrics::RequestShard;
use crate::proxy::tunnel::Tunnels;
use crate::proxy::upstream::Upstreams;
use crate::state::AppState;

/// One worker thread's own resources.
pub struct Worker {
    /// The state every request sees.
    pub state: Arc<AppState>,
    /// Idle connections to every route's upstream, opened by this worker.
    pub upstreams: Upstreams,
    /// Requests counted on this worker.
    pub requests: Arc<RequestShard>,
    /// WebSocket tunnels open on this worker (drain waits for them).
    pub tunnels: Arc<Tunnels>,
}

impl Worker {
    pub fn new(state: &Arc<AppState>) -> Self {
        Self {
            state: state.clone(),
            upstreams: Upstreams::new(state.routes.iter().map(|r| &r.config)),
            requests: state.metrics.shard(),
            tunnels: Arc::new(Tunnels::new(state.metrics.clone())),
        }
    }
}
