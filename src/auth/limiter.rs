//! Rate limits, with governor's GCRA (keys are never evicted by governor itself: both limiters
//! have a `housekeeping` that `run_until_stopped` calls every minute).
//!
//! - [`LoginLimiter`] — brute-force protection for login: failed attempts are rate-limited per
//!   client IP. Once an IP exhausts its allowance it is locked out until the limiter would admit
//!   it again, and during the lockout every attempt — right password or not — gets 429 with
//!   `Retry-After`, so guessing cannot continue at full speed. Successful logins cost nothing.
//! - [`ApiLimiter`] — every authenticated API request, per user (keyed by username, checked by
//!   the `Auth` extractor right after the token is verified), so one user's script cannot starve
//!   the others. Over the rate: 429 with `Retry-After` and a JSON `detail`.
//!
//! Both count their refusals in `flotilla_rate_limited_requests_total{scope}`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use dashmap::DashMap;
use flotilla_actors::metrics::{Limited, Metrics};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct LoginLimiter {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// IP → end of its lockout. Pruned by [`LoginLimiter::housekeeping`].
    lockouts: DashMap<IpAddr, Instant>,
    /// Where refusals are counted.
    metrics: Option<Metrics>,
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
            metrics: None,
        }
    }

    /// Count refusals in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn refused(&self, retry_after: u64) -> ApiError {
        if let Some(metrics) = &self.metrics {
            metrics.count_rate_limited(Limited::Login);
        }
        ApiError::rate_limited(retry_after)
    }

    /// Refuse the attempt if the IP is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        match self.lockouts.get(&ip).map(|until| *until) {
            Some(until) if until > now => Err(self.refused(seconds_until(until, now))),
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
                Some(self.refused(seconds_until(now + wait, now)))
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

/// Per-user limit on authenticated API requests (see the module doc).
pub struct ApiLimiter {
    requests: DefaultKeyedRateLimiter<String>,
    per_second: u32,
    burst: u32,
    /// Where refusals are counted.
    metrics: Option<Metrics>,
}

impl ApiLimiter {
    /// Allow each user `burst` requests at once, regaining `per_second` per second.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let one = NonZeroU32::MIN;
        let per_second = per_second.max(1);
        let burst = burst.max(1);
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        Self {
            requests: RateLimiter::keyed(quota),
            per_second,
            burst,
            metrics: None,
        }
    }

    /// Count refusals in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Admit one request of `username`, or refuse it (429 with `Retry-After`).
    pub fn check(&self, username: &str) -> Result<(), ApiError> {
        let Err(not_until) = self.requests.check_key(&username.to_string()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let now = Instant::now();
        let secs = seconds_until(now + wait, now).max(1);
        if let Some(metrics) = &self.metrics {
            metrics.count_rate_limited(Limited::Api);
        }
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limit exceeded: each user may make {} requests per second \
                 (bursts of {}); retry in {secs} s",
                self.per_second, self.burst
            ),
        );
        error.retry_after = Some(secs);
        Err(error)
    }

    /// Forget users whose allowance is full again. Run periodically.
    pub fn housekeeping(&self) {
        self.requests.retain_recent();
        self.requests.shrink_to_fit();
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

    #[test]
    fn api_requests_beyond_the_burst_are_refused_per_user() {
        let limiter = ApiLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("ana@example.com").is_ok());
        }
        let refused = limiter.check("ana@example.com").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "rate_limited");
        assert!(refused.retry_after.unwrap() >= 1);
        assert!(
            refused.detail.contains("1 requests per second"),
            "{}",
            refused.detail
        );
        assert!(limiter.check("bo@example.com").is_ok());
        limiter.housekeeping();
    }
}
