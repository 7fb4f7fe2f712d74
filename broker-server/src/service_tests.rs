//! Unit tests of [`service`](super), kept out of its file to keep that one short.

use super::*;
use crate::BrokerRef;

fn added(name: &str, seq: u64, capacity: u32) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change: Change::Added {
            addr: format!("{name}:1"),
            capacity,
            load: 0,
        },
    }
}

fn ids(service: &BrokerService) -> Vec<String> {
    service.workers().into_iter().map(|w| w.id.0).collect()
}

#[tokio::test]
async fn local_calls_go_straight_to_the_queue() {
    let service = BrokerService::new();
    let broker = BrokerRef::new(service.clone());
    assert_eq!(broker.next_worker().await.unwrap(), Ok(None));
    assert_eq!(
        broker.publish(added("a", 1, 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    // In process there is no connection: the join is applied but tied to nothing.
    assert_eq!(
        broker.join(added("b", 1, 5)).await.unwrap(),
        Ok(Applied::Added)
    );
    assert!(lock(&service.inner.state).ties.is_empty());
    assert_eq!(ids(&service), ["b", "a"]);
    assert_eq!(service.len(), 2);
    let next = broker.next_worker().await.unwrap().unwrap();
    assert_eq!(next.unwrap().worker.0, "b");
    let page = broker.workers(0, 1).await.unwrap().unwrap();
    assert_eq!(
        (page.workers.len(), page.total, page.total_capacity),
        (1, 2, 6)
    );
}

#[test]
fn a_stale_join_changes_nothing() {
    let service = BrokerService::new();
    assert_eq!(service.join(added("a", 5, 1), None), Applied::Added);
    assert_eq!(service.join(added("a", 5, 9), None), Applied::Stale);
    assert_eq!(service.workers()[0].capacity, 1);
}

#[test]
fn a_full_service_refuses_publish_and_join() {
    let service = BrokerService::with_limit(1);
    assert_eq!(service.limit(), 1);
    assert_eq!(service.publish(added("a", 1, 1)), Applied::Added);
    assert_eq!(service.publish(added("b", 1, 1)), Applied::Full);
    assert_eq!(service.join(added("b", 1, 1), None), Applied::Full);
    assert_eq!(ids(&service), ["a"]);
    assert!(lock(&service.inner.state).ties.is_empty());
    assert_eq!(BrokerService::new().limit(), crate::queue::DEFAULT_MAX_IDS);
}

#[test]
fn removal_by_update_unties() {
    let service = BrokerService::new();
    {
        let mut state = lock(&service.inner.state);
        state.queue.update(added("a", 1, 1));
        state.ties.insert(
            WorkerId::from("a"),
            Tie {
                token: 7,
                hook: None,
            },
        );
    }
    let removed = WorkerUpdate {
        worker: WorkerId::from("a"),
        seq: 2,
        change: Change::Removed,
    };
    assert_eq!(
        service.publish(removed),
        Applied::Removed { was_queued: true }
    );
    assert!(lock(&service.inner.state).ties.is_empty());
    // Added back by the scheduler: the old connection's drop leaves it alone.
    service.publish(added("a", 3, 1));
    let mut events = service.subscribe();
    disconnected(
        &Arc::downgrade(&service.inner),
        &WorkerId::from("a"),
        7,
        "gone",
    );
    assert_eq!(ids(&service), ["a"]);
    assert_eq!(
        events.try_recv().unwrap(),
        WorkerEvent::DisconnectIgnored {
            worker: WorkerId::from("a")
        }
    );
}

#[test]
fn the_current_token_removes() {
    let service = BrokerService::new();
    {
        let mut state = lock(&service.inner.state);
        state.queue.update(added("a", 1, 1));
        state.ties.insert(
            WorkerId::from("a"),
            Tie {
                token: 3,
                hook: None,
            },
        );
    }
    let inner = Arc::downgrade(&service.inner);
    disconnected(&inner, &WorkerId::from("a"), 2, "an older connection");
    assert_eq!(ids(&service), ["a"]);
    disconnected(&inner, &WorkerId::from("a"), 3, "its connection");
    assert!(service.is_empty());
    assert!(lock(&service.inner.state).ties.is_empty());
    // The service being gone is fine too.
    drop(service);
    disconnected(&inner, &WorkerId::from("a"), 3, "late");
}
