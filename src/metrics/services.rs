//! Metrics of the WeChat services the gateway runs for legacy code (CONTRACT section 10):
//! decrypt outcomes, checksession results, relay calls and login risk ranks.
//!
//! Registered into the gateway's one registry at start-up. Labels are bounded: outcome
//! codes, three checksession results, the relay's allow-listed paths with WeChat's errcode,
//! and the five risk ranks plus `failed`. Nothing here sees a key, a token or user data.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    path: Arc<str>,
    errcode: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RankLabels {
    rank: &'static str,
}

/// What checksession said of a session's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// WeChat confirmed the key.
    Valid,
    /// WeChat refused it (87009): the user logged in again elsewhere, or it expired.
    Stale,
    /// WeChat could not be asked.
    Unknown,
}

/// The service families.
pub struct ServiceMetrics {
    decrypts: Family<OutcomeLabels, Counter>,
    checksessions: Family<ResultLabels, Counter>,
    relay: Family<RelayLabels, Counter>,
    risk: Family<RankLabels, Counter>,
}

impl ServiceMetrics {
    /// The families, registered into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let decrypts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "wxgate_decrypt",
            "Decryptions of encryptedData (decrypt endpoint and legacy phone) by result code",
            decrypts.clone(),
        );
        let checksessions = Family::<ResultLabels, Counter>::default();
        registry.register(
            "wxgate_checksession",
            "session_key checks at WeChat: valid, stale (refused) or unknown (not asked)",
            checksessions.clone(),
        );
        let relay = Family::<RelayLabels, Counter>::default();
        registry.register(
            "wxgate_relay_calls",
            "Open-API relay calls by path and WeChat errcode (0: success or not JSON)",
            relay.clone(),
        );
        let risk = Family::<RankLabels, Counter>::default();
        registry.register(
            "wxgate_risk_ranks",
            "Login risk ranks seen (0 lowest, 4 highest; failed: the call failed)",
            risk.clone(),
        );
        Self {
            decrypts,
            checksessions,
            relay,
            risk,
        }
    }

    /// Count one decryption by outcome (`ok` or an error code).
    pub fn record_decrypt(&self, outcome: &'static str) {
        self.decrypts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Count one checksession result.
    pub fn record_checksession(&self, check: KeyCheck) {
        let result = match check {
            KeyCheck::Valid => "valid",
            KeyCheck::Stale => "stale",
            KeyCheck::Unknown => "unknown",
        };
        self.checksessions
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Count one relay call to an allow-listed `path` by WeChat's errcode (0 when the answer
    /// was a success or not JSON).
    pub fn record_relay(&self, path: &Arc<str>, errcode: i64) {
        let labels = RelayLabels {
            path: path.clone(),
            errcode,
        };
        self.relay.get_or_create(&labels).inc();
    }

    /// Count one risk answer: `Some(rank)` (0..=4; anything else counts as `other`), or
    /// `None` when the call failed.
    pub fn record_risk(&self, rank: Option<i64>) {
        let rank = match rank {
            Some(0) => "0",
            Some(1) => "1",
            Some(2) => "2",
            Some(3) => "3",
            Some(4) => "4",
            Some(_) => "other",
            None => "failed",
        };
        self.risk.get_or_create(&RankLabels { rank }).inc();
    }
}
