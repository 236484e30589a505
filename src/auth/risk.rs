//! The login risk check (`[risk]`): WeChat's `getuserriskrank` between `jscode2session`
//! and the session, so a login WeChat rates as fraud gets no session at all.
//!
//! A rank at or above `block_at` is 403 `user_blocked`; a lower one is kept with the
//! session and sent upstream. When the risk call fails (or answers a rank outside 0..=4),
//! `fail_open` lets the login go on without a rank, or refuses it with 503.

use std::net::IpAddr;

use crate::error::GatewayError;
use crate::state::AppState;
use crate::wechat::risk::RiskQuery;

/// The highest rank WeChat gives.
const MAX_RANK: u8 = 4;

/// The login's risk rank: `None` when the check is off or failed open.
pub async fn check(
    state: &AppState,
    appid: &str,
    openid: &str,
    client_ip: IpAddr,
) -> Result<Option<u8>, GatewayError> {
    let config = state.config.risk;
    if !config.enabled {
        return Ok(None);
    }
    let query = RiskQuery {
        appid,
        openid,
        scene: config.scene,
        client_ip,
    };
    let answer = state
        .tokens
        .with_token(appid, |token| {
            let query = &query;
            async move { state.wechat.risk_rank(&token, query).await }
        })
        .await;
    state
        .metrics
        .services
        .record_risk(answer.as_ref().ok().copied());
    let rank = answer.and_then(|rank| {
        u8::try_from(rank)
            .ok()
            .filter(|r| *r <= MAX_RANK)
            .ok_or_else(|| GatewayError::Wechat {
                errcode: None,
                detail: "getuserriskrank answered a rank outside 0..=4".into(),
            })
    });
    match rank {
        Ok(rank) if rank >= config.block_at => {
            tracing::info!(appid, rank, "login refused by the risk check");
            Err(GatewayError::RiskBlocked)
        }
        Ok(rank) => Ok(Some(rank)),
        Err(e) if config.fail_open => {
            tracing::warn!(
                appid,
                code = e.code(),
                "risk check failed; login goes on without a rank"
            );
            Ok(None)
        }
        Err(e) => Err(GatewayError::WechatUnavailable {
            errcode: e.wechat_errcode(),
        }),
    }
}
