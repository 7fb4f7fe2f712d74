//! Application errors travel as `Result<V, E>` answers: the caller gets
//! `Result<Result<V, E>, CallError>`, takes it with `.await??`, or with `flatten()` as one
//! `Result<V, E>` when `E` converts from `CallError`.

mod common;

use std::time::Duration;

use common::within;
use rpc_core::{CallError, Client, Server, TimeoutKind, remote};
use serde::{Deserialize, Serialize};

/// The bank's own errors, plus one for a call that did not get through: that one is made
/// on the caller's side only and never travels.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum BankError {
    /// Less than asked for is left.
    #[error("only {0} left")]
    Insufficient(u64),
    /// The call did not get through.
    #[serde(skip)]
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A bank holding 100.
#[remote]
pub trait Bank {
    /// Takes `amount`; answers what is left.
    async fn remote_withdraw(&self, amount: u64) -> Result<u64, BankError>;
    /// Never answers.
    async fn remote_hang(&self) -> Result<u64, BankError>;
}

struct Vault;

impl Bank for Vault {
    async fn remote_withdraw(&self, amount: u64) -> Result<u64, BankError> {
        100u64
            .checked_sub(amount)
            .ok_or(BankError::Insufficient(100))
    }

    async fn remote_hang(&self) -> Result<u64, BankError> {
        std::future::pending().await
    }
}

/// An application error that is neither `CallError` nor `BankError`: `.await??` needs both
/// to convert into it.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Call(#[from] CallError),
}

async fn withdraw_twice(bank: &BankRef, amount: u64) -> Result<u64, AppError> {
    bank.withdraw(amount).await??;
    Ok(bank.withdraw(amount).await??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_results_flatten_into_the_application_error() {
    let server = Server::bind("127.0.0.1:0", BankRef::new(Vault))
        .await
        .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());
    let client = within("connect", Client::connect(addr)).await.unwrap();
    let bank: BankRef = client.root().await.unwrap();

    // Two layers, two `?`.
    assert_eq!(withdraw_twice(&bank, 30).await.unwrap(), 70);
    assert!(matches!(
        withdraw_twice(&bank, 130).await,
        Err(AppError::Bank(BankError::Insufficient(100)))
    ));

    // One layer: the answer, the application's error, the call's error.
    assert_eq!(bank.withdraw(40).flatten().await.unwrap(), 60);
    let spawned = tokio::spawn(bank.withdraw(2).flatten()); // Send + 'static, like the call
    assert_eq!(spawned.await.unwrap().unwrap(), 98);
    let refused = bank.withdraw(101).flatten().await;
    assert!(matches!(refused, Err(BankError::Insufficient(100))));
    let quick = bank.with_timeout(Duration::from_millis(50));
    match within("a call past its deadline", quick.hang().flatten()).await {
        Err(BankError::Call(e)) => assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call)),
        other => panic!("expected the call's timeout, got {other:?}"),
    }
    // A local object flattens the same way.
    let local = BankRef::new(Vault);
    assert_eq!(local.withdraw(1).flatten().await.unwrap(), 99);

    client.close();
    match bank.withdraw(1).flatten().await {
        Err(BankError::Call(e)) => assert!(e.is_disconnected(), "{e}"),
        other => panic!("expected a disconnect, got {other:?}"),
    }
    serving.abort();
}
