//! The Redis backend shared by every replica: connection, key names, sealing, timing.
//!
//! One [`RedisBackend`] holds a self-reconnecting connection (single node through the
//! connection manager, or Redis Cluster), the key prefix and the [`seal::Sealer`]. Every
//! command is bounded by a timeout and timed into the store-latency histogram; a command
//! that met a broken connection is sent once more on a new one within that bound, so the
//! first request after an outage succeeds; any other failure becomes `store_unavailable`,
//! never a panic or a hang.

pub mod seal;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a replica may answer from its local copy of a session or binding: under the
/// contract's 1 s for a change to reach every replica, with room for timer slack.
pub const LOCAL_TTL: std::time::Duration = std::time::Duration::from_millis(900);

use base64::Engine;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::config::RedisConfig;
use crate::error::GatewayError;
use crate::metrics::Metrics;

use self::seal::Sealer;

/// Bound on connecting and on each command.
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

enum Connector {
    Single(ConnectionManager),
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        conn: OnceCell<ClusterConnection>,
    },
}

/// A connection to the shared store.
pub struct RedisBackend {
    connector: Connector,
    prefix: String,
    pub sealer: Sealer,
    metrics: Arc<Metrics>,
}

impl RedisBackend {
    /// Prepare the connection (it is made lazily, so start-up does not need Redis up).
    pub fn new(config: &RedisConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(config.encryption_key.expose().trim())
            .map_err(|_| "redis.encryption_key is not base64".to_string())?;
        let sealer = Sealer::new(&key)?;
        let connector = if config.cluster || !config.nodes.is_empty() {
            let nodes: Vec<&str> = std::iter::once(config.url.expose())
                .chain(config.nodes.iter().map(|n| n.expose()))
                .collect();
            let client = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(TIMEOUT)
                .response_timeout(TIMEOUT)
                .retries(2)
                .build()
                .map_err(|e| format!("redis cluster: {e}"))?;
            Connector::Cluster {
                client: Box::new(client),
                conn: OnceCell::new(),
            }
        } else {
            let client =
                redis::Client::open(config.url.expose()).map_err(|e| format!("redis.url: {e}"))?;
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
                .map_err(|e| format!("redis: {e}"))?;
            Connector::Single(manager)
        };
        Ok(Self {
            connector,
            prefix: config.key_prefix.clone(),
            sealer,
            metrics,
        })
    }

    /// `prefix + kind + ":" + id`.
    pub fn key(&self, kind: &str, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + id.len() + 1);
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push(':');
        key.push_str(id);
        key
    }

    async fn conn(&self) -> Result<Conn, GatewayError> {
        match &self.connector {
            Connector::Single(m) => Ok(Conn::Single(m.clone())),
            Connector::Cluster { client, conn } => {
                let c = conn
                    .get_or_try_init(|| async {
                        tokio::time::timeout(TIMEOUT * 2, client.get_async_connection())
                            .await
                            .map_err(|_| GatewayError::StoreUnavailable)?
                            .map_err(|e| {
                                tracing::warn!(error = %e, "redis cluster connection failed");
                                GatewayError::StoreUnavailable
                            })
                    })
                    .await?;
                Ok(Conn::Cluster(c.clone()))
            }
        }
    }

    /// Run one command within the timeout; any failure is `store_unavailable`.
    pub async fn run<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &Cmd,
    ) -> Result<T, GatewayError> {
        self.timed(
            op,
            self.reconnecting(|mut conn| async move { cmd.query_async::<T>(&mut conn).await }),
        )
        .await
    }

    /// Run a Lua script (EVALSHA, falling back to EVAL) on one key.
    pub async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &redis::Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<T, GatewayError> {
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let invocation = &invocation;
        self.timed(
            op,
            self.reconnecting(
                |mut conn| async move { invocation.invoke_async::<T>(&mut conn).await },
            ),
        )
        .await
    }

    /// Run `attempt` on the connection, and once more after a connection-class failure: by
    /// then the connection manager (or the cluster client) has started re-establishing the
    /// connection, so the second attempt waits for the new one instead of answering the
    /// error of a reconnect that failed while Redis was down. Safe because every command
    /// sent here is idempotent: GET, SET, DEL and scripts that compare before they change.
    async fn reconnecting<T, F, Fut>(
        &self,
        attempt: F,
    ) -> Result<redis::RedisResult<T>, GatewayError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match attempt(self.conn().await?).await {
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "redis connection lost; retrying once on a new one");
                Ok(attempt(self.conn().await?).await)
            }
            done => Ok(done),
        }
    }

    /// Bound `work` by the timeout, time it, and turn every failure into `store_unavailable`.
    async fn timed<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<redis::RedisResult<T>, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(TIMEOUT, work).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => {
                tracing::warn!(op, error = %e, "redis command failed");
                Err(GatewayError::StoreUnavailable)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                tracing::warn!(op, "redis command timed out");
                Err(GatewayError::StoreUnavailable)
            }
        };
        self.metrics
            .record_store(op, started.elapsed(), result.is_err());
        result
    }

    /// PING, for `/readyz`.
    pub async fn ping(&self) -> Result<(), GatewayError> {
        self.run::<String>("ping", &redis::cmd("PING"))
            .await
            .map(drop)
    }
}

/// A broken, reset or refused connection (not a timeout: the time is spent by then).
fn is_connection_error(e: &redis::RedisError) -> bool {
    (e.is_connection_dropped() || e.is_connection_refusal() || e.is_io_error()) && !e.is_timeout()
}
