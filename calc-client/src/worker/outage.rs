//! What a worker's broker link says when it cannot reach the broker: once, then only when
//! the reason changes or, as a reminder, every [`REMIND_EVERY`]; not one warning per retry.
//!
//! A worker started before its broker (or with the broker's address wrong) retries every
//! [`MAX_RETRY`](super::link::MAX_RETRY) at the slowest, for as long as it runs. Saying so at each attempt
//! buries everything else in the log; saying nothing leaves the operator guessing. So:
//!
//! - never linked yet: "could not reach the broker at ADDR: WHY; retrying every 2s
//!   (the worker serves meanwhile)", once;
//! - a link that existed is lost: "broker link lost: WHY; reconnecting", once: "lost" only
//!   after there was a link;
//! - the same reason again: nothing, except a reminder with the number of attempts every
//!   [`REMIND_EVERY`]; a different reason: said at once.
//!
//! `Outage` is a plain state machine, given the time, so that it is tested without waiting.

use std::time::{Duration, Instant};

/// How often a failure that goes on for the same reason is said again.
pub const REMIND_EVERY: Duration = Duration::from_secs(600);

/// What the link has said about the current failure to reach the broker.
#[derive(Debug, Default)]
pub(super) struct Outage {
    /// The reason last said, and when.
    said: Option<(String, Instant)>,
    /// Failed attempts since the link last worked (or since the start).
    attempts: u64,
}

impl Outage {
    /// A session with the broker failed for the reason `why` at `now`; `had_link`: it had
    /// joined before failing. Returns the line to log, if this failure is worth one. `broker`
    /// is the broker's address and `retry` the longest wait between attempts, for the text.
    pub(super) fn failed(
        &mut self,
        broker: &str,
        why: &str,
        had_link: bool,
        retry: Duration,
        now: Instant,
    ) -> Option<String> {
        if had_link {
            self.attempts = 1;
            self.said = Some((why.to_owned(), now));
            return Some(format!("broker link lost: {why}; reconnecting"));
        }
        self.attempts += 1;
        match &self.said {
            Some((said, at)) if said == why => {
                if now.saturating_duration_since(*at) < REMIND_EVERY {
                    return None;
                }
                let line = format!(
                    "still cannot reach the broker at {broker} ({} attempts): {why}; retrying \
                     every {retry:?}",
                    self.attempts
                );
                self.said = Some((why.to_owned(), now));
                Some(line)
            }
            _ => {
                self.said = Some((why.to_owned(), now));
                Some(format!(
                    "could not reach the broker at {broker}: {why}; retrying every {retry:?} \
                     (the worker serves meanwhile; this is logged again if the reason changes)"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_secs(2);

    #[test]
    fn a_broker_never_reached_is_said_once_then_on_change_or_as_a_reminder() {
        let mut outage = Outage::default();
        let start = Instant::now();
        let mut failed = |why: &str, after: Duration| {
            outage.failed("127.0.0.1:8990", why, false, RETRY, start + after)
        };
        let refused = "connection refused (os error 111)";
        assert_eq!(
            failed(refused, Duration::ZERO).as_deref(),
            Some(
                "could not reach the broker at 127.0.0.1:8990: connection refused (os error \
                 111); retrying every 2s (the worker serves meanwhile; this is logged again if \
                 the reason changes)"
            )
        );
        for s in 1..300 {
            assert_eq!(failed(refused, RETRY * s), None, "attempt {s}");
        }
        let reminder = failed(refused, REMIND_EVERY).unwrap();
        assert_eq!(
            reminder,
            "still cannot reach the broker at 127.0.0.1:8990 (301 attempts): connection \
             refused (os error 111); retrying every 2s"
        );
        assert_eq!(failed(refused, REMIND_EVERY + RETRY), None);
        let other = failed("no answer within 3s", REMIND_EVERY + RETRY * 2).unwrap();
        assert!(
            other.starts_with("could not reach the broker at"),
            "{other}"
        );
        assert!(!other.contains("lost"), "{other}");
    }

    #[test]
    fn lost_is_said_only_after_a_link() {
        let mut outage = Outage::default();
        let now = Instant::now();
        let first = outage
            .failed("b:1", "connection refused", false, RETRY, now)
            .unwrap();
        assert!(!first.contains("lost"), "{first}");
        let lost = outage.failed("b:1", "the peer closed the connection", true, RETRY, now);
        assert_eq!(
            lost.as_deref(),
            Some("broker link lost: the peer closed the connection; reconnecting")
        );
        // The reconnection attempts that follow fail for a reason of their own: said once.
        let again = outage.failed("b:1", "connection refused", false, RETRY, now);
        assert!(
            again
                .unwrap()
                .starts_with("could not reach the broker at b:1")
        );
        assert_eq!(
            outage.failed("b:1", "connection refused", false, RETRY, now),
            None
        );
    }
}
