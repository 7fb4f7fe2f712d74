//! Addresses as people type them: `host:port` on command lines (`--listen`, `--advertise`)
//! and in credentials (a plaintext broker's address), checked before anything is bound or
//! dialled, with messages that name the expected form.
//!
//! The standard library's own message for `localhost` (no port) is "invalid socket address",
//! which does not say what is missing. Here:
//!
//! - an address to **connect to or advertise** must be `host:port`
//!   ([`check_host_port`]): a guessed port would silently reach the wrong server, or publish
//!   a URL nobody can use;
//! - an address to **listen on** may leave the port out ([`listen_address`]): the program
//!   then uses its default port (the broker 8990, a worker any free one), which it prints in
//!   its `listening on` line. Leaving out the *host* (`:8990`) is refused: whether to serve
//!   this host only (`127.0.0.1`) or every interface (`0.0.0.0`) is a choice worth writing.
//!
//! A host is a name (`localhost`, `example.org`), an IPv4 address, or an IPv6 address in
//! brackets (`[::1]:8990`); a bare IPv6 address (`::1`) is taken as a host with no port.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The broker's port when `--listen` or `add-user --advertise` names a host only.
pub const DEFAULT_BROKER_PORT: u16 = 8990;

/// What an address as typed turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Parsed<'a> {
    /// `host:port`, complete.
    HostPort,
    /// A host without a port; IPv6 addresses without their brackets.
    HostOnly(&'a str),
}

/// `HOST:PORT` with the example `host` and `port`: what to write instead.
fn example(host: &str, port: u16) -> String {
    match host.parse::<Ipv6Addr>() {
        Ok(_) => format!("[{host}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

/// Splits `text` into what it is, or says what is wrong with it.
fn parse(text: &str) -> Result<Parsed<'_>, String> {
    if text.is_empty() {
        return Err("the address is empty: give HOST:PORT, e.g. 127.0.0.1:8990".into());
    }
    if text.trim() != text {
        return Err(format!(
            "{text:?} has spaces around it: give HOST:PORT, e.g. 127.0.0.1:8990"
        ));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(Parsed::HostPort);
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok(Parsed::HostOnly(text));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'))
        && inner.parse::<Ipv6Addr>().is_ok()
    {
        return Ok(Parsed::HostOnly(inner));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is a port without a host: give HOST:PORT, e.g. 127.0.0.1:{text} (this \
                 host only) or 0.0.0.0:{text} (every interface)"
            ));
        }
        return Ok(Parsed::HostOnly(text));
    };
    if host.is_empty() {
        return Err(format!(
            "{text:?} has no host before the port: give HOST:PORT, e.g. 127.0.0.1{text} (this \
             host only) or 0.0.0.0{text} (every interface)"
        ));
    }
    if host.contains(':') || host.contains('[') {
        return Err(format!(
            "{text:?} is not HOST:PORT: put an IPv6 address in brackets, e.g. [::1]:8990"
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?} is not HOST:PORT: {port:?} is not a port number (0 to 65535)"
        ));
    }
    Ok(Parsed::HostPort)
}

/// Checks that `text` is `host:port`, e.g. `127.0.0.1:8990`, `example.org:8990` or
/// `[::1]:8990`: an address to connect to, or to advertise in a URL.
///
/// # Errors
/// A message naming the expected form, with `text` completed by `example_port` as an
/// example when only the port is missing: `"localhost" has no port: give HOST:PORT, e.g.
/// localhost:8990`.
pub fn check_host_port(text: &str, example_port: u16) -> Result<(), String> {
    match parse(text)? {
        Parsed::HostPort => Ok(()),
        Parsed::HostOnly(host) => Err(format!(
            "{text:?} has no port: give HOST:PORT, e.g. {}",
            example(host, example_port)
        )),
    }
}

/// `text` as an address to listen on: `host:port` as given, or a bare host with
/// `default_port` added (`localhost` → `localhost:8990`, `::1` → `[::1]:8990`).
///
/// # Errors
/// When `text` is neither (no host, a bad port, ...), with a message naming the expected
/// form.
pub fn listen_address(text: &str, default_port: u16) -> Result<String, String> {
    match parse(text)? {
        Parsed::HostPort => Ok(text.to_owned()),
        Parsed::HostOnly(host) => Ok(example(host, default_port)),
    }
}

/// [`listen_address`] with the broker's [`DEFAULT_BROKER_PORT`], as a clap value parser.
///
/// # Errors
/// As [`listen_address`].
pub fn broker_listen_address(text: &str) -> Result<String, String> {
    listen_address(text, DEFAULT_BROKER_PORT)
}

/// [`check_host_port`] as a clap value parser for an address to advertise: `text` itself
/// when it is `host:port`.
///
/// # Errors
/// As [`check_host_port`], with the broker's default port in the example.
pub fn advertised_address(text: &str) -> Result<String, String> {
    check_host_port(text, DEFAULT_BROKER_PORT).map(|()| text.to_owned())
}

/// An address for the broker's HTTP side (`--http`), as a clap value parser: a bare port
/// (`9090`) serves this host only (`127.0.0.1:9090`); anything else must be `host:port`, a
/// host alone having no HTTP port to default to.
///
/// # Errors
/// As [`check_host_port`], with port 9090 in the example.
pub fn http_listen_address(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u16>() {
            Ok(port) => Ok(format!("127.0.0.1:{port}")),
            Err(_) => Err(format!(
                "{text:?} is not a port number (0 to 65535): give PORT or HOST:PORT, e.g. 9090"
            )),
        };
    }
    check_host_port(text, 9090).map(|()| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_addresses_pass_as_they_are() {
        for text in [
            "127.0.0.1:8990",
            "0.0.0.0:0",
            "localhost:8990",
            "example.org:1",
            "[::1]:8990",
            "[::]:0",
        ] {
            assert_eq!(check_host_port(text, 8990), Ok(()), "{text}");
            assert_eq!(listen_address(text, 8990).as_deref(), Ok(text), "{text}");
        }
    }

    #[test]
    fn a_host_alone_gets_the_default_port_to_listen_and_an_example_to_connect() {
        for (text, completed) in [
            ("localhost", "localhost:8990"),
            ("127.0.0.1", "127.0.0.1:8990"),
            ("::1", "[::1]:8990"),
            ("[::1]", "[::1]:8990"),
            ("example.org", "example.org:8990"),
        ] {
            assert_eq!(listen_address(text, 8990).as_deref(), Ok(completed));
            let e = check_host_port(text, 8990).unwrap_err();
            assert_eq!(
                e,
                format!("{text:?} has no port: give HOST:PORT, e.g. {completed}")
            );
        }
        assert_eq!(listen_address("localhost", 0).as_deref(), Ok("localhost:0"));
    }

    #[test]
    fn what_is_wrong_is_named() {
        for (text, says) in [
            ("", "empty"),
            (" localhost:1", "spaces"),
            (
                ":8990",
                "no host before the port: give HOST:PORT, e.g. 127.0.0.1:8990",
            ),
            ("8990", "a port without a host"),
            ("localhost:99999", "\"99999\" is not a port number"),
            ("localhost:http", "\"http\" is not a port number"),
            ("localhost:", "\"\" is not a port number"),
            ("fe80::1:x", "IPv6 address in brackets"),
        ] {
            let e = listen_address(text, 8990).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(e.contains("HOST:PORT"), "{text:?}: {e}");
            assert_eq!(check_host_port(text, 8990).unwrap_err(), e);
        }
    }

    #[test]
    fn an_http_port_alone_means_loopback() {
        assert_eq!(http_listen_address("9090").as_deref(), Ok("127.0.0.1:9090"));
        assert_eq!(http_listen_address("0").as_deref(), Ok("127.0.0.1:0"));
        assert_eq!(
            http_listen_address("0.0.0.0:80").as_deref(),
            Ok("0.0.0.0:80")
        );
        assert_eq!(http_listen_address("[::1]:1").as_deref(), Ok("[::1]:1"));
        let e = http_listen_address("99999").unwrap_err();
        assert!(e.contains("not a port number"), "{e}");
        let e = http_listen_address("localhost").unwrap_err();
        assert!(e.contains("localhost:9090"), "{e}");
    }
}
