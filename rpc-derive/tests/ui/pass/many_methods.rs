//! Everything `#[remote]` accepts, compiled with warnings denied; run by `tests/ui.rs` (as a
//! program) and by `tests/expand.rs` (as a module, so that clippy sees the expansion too).
#![deny(warnings, missing_docs, unreachable_pub, clippy::all)]

use rpc_core::{CallError, RemoteErrorKind, RemoteRef, remote};
use serde::{Deserialize, Serialize};

/// Why an inventory call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryError {
    /// No such item.
    NotFound(String),
}

/// Something that is not `Send`-free: only used as a supertrait.
pub trait Named {
    /// The name.
    fn name(&self) -> String;
}

/// A store of counted items.
#[remote]
pub trait Inventory: Named {
    /// Adds `count` items called `name`; returns the new count.
    async fn remote_add(&self, name: String, count: u32) -> u32;
    /// Looks an item up.
    async fn remote_get(&self, name: String) -> Result<u32, InventoryError>;
    #[allow(missing_docs)] // not copied: the proxy `ping` gets generated docs
    async fn remote_ping(&self);
    /// Eight arguments of assorted types.
    #[allow(clippy::too_many_arguments)]
    async fn remote_many(
        &self,
        a: u8,
        b: i16,
        c: u32,
        d: i64,
        e: String,
        f: Vec<u8>,
        g: Option<bool>,
        h: (u16, i128),
    ) -> usize;
    /// Argument names that the generated code also uses.
    async fn remote_names(
        &self,
        method: String,
        args: Vec<String>,
        this: u8,
        object: u8,
        __arg0: u8,
        __method: u8,
    ) -> String;
    /// A default body.
    async fn remote_version(&self) -> String {
        format!("{}-1.0", self.name())
    }
    /// A default body with a `mut` argument, an unused one and an early return.
    async fn remote_bump(&self, mut a: i64, _unused: String) -> i64 {
        if a < 0 {
            return 0;
        }
        a += 1;
        a
    }
    /// A default body using its argument.
    async fn remote_echo(&self, text: String) -> String {
        text
    }
    /// Compiled out, together with its proxy method and dispatch arm.
    #[cfg(any())]
    async fn remote_gone(&self, x: NoSuchType) -> NoSuchType;
    /// A keyword as proxy name: `InventoryRef::r#type`.
    async fn remote_type(&self) -> String;
    /// Old.
    #[deprecated = "use remote_add"]
    async fn remote_old(&self) -> u8;
    /// References as arguments and results, alone and inside other types.
    async fn remote_link(
        &self,
        other: InventoryRef,
        more: Option<Vec<InventoryRef>>,
        pair: Pair,
    ) -> (Vec<InventoryRef>, Pair);
    /// Not remote: kept as is, never callable by peers.
    fn helper(&self) -> u32 {
        1
    }
    /// Not remote, no default.
    fn local_only(&self) -> String;
}

/// A struct holding a reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    /// A reference.
    pub left: InventoryRef,
    /// A number.
    pub right: u8,
}

/// The implementation.
pub struct Store;

impl Named for Store {
    fn name(&self) -> String {
        "store".into()
    }
}

impl Inventory for Store {
    async fn remote_add(&self, name: String, count: u32) -> u32 {
        name.len() as u32 + count
    }
    async fn remote_get(&self, name: String) -> Result<u32, InventoryError> {
        Err(InventoryError::NotFound(name))
    }
    async fn remote_ping(&self) {}
    async fn remote_many(
        &self,
        a: u8,
        b: i16,
        c: u32,
        d: i64,
        e: String,
        f: Vec<u8>,
        g: Option<bool>,
        h: (u16, i128),
    ) -> usize {
        usize::from(a)
            + b as usize
            + c as usize
            + d as usize
            + e.len()
            + f.len()
            + usize::from(g.unwrap_or(false))
            + usize::from(h.0)
            + h.1 as usize
    }
    async fn remote_names(
        &self,
        method: String,
        args: Vec<String>,
        this: u8,
        object: u8,
        __arg0: u8,
        __method: u8,
    ) -> String {
        format!(
            "{method} {} {this} {object} {__arg0} {__method}",
            args.join(",")
        )
    }
    async fn remote_type(&self) -> String {
        "store".into()
    }
    async fn remote_old(&self) -> u8 {
        9
    }
    async fn remote_link(
        &self,
        other: InventoryRef,
        more: Option<Vec<InventoryRef>>,
        pair: Pair,
    ) -> (Vec<InventoryRef>, Pair) {
        let mut all = vec![other];
        all.extend(more.unwrap_or_default());
        (all, pair)
    }
    fn local_only(&self) -> String {
        "local".into()
    }
}

/// A crate-private trait: its reference is crate-private too.
#[remote]
pub(crate) trait Counter {
    /// Next value.
    async fn remote_next(&self) -> u64;
    /// A crate-private reference in and out.
    async fn remote_pass(&self, other: CounterRef) -> Option<CounterRef>;
}

mod private {
    use rpc_core::remote;

    /// A private trait whose generated items are never used: no dead-code warnings.
    #[remote]
    trait Unused {
        async fn remote_nothing(&self, x: u8) -> u8;
        async fn remote_again(&self, me: UnusedRef) -> Vec<UnusedRef>;
    }

    /// A private trait that is used, with a private reference in and out.
    #[remote]
    trait Secret {
        async fn remote_tell(&self, other: Option<SecretRef>) -> Option<SecretRef>;
    }

    struct Keeper;

    impl Secret for Keeper {
        async fn remote_tell(&self, other: Option<SecretRef>) -> Option<SecretRef> {
            other
        }
    }

    pub(crate) async fn secret() {
        let keeper = SecretRef::new(Keeper);
        let back = keeper.tell(Some(keeper.clone())).await.unwrap().unwrap();
        assert!(rpc_core::RemoteRef::same_object(&back, &keeper));
    }

    /// A trait without remote methods: a reference that can be passed around but not called.
    #[remote]
    pub(crate) trait Handle {}

    impl Handle for () {}

    pub(crate) fn handle() -> HandleRef {
        HandleRef::new(())
    }
}

struct One;

impl Counter for One {
    async fn remote_next(&self) -> u64 {
        1
    }
    async fn remote_pass(&self, other: CounterRef) -> Option<CounterRef> {
        Some(other)
    }
}

/// Calls every proxy method on a local object.
pub(crate) async fn exercise() {
    let store = InventoryRef::new(Store);
    assert_eq!(store.add("bolt".into(), 3).await.unwrap(), 7);
    assert_eq!(
        store.get("nut".into()).await.unwrap(),
        Err(InventoryError::NotFound("nut".into()))
    );
    store.ping().await.unwrap();
    let many = store
        .many(1, 2, 3, 4, "ab".into(), vec![0; 3], Some(true), (5, 6))
        .await
        .unwrap();
    assert_eq!(many, 1 + 2 + 3 + 4 + 2 + 3 + 1 + 5 + 6);
    let names = store
        .names("m".into(), vec!["x".into(), "y".into()], 1, 2, 3, 4)
        .await
        .unwrap();
    assert_eq!(names, "m x,y 1 2 3 4");
    assert_eq!(store.version().await.unwrap(), "store-1.0");
    assert_eq!(store.bump(41, String::new()).await.unwrap(), 42);
    assert_eq!(store.bump(-5, String::new()).await.unwrap(), 0);
    assert_eq!(store.echo("hi".into()).await.unwrap(), "hi");
    assert_eq!(store.r#type().await.unwrap(), "store");
    #[allow(deprecated)]
    let old = store.old().await.unwrap();
    assert_eq!(old, 9);
    assert_eq!(Store.helper(), 1);
    assert_eq!(Store.local_only(), "local");

    // Not remote, so not reachable by name.
    for name in [
        "helper",
        "local_only",
        "remote_add",
        "name",
        "new",
        "gone",
        "",
    ] {
        let err = store
            .object()
            .call_remote::<_, u32>(name, ())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Remote {
                    kind: RemoteErrorKind::NoSuchMethod,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
    }

    let clone = store.clone();
    let same = InventoryRef::from_object(clone.object().clone());
    assert_eq!(same.add(String::new(), 1).await.unwrap(), 1);
    assert_eq!(InventoryRef::INTERFACE, "Inventory");

    let counter = CounterRef::from_arc(std::sync::Arc::new(One));
    assert_eq!(counter.next().await.unwrap(), 1);
    assert_eq!(<CounterRef as RemoteRef>::INTERFACE, "Counter");

    let _handle = private::handle();
    private::secret().await;

    // References in and out, directly and through the encoded in-process path.
    let other = InventoryRef::new(Store);
    let pair = Pair {
        left: store.clone(),
        right: 3,
    };
    let (all, pair) = store
        .link(other.clone(), Some(vec![store.clone()]), pair)
        .await
        .unwrap();
    assert!(all[0].same_object(&other) && all[1].same_object(&store));
    assert!(pair.left.same_object(&store) && pair.right == 3);
    let (all, _): (Vec<InventoryRef>, Pair) = store
        .object()
        .call_remote(
            "link",
            (
                other.clone(),
                None::<Vec<InventoryRef>>,
                Pair {
                    left: other.clone(),
                    right: 0,
                },
            ),
        )
        .await
        .unwrap();
    assert!(all.len() == 1 && all[0].same_object(&other));
    let passed = counter.pass(counter.clone()).await.unwrap().unwrap();
    assert!(passed.same_object(&counter) && passed.is_local() && passed.peer().is_none());
    let timed = store.with_timeout(std::time::Duration::from_secs(60));
    assert_eq!(timed.echo("t".into()).await.unwrap(), "t");
    let timed = RemoteRef::with_timeout(&counter, std::time::Duration::from_secs(60));
    assert_eq!(timed.next().await.unwrap(), 1);
}

#[allow(dead_code)] // only used when this file is compiled as a program by trybuild
pub(crate) fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(exercise());
}
