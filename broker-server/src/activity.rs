//! What the broker has seen each queued worker do, beyond what the [`WorkerQueue`] needs to
//! order them: how many times it was handed out in all, when the last update about it was
//! applied, and which [`WorkerLoad`] it is in; plus how many hand-outs happened in each of
//! the last [`HISTORY_SECONDS`] seconds. No I/O and no clock: the caller passes the time.
//!
//! The [`BrokerService`](crate::BrokerService) keeps one [`Activity`] next to its queue,
//! under the same lock, and reads it for its status page and its metrics.
//!
//! [`WorkerQueue`]: crate::queue::WorkerQueue

use std::collections::HashMap;

use serde::Serialize;

use crate::queue::{WorkerId, WorkerState};

/// How many seconds of hand-outs per second [`Activity::hand_outs_per_second`] reports.
pub const HISTORY_SECONDS: usize = 300;

/// How busy a queued worker is, from its state in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerLoad {
    /// No load reported and not handed out since the last report.
    Idle,
    /// Some work, and spare capacity left.
    Working,
    /// No spare capacity left (`spare <= 0`): handed out only when every worker is full.
    Full,
}

impl WorkerLoad {
    /// Every state, in the order of [`WorkerCounts`].
    pub const ALL: [WorkerLoad; 3] = [WorkerLoad::Idle, WorkerLoad::Working, WorkerLoad::Full];

    /// The state of a worker in the queue.
    pub fn of(worker: &WorkerState) -> Self {
        if worker.spare <= 0 {
            WorkerLoad::Full
        } else if worker.load == 0 && worker.handed_out == 0 {
            WorkerLoad::Idle
        } else {
            WorkerLoad::Working
        }
    }

    /// The state's name, as in metric labels and on the status page.
    pub fn label(self) -> &'static str {
        match self {
            WorkerLoad::Idle => "idle",
            WorkerLoad::Working => "working",
            WorkerLoad::Full => "full",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many queued workers are in each [`WorkerLoad`], indexed as [`WorkerLoad::ALL`].
pub type WorkerCounts = [u64; 3];

/// A worker's state changed from `from` to `to` (`None`: not queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Its state before; `None` if it was not queued.
    pub from: Option<WorkerLoad>,
    /// Its state after; `None` if it is not queued any more.
    pub to: Option<WorkerLoad>,
}

/// What [`Activity`] knows about one queued worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Times it was handed out since it joined the queue.
    pub handed_out_total: u64,
    /// When the last update about it was applied, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// Its state after the last change.
    pub load: WorkerLoad,
}

/// The activity of the queued workers and the recent hand-out rate. See the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    workers: HashMap<WorkerId, Seen>,
    counts: WorkerCounts,
    handed_out_total: u64,
    rate: HandOutRate,
}

impl Activity {
    /// An update about `worker` was applied at `now_ms`; `worker` is its state afterwards.
    pub fn updated(&mut self, worker: &WorkerState, now_ms: u64) -> Transition {
        let from = self.workers.get(&worker.id).map(|seen| seen.load);
        let to = WorkerLoad::of(worker);
        let seen = self.workers.entry(worker.id.clone()).or_insert(Seen {
            handed_out_total: 0,
            updated_ms: now_ms,
            load: to,
        });
        seen.updated_ms = now_ms;
        seen.load = to;
        self.moved(from, Some(to))
    }

    /// `worker` (its state afterwards) was handed out, `now_s` seconds into the rate's clock
    /// (any monotonic count of seconds).
    pub fn handed_out(&mut self, worker: &WorkerState, now_s: u64) -> Transition {
        self.handed_out_total += 1;
        self.rate.record(now_s);
        let to = WorkerLoad::of(worker);
        let Some(seen) = self.workers.get_mut(&worker.id) else {
            // Queued without an update seen here: cannot happen through the service, which
            // records every update; count it from now on.
            return self.updated(worker, 0);
        };
        let from = seen.load;
        seen.handed_out_total += 1;
        seen.load = to;
        self.moved(Some(from), Some(to))
    }

    /// `worker` left the queue; what was known about it is forgotten.
    pub fn left(&mut self, worker: &WorkerId) -> Transition {
        let from = self.workers.remove(worker).map(|seen| seen.load);
        self.moved(from, None)
    }

    /// What is known about a queued worker.
    pub fn get(&self, worker: &WorkerId) -> Option<&Seen> {
        self.workers.get(worker)
    }

    /// How many queued workers are in each state.
    pub fn counts(&self) -> WorkerCounts {
        self.counts
    }

    /// Hand-outs since this table was made, of every worker, gone ones included.
    pub fn handed_out_total(&self) -> u64 {
        self.handed_out_total
    }

    /// Hand-outs in each of the [`HISTORY_SECONDS`] seconds up to `now_s`, oldest first.
    pub fn hand_outs_per_second(&self, now_s: u64) -> Vec<u64> {
        self.rate.series(now_s)
    }

    fn moved(&mut self, from: Option<WorkerLoad>, to: Option<WorkerLoad>) -> Transition {
        if let Some(from) = from {
            self.counts[from.index()] -= 1;
        }
        if let Some(to) = to {
            self.counts[to.index()] += 1;
        }
        Transition { from, to }
    }
}

/// Hand-outs per second over the last [`HISTORY_SECONDS`] seconds: a ring of counters.
#[derive(Debug, Clone)]
struct HandOutRate {
    /// `buckets[s % HISTORY_SECONDS]` counts the hand-outs of second `s`, for the seconds
    /// up to `latest` and less than [`HISTORY_SECONDS`] before it.
    buckets: Vec<u64>,
    /// The latest second recorded.
    latest: u64,
}

impl Default for HandOutRate {
    fn default() -> Self {
        HandOutRate {
            buckets: vec![0; HISTORY_SECONDS],
            latest: 0,
        }
    }
}

impl HandOutRate {
    const LEN: u64 = HISTORY_SECONDS as u64;

    fn slot(second: u64) -> usize {
        (second % Self::LEN) as usize
    }

    /// Counts one hand-out at second `now`; a `now` before the latest counts at the latest.
    fn record(&mut self, now: u64) {
        if now > self.latest {
            // Clear the seconds skipped since the latest, at most one full turn.
            for second in (self.latest + 1..=now).rev().take(HISTORY_SECONDS) {
                self.buckets[Self::slot(second)] = 0;
            }
            self.latest = now;
        }
        self.buckets[Self::slot(self.latest)] += 1;
    }

    /// The [`HISTORY_SECONDS`] seconds up to `now`, oldest first; seconds before the clock's
    /// start count 0.
    fn series(&self, now: u64) -> Vec<u64> {
        (0..Self::LEN)
            .rev()
            .map(|back| match now.checked_sub(back) {
                Some(second) if second <= self.latest && self.latest - second < Self::LEN => {
                    self.buckets[Self::slot(second)]
                }
                _ => 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, capacity: u32, load: u32, handed_out: u64) -> WorkerState {
        WorkerState {
            id: WorkerId::from(id),
            addr: format!("{id}:1"),
            capacity,
            load,
            handed_out,
            spare: i64::from(capacity) - i64::from(load) - handed_out as i64,
        }
    }

    #[test]
    fn states_follow_spare_capacity_and_work() {
        assert_eq!(WorkerLoad::of(&state("a", 2, 0, 0)), WorkerLoad::Idle);
        assert_eq!(WorkerLoad::of(&state("a", 2, 1, 0)), WorkerLoad::Working);
        assert_eq!(WorkerLoad::of(&state("a", 2, 0, 1)), WorkerLoad::Working);
        assert_eq!(WorkerLoad::of(&state("a", 2, 1, 1)), WorkerLoad::Full);
        assert_eq!(WorkerLoad::of(&state("a", 0, 0, 0)), WorkerLoad::Full);
        let labels: Vec<_> = WorkerLoad::ALL.iter().map(|l| l.label()).collect();
        assert_eq!(labels, ["idle", "working", "full"]);
    }

    #[test]
    fn counts_and_totals_follow_updates_hand_outs_and_leaves() {
        let mut activity = Activity::default();
        let t = activity.updated(&state("a", 2, 0, 0), 1_000);
        assert_eq!(
            t,
            Transition {
                from: None,
                to: Some(WorkerLoad::Idle)
            }
        );
        activity.updated(&state("b", 1, 0, 0), 2_000);
        assert_eq!(activity.counts(), [2, 0, 0]);

        let t = activity.handed_out(&state("a", 2, 0, 1), 10);
        assert_eq!(t.from, Some(WorkerLoad::Idle));
        assert_eq!(t.to, Some(WorkerLoad::Working));
        activity.handed_out(&state("a", 2, 0, 2), 10);
        activity.handed_out(&state("b", 1, 0, 1), 11);
        assert_eq!(activity.counts(), [0, 0, 2]);
        let a = activity.get(&WorkerId::from("a")).copied().unwrap();
        assert_eq!((a.handed_out_total, a.updated_ms), (2, 1_000));

        // A report resets the queue's count since the last report, not the total.
        activity.updated(&state("a", 2, 1, 0), 3_000);
        let a = activity.get(&WorkerId::from("a")).copied().unwrap();
        assert_eq!((a.handed_out_total, a.updated_ms), (2, 3_000));
        assert_eq!(activity.counts(), [0, 1, 1]);

        let t = activity.left(&WorkerId::from("b"));
        assert_eq!(
            t,
            Transition {
                from: Some(WorkerLoad::Full),
                to: None
            }
        );
        assert_eq!(activity.left(&WorkerId::from("b")).from, None);
        assert_eq!(activity.counts(), [0, 1, 0]);
        assert_eq!(
            activity.handed_out_total(),
            3,
            "gone workers' hand-outs stay counted"
        );
    }

    #[test]
    fn the_rate_counts_per_second_and_forgets_old_seconds() {
        let mut activity = Activity::default();
        let a = state("a", 9, 0, 0);
        activity.updated(&a, 0);
        for second in [5, 5, 5, 7] {
            activity.handed_out(&a, second);
        }
        let series = activity.hand_outs_per_second(8);
        assert_eq!(series.len(), HISTORY_SECONDS);
        assert_eq!(
            series[HISTORY_SECONDS - 6..],
            [0, 0, 3, 0, 1, 0][..],
            "seconds 3 to 8"
        );
        // A late record counts at the latest second.
        activity.handed_out(&a, 6);
        assert_eq!(activity.hand_outs_per_second(7)[HISTORY_SECONDS - 1], 2);

        // One full turn after the latest second (7), its bucket is reused.
        let later = 7 + HISTORY_SECONDS as u64;
        activity.handed_out(&a, later);
        let series = activity.hand_outs_per_second(later);
        assert_eq!(series.iter().sum::<u64>(), 1, "{series:?}");
        assert_eq!(series[HISTORY_SECONDS - 1], 1);
        // Long after, nothing is left.
        let series = activity.hand_outs_per_second(later + 10 * HISTORY_SECONDS as u64);
        assert!(series.iter().all(|&n| n == 0));
    }
}
