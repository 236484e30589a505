//! Wall-clock time as the stores write it: Unix milliseconds and seconds.
//!
//! Every conversion saturates: a time before 1970 reads as 0 and one past `u64::MAX`
//! milliseconds as `u64::MAX`, never a wrapped value. Nothing here sleeps or measures
//! intervals; monotonic deadlines stay with `tokio::time::Instant`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration in whole milliseconds, saturating at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `t` as Unix milliseconds (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// Now, as Unix milliseconds.
pub fn now_unix_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// Now, as Unix seconds (0 before the epoch).
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate_instead_of_wrapping() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1234)), 1234);
    }

    #[test]
    fn now_is_after_2020() {
        let now = now_unix_ms();
        assert!(now > 1_577_836_800_000, "{now}");
        assert!(now_unix_secs().abs_diff(now / 1000) <= 1);
    }
}
