//! Counters and histograms, rendered as Prometheus text on the admin listener.
//!
//! Request counts, the one metric every request touches, are kept per worker thread in a
//! [`RequestShard`] (no counter shared between cores on the hot path) and summed into
//! `wxgate_http_requests_total` when the admin listener renders. The rest is recorded
//! with an atomic add on a pre-registered family member; labels are cheap (`Arc<str>`,
//! `&'static str`, integers). Nothing here ever sees a token or a secret: labels are route
//! prefixes, status codes, error codes and API names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

mod services;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use services::{KeyCheck, ServiceMetrics};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// All of the gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    wechat_latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    wechat_errors: Family<OutcomeLabels, Counter>,
    token_events: Family<EventLabels, Counter>,
    phones: Family<OutcomeLabels, Counter>,
    store_latency: Family<OpLabels, Histogram, fn() -> Histogram>,
    store_errors: Family<OpLabels, Counter>,
    sessions: Gauge,
    websockets: Gauge,
    upgrades: Family<RequestLabels, Counter>,
    /// Decrypt, checksession, relay and risk (CONTRACT section 10).
    pub services: ServiceMetrics,
    /// Every worker's request counts, summed into `requests` at render.
    shards: Mutex<Vec<Arc<RequestShard>>>,
}

/// One worker's request counts by route label and status.
#[derive(Default)]
pub struct RequestShard {
    /// Keyed by the label's address (labels live as long as the process) and status.
    counts: Mutex<HashMap<(usize, u16), Tally>>,
}

struct Tally {
    route: Arc<str>,
    count: u64,
    /// How much of `count` has been added to the rendered family.
    rendered: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RequestShard {
    /// Count one finished request.
    pub fn record(&self, route: &Arc<str>, status: u16) {
        let key = (Arc::as_ptr(route).cast::<u8>() as usize, status);
        lock(&self.counts)
            .entry(key)
            .or_insert_with(|| Tally {
                route: route.clone(),
                count: 0,
                rendered: 0,
            })
            .count += 1;
    }

    /// Add what was counted since the last render to `family`.
    fn flush_into(&self, family: &Family<RequestLabels, Counter>) {
        for (&(_, status), tally) in lock(&self.counts).iter_mut() {
            let fresh = tally.count - tally.rendered;
            if fresh > 0 {
                let labels = RequestLabels {
                    route: tally.route.clone(),
                    status,
                };
                family.get_or_create(&labels).inc_by(fresh);
                tally.rendered = tally.count;
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "wxgate_http_requests",
            "Requests by route and response status",
            requests.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "wxgate_login",
            "Login outcomes by result code",
            logins.clone(),
        );
        let wechat_latency =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "wxgate_wechat_request_duration_seconds",
            "Latency of calls to WeChat by API",
            wechat_latency.clone(),
        );
        let wechat_errors = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "wxgate_wechat_errors",
            "Failed calls to WeChat by error code",
            wechat_errors.clone(),
        );
        let token_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "wxgate_access_token_events",
            "access_token fetches, failed fetches and expiries after a WeChat rejection",
            token_events.clone(),
        );
        let phones = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "wxgate_phone",
            "Phone verification outcomes by result code",
            phones.clone(),
        );
        let store_latency = Family::<OpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "wxgate_store_request_duration_seconds",
            "Latency of session-store (Redis) commands by operation",
            store_latency.clone(),
        );
        let store_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "wxgate_store_errors",
            "Failed session-store commands by operation",
            store_errors.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "wxgate_sessions",
            "Live sessions in the store",
            sessions.clone(),
        );
        let websockets = Gauge::default();
        registry.register(
            "wxgate_websocket_connections",
            "WebSocket tunnels open now",
            websockets.clone(),
        );
        let upgrades = Family::<RequestLabels, Counter>::default();
        registry.register(
            "wxgate_websocket_upgrades",
            "WebSocket upgrade requests by route and response status (101: tunnel opened)",
            upgrades.clone(),
        );
        let services = ServiceMetrics::register(&mut registry);
        Self {
            registry,
            requests,
            logins,
            wechat_latency,
            wechat_errors,
            token_events,
            phones,
            store_latency,
            store_errors,
            sessions,
            websockets,
            upgrades,
            services,
            shards: Mutex::default(),
        }
    }

    /// A new worker's request counts, included in every render from now on.
    pub fn shard(&self) -> Arc<RequestShard> {
        let shard = Arc::new(RequestShard::default());
        lock(&self.shards).push(shard.clone());
        shard
    }

    /// Count one finished request.
    pub fn record_request(&self, route: &Arc<str>, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
    }

    /// Count one WebSocket upgrade request by its response status.
    pub fn record_upgrade(&self, route: &Arc<str>, status: u16) {
        self.upgrades
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
    }

    /// A WebSocket tunnel opened.
    pub fn websocket_opened(&self) {
        self.websockets.inc();
    }

    /// A WebSocket tunnel closed.
    pub fn websocket_closed(&self) {
        self.websockets.dec();
    }

    /// Count one login by outcome (`ok` or an error code).
    pub fn record_login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Count one phone verification by outcome (`ok` or an error code).
    pub fn record_phone(&self, outcome: &'static str) {
        self.phones.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Count an access_token event: `fetched`, `fetch_failed`, `expired`.
    pub fn record_token_event(&self, event: &'static str) {
        self.token_events
            .get_or_create(&EventLabels { event })
            .inc();
    }

    /// Observe one store command.
    pub fn record_store(&self, op: &'static str, elapsed: Duration, failed: bool) {
        self.store_latency
            .get_or_create(&OpLabels { op })
            .observe(elapsed.as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&OpLabels { op }).inc();
        }
    }

    /// Observe the latency of one WeChat call.
    pub fn record_wechat(&self, api: &'static str, elapsed: Duration, error: Option<&'static str>) {
        self.wechat_latency
            .get_or_create(&ApiLabels { api })
            .observe(elapsed.as_secs_f64());
        if let Some(outcome) = error {
            self.wechat_errors
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
        }
    }

    /// Render the Prometheus text exposition, with the live-session gauge set to `sessions`.
    pub fn render(&self, sessions: Option<u64>) -> String {
        if let Some(n) = sessions {
            self.sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for shard in lock(&self.shards).iter() {
            shard.flush_into(&self.requests);
        }
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.record_request(&Arc::from("/api/"), 200);
        m.record_login("ok");
        m.record_wechat(
            "jscode2session",
            Duration::from_millis(12),
            Some("invalid_code"),
        );
        let text = m.render(Some(3));
        assert!(
            text.contains(r#"wxgate_http_requests_total{route="/api/",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wxgate_login_total{outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("wxgate_wechat_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("wxgate_sessions 3"), "{text}");
        assert!(text.contains("wxgate_websocket_connections 0"), "{text}");
    }

    #[test]
    fn websocket_tunnels_and_upgrades_are_counted() {
        let m = Metrics::new();
        let route: Arc<str> = Arc::from("/ws/");
        m.websocket_opened();
        m.websocket_opened();
        m.websocket_closed();
        m.record_upgrade(&route, 101);
        m.record_upgrade(&route, 401);
        let text = m.render(None);
        assert!(text.contains("wxgate_websocket_connections 1"), "{text}");
        assert!(
            text.contains(r#"wxgate_websocket_upgrades_total{route="/ws/",status="101"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"status="401"} 1"#), "{text}");
    }

    #[test]
    fn worker_shards_are_summed_at_every_render() {
        let m = Metrics::new();
        let route: Arc<str> = Arc::from("/api/");
        let (a, b) = (m.shard(), m.shard());
        a.record(&route, 200);
        b.record(&route, 200);
        b.record(&route, 401);
        m.record_request(&route, 200);
        let line = r#"wxgate_http_requests_total{route="/api/",status="200"}"#;
        let text = m.render(None);
        assert!(text.contains(&format!("{line} 3")), "{text}");
        assert!(text.contains(r#"status="401"} 1"#), "{text}");
        a.record(&route, 200);
        let text = m.render(None);
        assert!(text.contains(&format!("{line} 4")), "{text}");
    }
}
