//! Login (PB's cred): a per-user avatar behind a password, a mind to call back, logout once,
//! failed logins counted per connection, no password over plaintext between hosts, and
//! nothing reachable before login.

mod common;

use std::net::SocketAddr;

use common::*;
use rpc_core::login::{Credentials, LoginRef, Passwords, Portal, Realm};
use rpc_core::protocol::{LOOKUP_OBJECT, Message};
use rpc_core::{CallError, Caller, Client, LoginError, ObjectRef, Peer, Server, remote};
use tokio::sync::mpsc;

/// What a logged-in user may do.
#[remote]
pub trait Account {
    /// Who the handler sees calling.
    async fn remote_whoami(&self) -> String;
    /// Calls the mind back with `text`; answers what it said.
    async fn remote_call_mind(&self, text: String) -> Option<String>;
}

/// The client's object the avatar may call back.
#[remote]
pub trait Mind {
    /// Answers `text` shouted.
    async fn remote_shout(&self, text: String) -> String;
}

struct Shouter;

impl Mind for Shouter {
    async fn remote_shout(&self, text: String) -> String {
        text.to_uppercase()
    }
}

struct AccountOf {
    mind: Option<MindRef>,
}

impl Account for AccountOf {
    async fn remote_whoami(&self) -> String {
        match Peer::current().map(|p| p.caller()) {
            Some(Caller::User(name)) => format!("user {name}"),
            Some(Caller::Anonymous) => "anonymous".into(),
            other => format!("{other:?}"),
        }
    }

    async fn remote_call_mind(&self, text: String) -> Option<String> {
        self.mind.as_ref()?.shout(text).await.ok()
    }
}

/// A realm that records logouts.
struct Accounts {
    logouts: mpsc::UnboundedSender<Caller>,
}

impl Realm for Accounts {
    type Avatar = AccountRef;

    async fn avatar(&self, caller: &Caller, mind: Option<ObjectRef>) -> Result<AccountRef, String> {
        if *caller == Caller::User("mallory".into()) {
            return Err("mallory is banned".into());
        }
        let mind = mind.map(<MindRef as rpc_core::RemoteRef>::from_object);
        Ok(AccountRef::new(AccountOf { mind }))
    }

    fn logout(&self, caller: &Caller) {
        let _ = self.logouts.send(caller.clone());
    }
}

struct Setup {
    addr: SocketAddr,
    logouts: mpsc::UnboundedReceiver<Caller>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listen: &str, shape: impl FnOnce(Portal<Accounts>) -> Portal<Accounts>) -> Setup {
    let passwords = Passwords::new();
    passwords.add("ann", "correct horse").unwrap();
    passwords.add("mallory", "hunter2").unwrap();
    let (tx, logouts) = mpsc::unbounded_channel();
    let portal = shape(Portal::new(Accounts { logouts: tx }, passwords));
    let server = Server::bind(listen, LoginRef::new(portal)).await.unwrap();
    let addr = server.local_addr();
    Setup {
        addr,
        logouts,
        task: tokio::spawn(server.run()),
    }
}

async fn login_object(addr: SocketAddr) -> (Client, LoginRef) {
    let client = within("connect", Client::connect(addr)).await.unwrap();
    let login = client.root().await.unwrap();
    (client, login)
}

fn ann() -> Credentials {
    Credentials::new("ann", "correct horse")
}

#[track_caller]
fn assert_login_error<T: std::fmt::Debug>(result: Result<T, CallError>, expected: LoginError) {
    match result {
        Err(CallError::Login(e)) if e == expected => {}
        other => panic!("expected login error {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_right_password_gives_the_users_avatar_and_the_mind_is_called_back() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    let (_client, login) = login_object(setup.addr).await;
    let mind = MindRef::new(Shouter);
    let account: AccountRef = within(
        "login",
        login.log_in(&ann(), Some(rpc_core::RemoteRef::object(&mind).clone())),
    )
    .await
    .unwrap();
    assert_eq!(account.whoami().await.unwrap(), "user ann");
    assert_eq!(
        account.call_mind("hi".into()).await.unwrap().as_deref(),
        Some("HI")
    );
    // One connection, one login.
    assert_login_error(
        login.log_in::<AccountRef>(&ann(), None).await,
        LoginError::AlreadyLoggedIn,
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer_and_three_failures_close() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    let (client, login) = login_object(setup.addr).await;
    let wrong = Credentials::new("ann", "Correct horse");
    let nobody = Credentials::new("nobody", "correct horse");
    assert_login_error(
        login.log_in::<AccountRef>(&wrong, None).await,
        LoginError::Refused,
    );
    assert_login_error(
        login.log_in::<AccountRef>(&nobody, None).await,
        LoginError::Refused,
    );
    assert_login_error(
        login.log_in::<AccountRef>(&wrong, None).await,
        LoginError::TooManyAttempts,
    );
    within("the connection to close", client.disconnected()).await;
    // The server goes on: a new connection logs in.
    let (_client, login) = login_object(setup.addr).await;
    let account: AccountRef = login.log_in(&ann(), None).await.unwrap();
    assert_eq!(account.whoami().await.unwrap(), "user ann");
}

#[tokio::test]
async fn the_realm_may_refuse_a_user() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    let (_client, login) = login_object(setup.addr).await;
    let mallory = Credentials::new("mallory", "hunter2");
    assert_login_error(
        login.log_in::<AccountRef>(&mallory, None).await,
        LoginError::Denied("mallory is banned".into()),
    );
}

#[tokio::test]
async fn logout_runs_once_when_the_last_reference_drops() {
    let mut setup = serve("127.0.0.1:0", |p| p).await;
    let (client, login) = login_object(setup.addr).await;
    let account: AccountRef = login.log_in(&ann(), None).await.unwrap();
    let copy = account.clone();
    drop(account);
    assert_eq!(copy.whoami().await.unwrap(), "user ann");
    drop(copy);
    let gone = within("the logout", setup.logouts.recv()).await;
    assert_eq!(gone, Some(Caller::User("ann".into())));
    // Closing the connection afterwards runs nothing more.
    client.close();
    within("the connection to close", client.disconnected()).await;
    assert!(setup.logouts.try_recv().is_err());
}

#[tokio::test]
async fn logout_runs_once_when_the_connection_closes() {
    let mut setup = serve("127.0.0.1:0", |p| p).await;
    let (client, login) = login_object(setup.addr).await;
    let account: AccountRef = login.log_in(&ann(), None).await.unwrap();
    client.close();
    let gone = within("the logout", setup.logouts.recv()).await;
    assert_eq!(gone, Some(Caller::User("ann".into())));
    drop(account);
    drop(login);
    // The server side is done with the connection: nothing else will log out.
    let (_c2, login) = login_object(setup.addr).await;
    let again: AccountRef = login.log_in(&ann(), None).await.unwrap();
    drop(again);
    assert_eq!(
        within("the second logout", setup.logouts.recv()).await,
        Some(Caller::User("ann".into()))
    );
    assert!(setup.logouts.try_recv().is_err());
}

#[tokio::test]
async fn anonymous_logins_only_when_allowed() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    let (_client, login) = login_object(setup.addr).await;
    assert_login_error(
        login.log_in_anonymously::<AccountRef>(None).await,
        LoginError::AnonymousNotAllowed,
    );
    let open = serve("127.0.0.1:0", |p| p.allow_anonymous()).await;
    let (_client, login) = login_object(open.addr).await;
    let account: AccountRef = login.log_in_anonymously(None).await.unwrap();
    assert_eq!(account.whoami().await.unwrap(), "anonymous");
}

/// Nothing but the login object (id 0) answers before login, whatever id is guessed.
#[tokio::test]
async fn before_login_no_object_is_reachable_by_a_guessed_id() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    // Someone else logged in on another connection: their avatar is not reachable from here.
    let (_other, login) = login_object(setup.addr).await;
    let _account: AccountRef = login.log_in(&ann(), None).await.unwrap();
    let mut raw = RawPeer::handshaken(setup.addr).await;
    for (request, object) in [1u64, 2, 3, 4, 5, 100, LOOKUP_OBJECT]
        .into_iter()
        .enumerate()
    {
        let (message, _) = raw.call(request as u64 + 1, object, "whoami", ()).await;
        match message {
            Message::Error { error, .. } => {
                assert_eq!(
                    error.kind,
                    rpc_core::RemoteErrorKind::NoSuchObject,
                    "object {object}"
                );
            }
            other => panic!("object {object} answered {other:?}"),
        }
    }
}

/// The first address of this host that is not loopback, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn no_password_crosses_a_network_in_plaintext_unless_both_sides_opt_in() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("SKIPPED: this host has no non-loopback address to test a network connection");
        return;
    };
    let strict = serve(&format!("{ip}:0"), |p| p).await;
    let (_client, login) = login_object(strict.addr).await;
    // The client does not send it...
    assert_login_error(
        login.log_in::<AccountRef>(&ann(), None).await,
        LoginError::NeedsEncryption,
    );
    // ...and the server does not check it even if the client insists.
    assert_login_error(
        login
            .log_in::<AccountRef>(&ann().allow_plaintext(), None)
            .await,
        LoginError::NeedsEncryption,
    );
    let lax = serve(&format!("{ip}:0"), |p| p.allow_passwords_in_plaintext()).await;
    let (_client, login) = login_object(lax.addr).await;
    let account: AccountRef = login.log_in(&ann().allow_plaintext(), None).await.unwrap();
    assert_eq!(account.whoami().await.unwrap(), "user ann");
}

/// The handler sees which connection logged in: another connection of the same server is
/// still anonymous.
#[tokio::test]
async fn the_user_belongs_to_the_connection() {
    let setup = serve("127.0.0.1:0", |p| p.allow_anonymous()).await;
    let (_a, login_a) = login_object(setup.addr).await;
    let (_b, login_b) = login_object(setup.addr).await;
    let ann_account: AccountRef = login_a.log_in(&ann(), None).await.unwrap();
    let anon: AccountRef = login_b.log_in_anonymously(None).await.unwrap();
    assert_eq!(ann_account.whoami().await.unwrap(), "user ann");
    assert_eq!(anon.whoami().await.unwrap(), "anonymous");
}

/// Logins sent at once on one connection are taken one at a time: one succeeds, the others
/// are refused, and exactly one avatar (so one logout) comes of it.
#[tokio::test]
async fn concurrent_logins_on_one_connection_make_one_avatar() {
    let mut setup = serve("127.0.0.1:0", |p| p).await;
    let (client, login) = login_object(setup.addr).await;
    let ann = ann();
    let attempts = (0..10).map(|_| login.log_in::<AccountRef>(&ann, None));
    let results = within("the logins", futures::future::join_all(attempts)).await;
    let (avatars, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(avatars.len(), 1, "{refused:?}");
    for r in refused {
        assert_login_error(r, LoginError::AlreadyLoggedIn);
    }
    drop(avatars);
    assert_eq!(
        within("the logout", setup.logouts.recv()).await,
        Some(Caller::User("ann".into()))
    );
    // Logged out, the connection may log in again (its password checks still count).
    let again: AccountRef = login.log_in(&ann, None).await.unwrap();
    assert_eq!(again.whoami().await.unwrap(), "user ann");
    client.close();
    within("the second logout", setup.logouts.recv()).await;
    assert!(setup.logouts.try_recv().is_err());
}

/// Wrong passwords sent at once cannot check more than three: the connection is closed
/// after the third, and the right password sent among them never gets checked after it.
#[tokio::test]
async fn concurrent_wrong_passwords_check_at_most_three() {
    let setup = serve("127.0.0.1:0", |p| p).await;
    let (client, login) = login_object(setup.addr).await;
    let wrong = Credentials::new("ann", "guess");
    let mut refused = 0;
    for _ in 0..3 {
        let burst = (0..5).map(|_| login.log_in::<AccountRef>(&wrong, None));
        for result in within("a burst", futures::future::join_all(burst)).await {
            match result {
                Err(CallError::Login(LoginError::Refused | LoginError::TooManyAttempts)) => {
                    refused += 1
                }
                Err(CallError::Login(LoginError::AlreadyLoggedIn)) => {}
                Err(CallError::Disconnected { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(refused, 3, "exactly three passwords were checked");
    within("the connection to close", client.disconnected()).await;
}
