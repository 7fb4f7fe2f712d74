//! The generated code at run time, on local objects (no network).

use rpc_core::{CallError, RemoteErrorKind, RemoteRef, remote};

#[path = "ui/pass/many_methods.rs"]
pub mod many_methods;

/// A calculator.
#[remote]
pub trait Calculator {
    /// Adds two numbers; returns the sum and this worker's id.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
    /// Does nothing.
    async fn remote_ping(&self);
    /// Not remote.
    fn helper(&self) -> u32 {
        1
    }
}

struct Worker(u32);

impl Calculator for Worker {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, self.0)
    }

    async fn remote_ping(&self) {}
}

#[tokio::test]
async fn calls_a_local_object_through_its_ref() {
    let calc = CalculatorRef::new(Worker(7));
    assert_eq!(calc.calculate(1, 2).await.unwrap(), (3, 7));
    calc.ping().await.unwrap();
    assert_eq!(CalculatorRef::INTERFACE, "Calculator");
    assert_eq!(Worker(7).helper(), 1);
}

#[tokio::test]
async fn non_remote_methods_cannot_be_called() {
    let calc = CalculatorRef::new(Worker(7));
    for name in ["helper", "remote_calculate", "remote_ping", "new", "object"] {
        let result = calc.object().call_remote::<_, u32>(name, ()).await;
        assert!(
            matches!(
                result,
                Err(CallError::Remote {
                    kind: RemoteErrorKind::NoSuchMethod,
                    ..
                })
            ),
            "{name}: {result:?}"
        );
    }
}

#[tokio::test]
async fn wrong_arguments_are_a_remote_error_not_a_panic() {
    let calc = CalculatorRef::new(Worker(7));
    let result = calc
        .object()
        .call_remote::<_, (i64, u32)>("calculate", ("one", 2))
        .await;
    assert!(
        matches!(
            result,
            Err(CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn every_accepted_form_works() {
    many_methods::exercise().await;
}
