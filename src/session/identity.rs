//! The identity a session shows its upstreams, resolved once and reused until it changes.
//!
//! An [`Identity`] is what the proxy injects: the verified WeChat identity and the account
//! and phone the current mapping gives it, as ready header values. It is built the first
//! time a session is used on a proxied route and cached on the session; it is built again
//! only when its [`Stamp`] no longer holds: the accounts file was reloaded, a binding
//! changed on this instance, or (shared bindings) the binding it was built from may have
//! changed on another replica. A request then copies pointers. With `[identity_token]`
//! on, it also holds the claims to sign and, per route, the signed assertion until half its
//! lifetime is gone. Nothing here talks to WeChat or decides an HTTP answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::Session;
use crate::accounts::{AccountResolver, BindingStore, Resolved};
use crate::assertion::{Claims, Signed, Signer};
use crate::config::IdentityHeaders;
use crate::error::GatewayError;

/// When an identity was resolved: the generations of its sources, and for a binding read
/// from a shared store, until when that answer may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub accounts: u64,
    pub bindings: u64,
    pub fresh_until: Option<Instant>,
}

impl Stamp {
    fn holds(&self, accounts: u64, bindings: u64) -> bool {
        self.accounts == accounts
            && self.bindings == bindings
            && self.fresh_until.is_none_or(|t| Instant::now() < t)
    }
}

/// A session's resolved identity, ready to inject.
#[derive(Debug)]
pub struct Identity {
    /// The account and verified phone the current mapping gives the session.
    pub resolved: Resolved,
    /// The identity headers, in order; values that are not header text are left out.
    headers: Vec<(HeaderName, HeaderValue)>,
    stamp: Stamp,
    /// The claims of the signed assertion (empty when `[identity_token]` is off).
    claims: Box<str>,
    /// Per route (by index), the last assertion signed for it.
    assertions: Box<[ArcSwapOption<Signed>]>,
}

impl Identity {
    /// Build the identity of `session`, resolved as `resolved`, with room for assertions on
    /// `signed_routes` routes (0: none are signed).
    pub fn build(
        names: &IdentityHeaders,
        session: &Session,
        resolved: Resolved,
        stamp: Stamp,
        signed_routes: usize,
    ) -> Self {
        let rank = session.risk_rank.map(|r| r.to_string());
        let fields = [
            (&names.openid, Some(&*session.openid)),
            (&names.appid, Some(&*session.appid)),
            (&names.unionid, session.unionid.as_deref()),
            (&names.account_id, resolved.account.as_deref()),
            (&names.phone, resolved.phone.as_deref()),
            (&names.risk_rank, rank.as_deref()),
        ];
        let headers = fields
            .into_iter()
            .filter_map(|(name, value)| {
                let value = HeaderValue::from_str(value?).ok()?;
                Some((name.clone(), value))
            })
            .collect();
        let claims = if signed_routes == 0 {
            Box::default()
        } else {
            let fallback_sub = format!("{}:{}", session.appid, session.openid);
            Claims {
                sub: resolved.account.as_deref().unwrap_or(&fallback_sub),
                openid: &session.openid,
                appid: &session.appid,
                unionid: session.unionid.as_deref(),
                account_id: resolved.account.as_deref(),
                phone_number: resolved.phone.as_deref(),
                risk_rank: session.risk_rank,
            }
            .fragment()
        };
        Self {
            resolved,
            headers,
            stamp,
            claims,
            assertions: (0..signed_routes).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    /// The signed assertion for the route at `route` (whose `aud` is `audience`): the one
    /// signed before while it has more than half its lifetime left, else a new one.
    pub fn assertion(&self, signer: &Signer, route: usize, audience: &str) -> Option<HeaderValue> {
        let slot = self.assertions.get(route)?;
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Some(signed) = &*slot.load()
            && secs < signed.renew_at
        {
            return Some(signed.value.clone());
        }
        let signed = signer.sign(&self.claims, audience, now)?;
        let value = signed.value.clone();
        slot.store(Some(Arc::new(signed)));
        Some(value)
    }

    /// Whether the identity carries an account.
    pub fn has_account(&self) -> bool {
        self.resolved.account.is_some()
    }

    /// Set the identity headers on an upstream request (the client's look-alikes are
    /// already gone).
    pub fn inject(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Room on a session for its resolved identity. A copy of a session (a phone
/// verification makes one) starts empty.
#[derive(Default)]
pub struct IdentitySlot(ArcSwapOption<Identity>);

impl Clone for IdentitySlot {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for IdentitySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySlot")
    }
}

/// Where identities are resolved from: the accounts file, the bindings and the names of
/// the headers.
pub struct Resolver<'a> {
    pub accounts: &'a AccountResolver,
    pub bindings: &'a dyn BindingStore,
    pub names: &'a IdentityHeaders,
    /// How many routes get a signed assertion (0 when `[identity_token]` is off).
    pub signed_routes: usize,
}

impl Resolver<'_> {
    /// The identity of `session`: the cached one while its stamp holds, else resolved now
    /// (and cached).
    pub async fn identity(&self, session: &Session) -> Result<Arc<Identity>, GatewayError> {
        let (accounts, bindings) = (self.accounts.generation(), self.bindings.generation());
        if let Some(id) = session.identity.0.load_full()
            && id.stamp.holds(accounts, bindings)
        {
            return Ok(id);
        }
        let lookup = self
            .bindings
            .lookup(&session.appid, &session.openid)
            .await?;
        let resolved = self
            .accounts
            .resolve(session.subject(), lookup.binding.as_deref());
        let stamp = Stamp {
            accounts,
            bindings,
            fresh_until: lookup.fresh_until,
        };
        let id = Arc::new(Identity::build(
            self.names,
            session,
            resolved,
            stamp,
            self.signed_routes,
        ));
        session.identity.0.store(Some(id.clone()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use async_trait::async_trait;
    use http::HeaderMap;

    use super::*;
    use crate::accounts::{AccountsFile, Binding, LocalBindings, Lookup};
    use crate::config::Config;
    use crate::secret::Secret;

    fn names() -> IdentityHeaders {
        let c = Config::from_toml(
            "[[apps]]\nappid='wx1'\nsecret='s'\n",
            std::path::Path::new("."),
        );
        match c {
            Ok(c) => c.identity_headers,
            Err(e) => panic!("{e}"),
        }
    }

    fn session() -> Session {
        Session {
            appid: "wx1".into(),
            openid: "o1".into(),
            unionid: None,
            session_key: Secret::new("k"),
            phone: None,
            risk_rank: None,
            expires_at: SystemTime::now() + Duration::from_secs(60),
            identity: IdentitySlot::default(),
        }
    }

    fn accounts() -> AccountResolver {
        match AccountsFile::parse("[phone]\n\"+8613800138000\" = \"10003\"\n") {
            Ok(file) => AccountResolver::fixed(file),
            Err(e) => panic!("{e}"),
        }
    }

    fn injected(id: &Identity) -> HeaderMap {
        let mut h = HeaderMap::new();
        id.inject(&mut h);
        h
    }

    #[tokio::test]
    async fn cached_until_a_binding_changes() {
        let (accounts, bindings, names) = (accounts(), LocalBindings::ephemeral(), names());
        let resolver = Resolver {
            accounts: &accounts,
            bindings: &bindings,
            names: &names,
            signed_routes: 0,
        };
        let s = session();
        let first = resolver.identity(&s).await.ok();
        let again = resolver.identity(&s).await.ok();
        assert!(matches!((&first, &again), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
        assert_eq!(first.as_deref().map(|id| id.has_account()), Some(false));
        let bound = bindings
            .put("wx1", "o1", Binding::new("+8613800138000".into()))
            .await;
        assert!(bound.is_ok());
        let after = resolver.identity(&s).await.ok();
        let h = after.as_deref().map(injected).unwrap_or_default();
        assert_eq!(
            h.get("x-wx-account-id").map(|v| v.as_bytes()),
            Some(&b"10003"[..])
        );
        assert_eq!(h.get("x-wx-openid").map(|v| v.as_bytes()), Some(&b"o1"[..]));
        assert!(!matches!((&first, &after), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
        // a copy of the session (what a phone verification stores) starts unresolved
        let copy = s.clone();
        let of_copy = resolver.identity(&copy).await.ok();
        assert!(!matches!((&after, &of_copy), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
    }

    /// A shared store whose answers are already stale: resolved again every time.
    struct Stale;

    #[async_trait]
    impl BindingStore for Stale {
        async fn get(&self, _: &str, _: &str) -> Result<Option<Arc<Binding>>, GatewayError> {
            Ok(None)
        }
        async fn lookup(&self, _: &str, _: &str) -> Result<Lookup, GatewayError> {
            Ok(Lookup {
                binding: None,
                fresh_until: Some(Instant::now()),
            })
        }
        fn generation(&self) -> u64 {
            0
        }
        async fn put(&self, _: &str, _: &str, _: Binding) -> Result<(), GatewayError> {
            Ok(())
        }
        async fn remove(&self, _: &str, _: &str) -> Result<bool, GatewayError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn a_stale_shared_binding_is_looked_up_again() {
        let (accounts, names) = (accounts(), names());
        let resolver = Resolver {
            accounts: &accounts,
            bindings: &Stale,
            names: &names,
            signed_routes: 0,
        };
        let s = session();
        let first = resolver.identity(&s).await.ok();
        let again = resolver.identity(&s).await.ok();
        assert!(first.is_some() && again.is_some());
        assert!(!matches!((&first, &again), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
    }
}
