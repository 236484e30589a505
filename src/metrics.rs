//! Counters and histograms, rendered as Prometheus text on the admin listener.
//!
//! Recording is an atomic add on a pre-registered family member; labels are cheap
//! (`Arc<str>`, `&'static str`, integers). Nothing here ever sees a token or a secret:
//! labels are route prefixes, status codes, error codes and API names.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
        }
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
    }
}
