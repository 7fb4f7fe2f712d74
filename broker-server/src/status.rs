//! A snapshot of the broker for people: every queued worker in queue order with what the
//! queue and the [activity table](crate::activity) know about it, and the recent hand-out
//! rate. [`BrokerService::status`] reads it at one instant; the status page polls it as
//! JSON (`/status.json`, served by the HTTP side).

use rpc_core::SturdyUrl;
use serde::Serialize;

use crate::activity::WorkerLoad;
use crate::queue::WorkerId;
use crate::service::{BrokerService, unix_ms};

/// The broker at one instant. Serialized as the status page reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The queued workers, in queue order: the next one handed out first.
    pub workers: Vec<WorkerStatus>,
    /// Hand-outs since the service started, of every worker, gone ones included.
    pub handed_out_total: u64,
    /// Hand-outs in each of the last [`HISTORY_SECONDS`](crate::activity::HISTORY_SECONDS)
    /// seconds, oldest first.
    pub hand_outs_per_second: Vec<u64>,
    /// When this was read, in milliseconds since the Unix epoch (the broker's clock, to
    /// compare `updated_ms` with).
    pub now_ms: u64,
}

/// One queued worker, as [`Status`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// The worker's id.
    pub id: WorkerId,
    /// Where front ends reach it, `host:port`. Never its URL's secret: the page has no
    /// login, and the secret lets anyone who reads it call the worker.
    pub addr: String,
    /// The SHA-256 fingerprint of its TLS certificate, when it joined with a `pbrs://` URL.
    pub fingerprint: Option<String>,
    /// Its capacity, as last reported.
    pub capacity: u32,
    /// Its load, as last reported.
    pub load: u32,
    /// `capacity - load - handed out since the last report`; negative when overloaded.
    pub spare: i64,
    /// Times handed out since the last report on it.
    pub handed_out: u64,
    /// Times handed out since it joined.
    pub handed_out_total: u64,
    /// When the last update about it was applied, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// How busy it is.
    pub state: WorkerLoad,
}

impl BrokerService {
    /// The queued workers with their activity, and the recent hand-out rate, read at one
    /// instant. O(n) in the queued workers.
    pub fn status(&self) -> Status {
        self.read(|queue, activity, now_s| Status {
            workers: queue
                .list()
                .into_iter()
                .map(|worker| {
                    let seen = activity.get(&worker.id);
                    WorkerStatus {
                        handed_out_total: seen.map_or(0, |seen| seen.handed_out_total),
                        updated_ms: seen.map_or(0, |seen| seen.updated_ms),
                        state: WorkerLoad::of(&worker),
                        id: worker.id,
                        addr: shown_addr(&worker.addr),
                        fingerprint: worker
                            .addr
                            .parse::<SturdyUrl>()
                            .ok()
                            .map(|url| url.fingerprint().to_string()),
                        capacity: worker.capacity,
                        load: worker.load,
                        spare: worker.spare,
                        handed_out: worker.handed_out,
                    }
                })
                .collect(),
            handed_out_total: activity.handed_out_total(),
            hand_outs_per_second: activity.hand_outs_per_second(now_s),
            now_ms: unix_ms(),
        })
    }
}

/// A worker's address for the page: a sturdy URL's `host:port`, anything else with whatever
/// could be a secret left out.
fn shown_addr(addr: &str) -> String {
    match addr.parse::<SturdyUrl>() {
        Ok(url) => url.addr().to_owned(),
        Err(_) => SturdyUrl::redact(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::HISTORY_SECONDS;
    use crate::queue::{Change, WorkerUpdate};

    fn update(id: &str, seq: u64, change: Change) -> WorkerUpdate {
        WorkerUpdate {
            worker: WorkerId::from(id),
            seq,
            change,
        }
    }

    fn added(id: &str, seq: u64, capacity: u32) -> WorkerUpdate {
        let addr = format!("{id}.local:1");
        update(
            id,
            seq,
            Change::Added {
                addr,
                capacity,
                load: 0,
            },
        )
    }

    #[test]
    fn status_counts_hand_outs_and_stamps_updates_per_worker() {
        let service = BrokerService::new();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        service.publish(added("a", 1, 3));
        service.join(added("b", 1, 1), None);
        for _ in 0..3 {
            service.next_worker();
        }
        let status = service.status();
        let shown: Vec<_> = status
            .workers
            .iter()
            .map(|w| {
                (
                    w.id.as_str(),
                    w.handed_out,
                    w.handed_out_total,
                    w.spare,
                    w.state,
                )
            })
            .collect();
        // a (3 spare) goes twice, then a and b tie at 1 spare and b, never handed out, goes.
        assert_eq!(
            shown,
            [
                ("a", 2, 2, 1, WorkerLoad::Working),
                ("b", 1, 1, 0, WorkerLoad::Full),
            ]
        );
        assert!(status.workers.iter().all(|w| w.updated_ms >= before));
        assert!(status.workers.iter().all(|w| w.updated_ms <= status.now_ms));
        assert_eq!(status.handed_out_total, 3);
        assert_eq!(status.hand_outs_per_second.len(), HISTORY_SECONDS);
        assert_eq!(status.hand_outs_per_second.iter().sum::<u64>(), 3);

        // A report resets the count since the last report, not the total.
        service.publish(update(
            "a",
            2,
            Change::Load {
                capacity: 3,
                load: 0,
            },
        ));
        let a = &service.status().workers[0];
        assert_eq!(
            (a.handed_out, a.handed_out_total, a.state),
            (0, 2, WorkerLoad::Idle)
        );

        // A removed worker is gone from the status; its hand-outs stay in the total.
        service.publish(update("a", 3, Change::Removed));
        let status = service.status();
        assert_eq!(status.workers.len(), 1);
        assert_eq!(status.handed_out_total, 3);
    }

    /// The page has no login: a worker's URL shows as its address and fingerprint, never
    /// with the secret that lets anyone call it.
    #[test]
    fn a_workers_secret_never_shows() {
        let fingerprint = "ab".repeat(32);
        let secret = "5e".repeat(32);
        let url = format!("pbrs://{fingerprint}@10.0.0.7:8901/{secret}");
        let service = BrokerService::new();
        let joined = update(
            "w",
            1,
            Change::Added {
                addr: url,
                capacity: 2,
                load: 0,
            },
        );
        service.join(joined, None);
        let status = service.status();
        let w = &status.workers[0];
        assert_eq!(w.addr, "10.0.0.7:8901");
        assert_eq!(w.fingerprint.as_deref(), Some(fingerprint.as_str()));
        let json = serde_json::to_string(&status).unwrap();
        assert!(!json.contains(&secret), "{json}");
        assert_eq!(shown_addr("host:1"), "host:1");
        for malformed in [
            format!("pbrs://x@h:1/{secret}"),
            format!("pbrs://x@h:1/{secret}/"),
            format!("pbrs://x@h:1/{secret}/x"),
        ] {
            assert!(!shown_addr(&malformed).contains(&secret), "{malformed}");
        }
    }
}
