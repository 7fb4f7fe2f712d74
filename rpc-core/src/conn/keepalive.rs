//! The keepalive task: pings a silent peer and closes the connection when it stays silent
//! (the rules are `io::liveness`'s; this only sleeps and acts).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::lifecycle::Closed;
use super::reader::CloseOnExit;
use super::shared::Shared;
use crate::io::liveness::{Liveness, Step};
use crate::protocol::Message;

/// Runs until the connection closes, or closes it.
pub(crate) async fn keepalive(shared: Arc<Shared>, interval: Duration, timeout: Duration) {
    let _close = CloseOnExit {
        shared: Arc::clone(&shared),
        task: "keepalive",
    };
    let mut liveness = Liveness::new(interval, timeout, Instant::now().into_std());
    let mut nonce = 0;
    loop {
        let until =
            match liveness.step(shared.last_received().into_std(), Instant::now().into_std()) {
                Step::SleepUntil(until) => until,
                Step::Ping { then } => {
                    nonce += 1;
                    shared.send_control(&Message::Ping { nonce }, true);
                    then
                }
                Step::Dead => {
                    shared.close(Closed::Transport(format!(
                        "the peer sent nothing for {:?} or more, not even an answer to a keepalive \
                     ping; it is gone or frozen",
                        liveness.patience()
                    )));
                    return;
                }
            };
        tokio::select! {
            _ = shared.closed() => return,
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}
