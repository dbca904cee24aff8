//! The one retry layer of the cloud backends: every request runs under a per-request timeout,
//! and a throttling answer (429, 503 SlowDown, ServerBusy), a 5xx, a timeout, a connection
//! refused or reset, or a checksum mismatch is sent again after an exponential backoff with full
//! jitter (a random wait up to a bound that doubles each time, or the store's `Retry-After`),
//! for a bounded number of attempts. The SDKs' own retries are turned off so that this layer
//! alone decides.

use crate::cloud::{Class, CloudError};
use crate::CloudOptions;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub request_timeout: Duration,
}

impl RetryPolicy {
    pub fn from_options(opts: &CloudOptions) -> Self {
        RetryPolicy {
            max_attempts: opts.max_attempts.unwrap_or(8).clamp(1, 100),
            base_delay: opts.retry_base_delay.unwrap_or(Duration::from_millis(250)),
            max_delay: opts.retry_max_delay.unwrap_or(Duration::from_secs(20)),
            request_timeout: opts.read_timeout(),
        }
    }

    /// The wait before attempt `next` (2 for the first retry): uniform in [0, bound], where the
    /// bound is `base * 2^(next-2)` capped at `max_delay`; a `Retry-After` is honoured up to
    /// `max_delay`.
    pub fn delay(&self, next: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_delay);
        }
        let exp = next.saturating_sub(2).min(30);
        let bound = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        bound.mul_f64(jitter())
    }
}

/// A number in [0, 1): cheap randomness for backoff jitter (not for anything secret).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
    }
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    (r >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails with a
/// non-transient error, or runs out of attempts. Each attempt gets the per-request timeout.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, CloudError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let mut n = 1;
    loop {
        let result = match tokio::time::timeout(policy.request_timeout, attempt(n)).await {
            Ok(r) => r,
            Err(_) => Err(CloudError::new(
                Class::Timeout,
                format!(
                    "no answer within {:?} (read_timeout)",
                    policy.request_timeout
                ),
            )),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(mut e) => {
                if !e.is_transient() || n >= policy.max_attempts {
                    e.attempts = n;
                    return Err(e);
                }
                let wait = policy.delay(n + 1, e.retry_after);
                tracing::debug!(
                    "{what}: attempt {n} failed ({e}); retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            request_timeout: Duration::from_millis(200),
        }
    }

    #[test]
    fn delays_grow_within_their_bound() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..policy()
        };
        for _ in 0..100 {
            assert!(p.delay(2, None) <= Duration::from_millis(100));
            assert!(p.delay(4, None) <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_secs(1));
        }
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(9))),
            Duration::from_secs(1)
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            seen.insert(p.delay(5, None).as_micros());
        }
        assert!(seen.len() > 10, "no jitter: {seen:?}");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r = retry(&policy(), "test", |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(CloudError::new(Class::Throttled, "slow down").with_status(503))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_and_exhaustion_stop() {
        let r: Result<(), _> = retry(&policy(), "test", |_| async {
            Err(CloudError::new(Class::Auth, "denied"))
        })
        .await;
        assert_eq!(r.unwrap_err().attempts, 1);
        let r: Result<(), _> = retry(&policy(), "test", |_| async {
            Err(CloudError::new(Class::Server, "boom").with_status(500))
        })
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.attempts, 4);
        assert!(e.to_string().contains("after 4 attempts"), "{e}");
    }

    #[tokio::test]
    async fn a_hung_request_times_out_and_is_retried() {
        let r = retry(&policy(), "test", |n| async move {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(n)
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
