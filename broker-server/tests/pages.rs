//! [`BrokerService::workers_page`]: pages of at most [`MAX_PAGE`] workers with totals over all
//! of them, and the largest page encoded as rpc-core encodes it stays far below the frame
//! limit.

use broker_server::queue::{Change, MAX_ADDR_LEN, MAX_ID_LEN, WorkerId, WorkerUpdate};
use broker_server::{BrokerService, MAX_PAGE, WorkersPage};

fn added(id: String, addr: String, capacity: u32) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId(id),
        seq: u64::MAX,
        change: Change::Added {
            addr,
            capacity,
            load: u32::MAX,
        },
    }
}

#[test]
fn pages_hold_at_most_max_page_workers_and_totals_over_all() {
    let service = BrokerService::new();
    let count = MAX_PAGE as usize + 44;
    for i in 0..count {
        service.publish(added(format!("w{i:04}"), format!("h{i}:1"), 3));
    }
    let first = service.workers_page(0, u32::MAX);
    assert_eq!(first.workers.len(), MAX_PAGE as usize);
    assert_eq!(first.total, count as u64);
    assert_eq!(first.total_capacity, 3 * count as u64);
    assert!(!first.is_last());
    let second = service.workers_page(u64::from(MAX_PAGE), u32::MAX);
    assert_eq!(second.workers.len(), 44);
    assert!(second.is_last());
    let mut all = first.workers;
    all.extend(second.workers);
    assert_eq!(all, service.workers());
    let small = service.workers_page(10, 2);
    assert_eq!(small.workers, service.workers()[10..12]);
    let past = service.workers_page(u64::MAX, 5);
    assert!(past.workers.is_empty() && past.is_last());
}

#[test]
fn the_largest_page_is_far_below_the_frame_limit() {
    let service = BrokerService::new();
    for i in 0..MAX_PAGE {
        let id = format!("{i:04}{}", "i".repeat(MAX_ID_LEN - 4));
        let addr = format!("{i:04}{}", "a".repeat(MAX_ADDR_LEN - 4));
        assert_eq!(id.len(), MAX_ID_LEN);
        assert_eq!(addr.len(), MAX_ADDR_LEN);
        service.publish(added(id, addr, u32::MAX));
    }
    // Hand every worker out a few times so that `handed_out` is not a one-byte varint.
    for _ in 0..3 * MAX_PAGE {
        service.next_worker();
    }
    let page: WorkersPage = service.workers_page(u64::MAX - 1, u32::MAX);
    assert!(page.workers.is_empty());
    let page = WorkersPage {
        start: u64::MAX,
        total: u64::MAX,
        total_capacity: u64::MAX,
        ..service.workers_page(0, u32::MAX)
    };
    assert_eq!(page.workers.len(), MAX_PAGE as usize);
    // The answer's value as rpc-core encodes it: bincode 2 with serde, standard config.
    let answer: Result<WorkersPage, broker_server::Forbidden> = Ok(page);
    let bytes = bincode::serde::encode_to_vec(&answer, bincode::config::standard()).unwrap();
    assert!(
        bytes.len() < 1024 * 1024,
        "the largest page takes {} bytes",
        bytes.len()
    );
}
