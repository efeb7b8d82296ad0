//! Brute-force protection for login: failed attempts are rate-limited per client IP with
//! governor's GCRA. Once an IP exhausts its allowance it is locked out until the limiter would
//! admit it again, and during the lockout every attempt — right password or not — gets 429 with
//! `Retry-After`, so guessing cannot continue at full speed. Successful logins cost nothing.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct LoginLimiter {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// IP → end of its lockout. Pruned by [`LoginLimiter::housekeeping`].
    lockouts: DashMap<IpAddr, Instant>,
}

impl LoginLimiter {
    /// Allow `burst` failures at once, regaining `per_minute` per minute.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        Self {
            failures: RateLimiter::keyed(quota),
            lockouts: DashMap::new(),
        }
    }

    /// Refuse the attempt if the IP is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        match self.lockouts.get(&ip).map(|until| *until) {
            Some(until) if until > now => Err(ApiError::rate_limited(seconds_until(until, now))),
            _ => Ok(()),
        }
    }

    /// Count a failed attempt; returns the 429 to send if this failure exhausted the allowance.
    pub fn record_failure(&self, ip: IpAddr) -> Option<ApiError> {
        match self.failures.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let now = Instant::now();
                self.lockouts.insert(ip, now + wait);
                Some(ApiError::rate_limited(seconds_until(now + wait, now)))
            }
        }
    }

    /// Forget IPs whose state no longer matters. Run periodically.
    pub fn housekeeping(&self) {
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        self.lockouts.retain(|_, until| *until > now);
    }
}

fn seconds_until(until: Instant, now: Instant) -> u64 {
    let wait = until.saturating_duration_since(now);
    (wait + Duration::from_millis(999)).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_burst_lock_the_ip_out() {
        let limiter = LoginLimiter::new(3, 1);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
            assert!(limiter.record_failure(ip).is_none());
        }
        let limited = limiter.record_failure(ip).unwrap();
        assert_eq!(
            limited.status,
            actix_web::http::StatusCode::TOO_MANY_REQUESTS
        );
        assert!(limited.retry_after.unwrap() >= 1);
        assert!(limiter.check(ip).is_err());
        assert!(limiter.check(other).is_ok());
    }
}
