//! Sturdy `pbrs://` URLs over loopback TLS: a URL reaches exactly its object; without the
//! secret (a wrong one, guessed object ids) nothing is reached; the URL's pin is checked;
//! malformed URLs say what is wrong; only a TLS server registers objects.

mod common;

use common::tls::{TestCa, assert_mentions, calc_server, raw_tls, self_signed, tls_message};
use common::{Calc, CalculatorRef, TestServer, assert_error, decode_value, within};
use rpc_core::protocol::{LOOKUP_OBJECT, Message, ROOT_OBJECT, WireRef};
use rpc_core::tls::{ClientTls, Identity};
use rpc_core::{CallError, Client, Config, RemoteErrorKind, Server, SturdyUrl};

/// A TLS server with `identity` whose root is calculator 0, with calculators
/// `1..=registered` registered; their URLs.
async fn server_with_urls(identity: Identity, registered: u32) -> (TestServer, Vec<SturdyUrl>) {
    calc_server(identity, Config::default(), registered).await
}

/// Connects to `url` (text) within the test's patience.
async fn connect_url(url: &str) -> Result<CalculatorRef, CallError> {
    within("connect_url", Client::connect_url::<CalculatorRef>(url)).await
}

/// The secret of a URL: what follows its last `/`.
fn secret_of(url: &SturdyUrl) -> String {
    let text = url.to_string();
    text.rsplit_once('/')
        .expect("a / before the secret")
        .1
        .to_owned()
}

/// `url` with the last digit of its secret changed: the same length, another secret.
fn with_wrong_secret(url: &SturdyUrl) -> String {
    let mut text = url.to_string();
    let last = text.pop().expect("a secret");
    text.push(if last == '0' { '1' } else { '0' });
    text
}

/// Each URL reaches its own object, never the root nor the other; the secrets differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_reaches_exactly_its_object() {
    let identity = self_signed();
    let pin = identity.fingerprint();
    let (server, urls) = server_with_urls(identity, 2).await;
    assert_ne!(secret_of(&urls[0]), secret_of(&urls[1]));
    for (url, id) in urls.iter().zip(1..) {
        assert_eq!(url.fingerprint(), pin);
        assert_eq!(url.addr(), server.addr.to_string());
        assert_eq!(secret_of(url).len(), 64);
        let calc = connect_url(&url.to_string()).await.expect("connect_url");
        assert_eq!(
            within("a call", calc.calculate(2, 3)).await.unwrap(),
            (5, id)
        );
        let peer = rpc_core::RemoteRef::peer(&calc).expect("a remote object");
        assert!(peer.is_encrypted());
    }
    // The root is still the root.
    let client = within(
        "connect",
        Client::connect_tls(&server.addr.to_string(), &ClientTls::pinned(pin)),
    )
    .await
    .unwrap();
    let root: CalculatorRef = client.root().await.unwrap();
    assert_eq!(
        within("a call", root.calculate(2, 3)).await.unwrap(),
        (5, 0)
    );
    client.close();
    server.stop().await;
}

/// A URL with a wrong secret of the right length reaches nothing, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_reaches_nothing() {
    let (server, urls) = server_with_urls(self_signed(), 1).await;
    match connect_url(&with_wrong_secret(&urls[0])).await {
        Err(CallError::Remote { kind, message }) => {
            assert_eq!(kind, RemoteErrorKind::NoSuchObject);
            assert_mentions(&message, &["no object under this URL's secret"]);
        }
        other => panic!("expected NoSuchObject, got {other:?}"),
    }
    let calc = connect_url(&urls[0].to_string())
        .await
        .expect("the right URL");
    assert_eq!(
        within("a call", calc.calculate(1, 1)).await.unwrap(),
        (2, 1)
    );
    server.stop().await;
}

/// On the wire: the right secret hands the object over under a small id; a connection that
/// looked up a wrong secret gets nothing, and reaches nothing at ids 1..=10 either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_object_ids_reaches_nothing() {
    let ca = TestCa::new("CA");
    let (server, urls) = server_with_urls(ca.issue("server"), 1).await;

    let mut knowing = raw_tls(server.addr, &ca).await;
    let (answer, value) = knowing
        .call(1, LOOKUP_OBJECT, "lookup", (secret_of(&urls[0]),))
        .await;
    let id = match answer {
        Message::Answer { id: 1, refs } => match refs.as_slice() {
            [WireRef::SenderExports { id, interface }] if interface == "Calculator" => *id,
            other => panic!("expected one Calculator reference, got {other:?}"),
        },
        other => panic!("expected an answer, got {other:?}"),
    };
    assert_eq!(decode_value::<Option<u32>>(&value), Some(0));
    assert!(
        (1..=10).contains(&id),
        "handed over as {id}, outside the ids guessed below"
    );
    let (answer, value) = knowing.call(2, id, "calculate", (1i64, 2i64)).await;
    assert!(
        matches!(answer, Message::Answer { id: 2, .. }),
        "{answer:?}"
    );
    assert_eq!(decode_value::<(i64, u32)>(&value), (3, 1));

    let mut guessing = raw_tls(server.addr, &ca).await;
    let wrong = with_wrong_secret(&urls[0]);
    let wrong = wrong.rsplit_once('/').unwrap().1.to_owned();
    let (answer, value) = guessing.call(1, LOOKUP_OBJECT, "lookup", (wrong,)).await;
    assert!(
        matches!(&answer, Message::Answer { id: 1, refs } if refs.is_empty()),
        "{answer:?}"
    );
    assert_eq!(decode_value::<Option<u32>>(&value), None);
    for object in 1..=10 {
        let (answer, _) = guessing
            .call(10 + object, object, "calculate", (1i64, 2i64))
            .await;
        assert_error(
            &answer,
            10 + object,
            RemoteErrorKind::NoSuchObject,
            "no object",
        );
    }
    // The connection is alive: it reaches the root, and only the root.
    let (answer, value) = guessing
        .call(30, ROOT_OBJECT, "calculate", (1i64, 2i64))
        .await;
    assert!(
        matches!(answer, Message::Answer { id: 30, .. }),
        "{answer:?}"
    );
    assert_eq!(decode_value::<(i64, u32)>(&value), (3, 0));

    drop((knowing, guessing));
    server.stop().await;
}

/// A URL naming another fingerprint fails the pin, at connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_another_fingerprint_fails_the_pin() {
    let (server, urls) = server_with_urls(self_signed(), 1).await;
    let real = urls[0].fingerprint().to_string();
    let other = self_signed().fingerprint().to_string();
    let forged = urls[0].to_string().replace(&real, &other);
    let message = tls_message(connect_url(&forged).await);
    assert_mentions(&message, &["not the pinned one", &real, &other]);
    assert!(connect_url(&urls[0].to_string()).await.is_ok());
    server.stop().await;
}

/// Malformed URLs fail before any connection with `InvalidUrl` naming the problem, and the
/// error never shows the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_urls_say_what_is_wrong() {
    let (server, urls) = server_with_urls(self_signed(), 1).await;
    let url = urls[0].to_string();
    let secret = secret_of(&urls[0]);
    let addr = server.addr.to_string();
    let cases = [
        (
            url.replace("pbrs://", "https://"),
            "must start with pbrs://",
        ),
        (url.replace('@', "/"), "an @"),
        (
            url.replacen("pbrs://", "pbrs://zz", 1),
            "fingerprint is not valid",
        ),
        (url.replace(&addr, "127.0.0.1"), "not host:port"),
        (url.replace(&format!("/{secret}"), ""), "secret"),
        (url.replace(&format!("/{secret}"), &secret), "secret"),
        (
            url.replace(&secret, &secret[..20]),
            "at least 32 hexadecimal",
        ),
        (url.replace(&secret, &"x".repeat(64)), "hexadecimal"),
    ];
    for (text, expected) in cases {
        match connect_url(&text).await {
            Err(CallError::InvalidUrl { url, problem }) => {
                assert_mentions(&problem, &[expected]);
                assert!(!url.contains(&secret[..20]), "the secret leaked: {url}");
            }
            other => panic!("{text}: expected InvalidUrl, got {other:?}"),
        }
    }
    server.stop().await;
}

/// A plaintext server cannot register: a URL names a server by its certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_needs_tls() {
    let (root, _) = Calc::root(0);
    let server = Server::bind("127.0.0.1:0", root).await.unwrap();
    let message = tls_message(server.register(Calc::root(1).0));
    assert_mentions(&message, &["with_tls"]);
}

/// A server that registered nothing exports no lookup: a URL for it, and a raw lookup, are
/// answered NoSuchObject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_registrations_has_no_lookup() {
    let ca = TestCa::new("CA");
    let identity = ca.issue("server");
    let pin = identity.fingerprint();
    let (server, _) = server_with_urls(identity, 0).await;
    let url = format!("pbrs://{pin}@{}/{}", server.addr, "5a".repeat(32));
    match connect_url(&url).await {
        Err(CallError::Remote { kind, message }) => {
            assert_eq!(kind, RemoteErrorKind::NoSuchObject);
            assert_mentions(&message, &["no object under this URL's secret"]);
        }
        other => panic!("expected NoSuchObject, got {other:?}"),
    }
    let mut raw = raw_tls(server.addr, &ca).await;
    let (answer, _) = raw
        .call(1, LOOKUP_OBJECT, "lookup", ("5a".repeat(32),))
        .await;
    assert_error(&answer, 1, RemoteErrorKind::NoSuchObject, "");
    drop(raw);
    server.stop().await;
}
