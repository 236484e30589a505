//! wxgate: a reverse-proxy authentication gateway for WeChat Mini Programs.
//!
//! A request's way through the gateway, module by module:
//!
//! - [`server`]: listeners (HTTP/1 and HTTP/2, optional rustls TLS), connection limits and
//!   timeouts, graceful shutdown, and the admin listener; [`conn`]: each connection's facts,
//!   worked out at accept; [`worker`]: what each worker thread owns (upstream pools, counts).
//! - [`router`]: path checks, then the auth endpoints, a proxy route, or 404.
//! - [`auth`]: `/wx/login` (with the risk check), `/wx/phone`, `/wx/session`, `/wx/decrypt`,
//!   `/wx/logout`: WeChat results become sessions.
//! - [`wechat`]: the only code that talks to WeChat, with the access_token manager.
//! - [`session`]: the `SessionStore` trait, its backends, token minting and hashing, and each
//!   session's resolved identity (ready header values, rebuilt only when its sources change).
//! - [`accounts`]: identity → account resolution: durable bindings, the accounts file (hot-reloaded).
//! - [`proxy`]: the proxy phases, header sanitising and injection, X-Forwarded-*, and the
//!   per-worker upstream pools.
//! - [`limit`]: per-IP login rate limits and trusted-proxy client-IP extraction.
//! - [`watch`]: hot-reload triggers (watched files, SIGHUP) for the accounts file and the TLS pair.
//! - [`clock`], [`net`]: leaf helpers: Unix time for the stores, CIDR membership.
//! - [`error`]: the contract's error codes and their single rendering.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`admin`]: probes, metrics, bindings, the access_token server and the open-API relay on
//!   the admin listener.
//! - [`demo`]: the `wxgate demo` WeChat simulator and echo upstream (never used by `run`).

pub mod accounts;
pub mod admin;
pub mod assertion;
pub mod auth;
pub mod clock;
pub mod config;
pub mod conn;
pub mod demo;
pub mod error;
pub mod http;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod proxy;
pub mod redis;
pub mod router;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod watch;
pub mod wechat;
pub mod worker;
