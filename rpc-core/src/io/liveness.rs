//! [`Liveness`]: the keepalive's clock, apart from any timer or socket.
//!
//! After `interval` with no frame from the peer, ping it; if nothing at all arrives within
//! `timeout` after that, the peer is gone (a frozen process, a half-open TCP connection).
//! The connection's keepalive task asks [`Liveness::step`] what to do at a given instant
//! and sleeps until the instant it names; time is passed in, so the rules are tested here
//! without waiting.

use std::time::{Duration, Instant};

/// What the keepalive task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to do before this instant.
    SleepUntil(Instant),
    /// Send a ping now, then come back at the instant given.
    Ping { then: Instant },
    /// The peer has been silent for `interval + timeout` at least (its ping unanswered for
    /// `timeout`): close the connection.
    Dead,
}

/// The keepalive's state: when a frame last arrived, and when a ping went out since.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    interval: Duration,
    timeout: Duration,
    /// The last arrival the keepalive knows of, and when it has pinged since, if it has.
    seen: Instant,
    pinged: Option<Instant>,
}

impl Liveness {
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Liveness {
            interval,
            timeout,
            seen: now,
            pinged: None,
        }
    }

    /// What to do at `now`, given that the last frame from the peer arrived at `last_heard`.
    /// A ping gives the peer `timeout` to answer, counted from the ping: a keepalive that
    /// comes late (its task starved, or the arrival it was told of was noted late) does not
    /// cut the peer short.
    pub(crate) fn step(&mut self, last_heard: Instant, now: Instant) -> Step {
        if last_heard > self.seen {
            self.seen = last_heard;
            self.pinged = None;
        }
        let ping_at = self.seen + self.interval;
        if now < ping_at {
            return Step::SleepUntil(ping_at);
        }
        let Some(pinged) = self.pinged else {
            self.pinged = Some(now);
            return Step::Ping {
                then: now + self.timeout,
            };
        };
        let dead_at = pinged + self.timeout;
        if now < dead_at {
            Step::SleepUntil(dead_at)
        } else {
            Step::Dead
        }
    }

    /// How long the peer may stay silent in all.
    pub(crate) fn patience(&self) -> Duration {
        self.interval + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_the_interval_then_gives_up_after_the_timeout() {
        let t0 = Instant::now();
        let mut live = Liveness::new(30 * S, 20 * S, t0);
        assert_eq!(live.step(t0, t0), Step::SleepUntil(t0 + 30 * S));
        assert_eq!(live.step(t0, t0 + 30 * S), Step::Ping { then: t0 + 50 * S });
        assert_eq!(live.step(t0, t0 + 40 * S), Step::SleepUntil(t0 + 50 * S));
        assert_eq!(live.step(t0, t0 + 50 * S), Step::Dead);
        assert_eq!(live.patience(), 50 * S);
    }

    #[test]
    fn any_frame_restarts_the_clock_and_takes_back_the_ping() {
        let t0 = Instant::now();
        let mut live = Liveness::new(30 * S, 20 * S, t0);
        assert!(matches!(live.step(t0, t0 + 30 * S), Step::Ping { .. }));
        // The pong (or anything) arrives at 35 s.
        let heard = t0 + 35 * S;
        assert_eq!(
            live.step(heard, t0 + 50 * S),
            Step::SleepUntil(heard + 30 * S)
        );
        assert!(matches!(
            live.step(heard, heard + 30 * S),
            Step::Ping { .. }
        ));
    }

    #[test]
    fn a_late_ping_still_gives_the_peer_its_whole_timeout() {
        let t0 = Instant::now();
        let mut live = Liveness::new(30 * S, 20 * S, t0);
        // The keepalive comes back only at 60 s, past the silence it allows in all.
        let late = t0 + 60 * S;
        assert_eq!(
            live.step(t0, late),
            Step::Ping {
                then: late + 20 * S
            }
        );
        assert_eq!(
            live.step(t0, late + 19 * S),
            Step::SleepUntil(late + 20 * S)
        );
        assert_eq!(live.step(t0, late + 20 * S), Step::Dead);
    }

    #[test]
    fn a_busy_peer_is_never_pinged() {
        let t0 = Instant::now();
        let mut live = Liveness::new(30 * S, 20 * S, t0);
        for i in 1..100u32 {
            let heard = t0 + 10 * S * i;
            assert_eq!(live.step(heard, heard), Step::SleepUntil(heard + 30 * S));
        }
    }
}
