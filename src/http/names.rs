//! The names of the non-standard headers the gateway reads or writes, as constants, so that
//! no module spells one by hand (the `http` crate has the standard ones in
//! `http::header`). Names only: what goes into these headers is decided elsewhere.

use http::HeaderName;

/// The request id: taken from the client when sane, else minted; echoed on every response
/// and sent upstream.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The chain of client addresses that proxies append to.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// The client address the gateway believes, sent upstream.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// The scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The host the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The port the client connected to.
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
