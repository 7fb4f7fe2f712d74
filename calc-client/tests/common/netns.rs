//! A test network of separate hosts on this machine: one network namespace (`ip netns`) per
//! host, each joined by a veth pair to a bridge that lives in a namespace of its own (the
//! switch), so the machine's own network is never touched. A process runs on a host through
//! `ip netns exec`, which execs the program in place of itself: the child a test holds is the
//! program, and killing it kills the program.
//!
//! Making namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; where that
//! fails, [`Network::new`] says why, for the test to report itself skipped. Everything a
//! [`Network`] made is removed when it is dropped, also when setting it up failed halfway or
//! the test panicked: drop (or [`kill`](super::Proc::kill)) the processes running on its hosts
//! first, which declaring the network before them does.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a test runs a program.
#[derive(Debug, Clone, Default)]
pub enum On {
    /// On this machine, in the test's own network namespace.
    #[default]
    ThisHost,
    /// In the named network namespace (a [`Host`] of a [`Network`]).
    Netns(String),
}

impl On {
    /// A command that runs `program` there.
    pub fn command(&self, program: &Path) -> Command {
        match self {
            On::ThisHost => Command::new(program),
            On::Netns(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(program);
                command
            }
        }
    }
}

/// The interface of a host on the network (the switch's end of its link is named after the
/// host).
const HOST_INTERFACE: &str = "eth0";

/// The switch's bridge.
const BRIDGE: &str = "br0";

/// Longest interface name Linux takes (IFNAMSIZ less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;

/// One host of a [`Network`].
#[derive(Debug, Clone)]
pub struct Host {
    /// Its name in the network, which also names the switch's end of its link.
    pub name: String,
    /// Its network namespace.
    pub namespace: String,
    /// Its IPv4 address (on `eth0`, in a /24).
    pub addr: String,
}

impl Host {
    /// Where to run programs on this host.
    pub fn on(&self) -> On {
        On::Netns(self.namespace.clone())
    }
}

/// Hosts on one switch; see the [module docs](self). Removed when dropped.
pub struct Network {
    /// `pbrs<pid>-<n>`: every namespace made starts with it and a dash.
    prefix: String,
    /// The switch's namespace.
    switch: String,
    /// Every namespace made so far, the switch first.
    namespaces: Vec<String>,
}

/// Runs `ip` with `args`; the error says which command failed and what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The namespaces `ip netns list` shows.
fn namespaces() -> Result<Vec<String>, String> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip netns list`: {e}"))?;
    // Lines such as `pbrs42-0-w1 (id: 3)`.
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

impl Network {
    /// A network with only its switch: namespace `pbrs<pid>-<n>-sw` holding the bridge `br0`.
    ///
    /// # Errors
    /// When the namespace cannot be made (not root, no iproute2): why, in words a skipped
    /// test can print.
    pub fn new() -> Result<Network, String> {
        static NETWORKS: AtomicUsize = AtomicUsize::new(0);
        let n = NETWORKS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("pbrs{}-{n}", std::process::id());
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]).map_err(|e| {
            format!(
                "cannot create network namespaces: {e}; this test needs root and iproute2 \
                 (`ip netns`)"
            )
        })?;
        let network = Network {
            prefix,
            namespaces: vec![switch.clone()],
            switch,
        };
        network.in_switch(&["link", "add", BRIDGE, "type", "bridge"]);
        network.in_switch(&["link", "set", "dev", BRIDGE, "up"]);
        Ok(network)
    }

    /// `ip -n <switch> args`; panics (the network is then dropped, so removed) on failure.
    fn in_switch(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.switch];
        all.extend_from_slice(args);
        ip(&all).unwrap_or_else(|e| panic!("on the test network's switch: {e}"));
    }

    /// Adds the host `name` (at most 15 characters) with the address `addr` (in a /24 shared
    /// by the network's hosts): its namespace `<prefix>-<name>`, `lo` up, and `eth0` linked to
    /// the switch's port `<name>`, both up.
    ///
    /// # Panics
    /// When a step fails (the network is then dropped, so removed).
    pub fn add_host(&mut self, name: &str, addr: &str) -> Host {
        assert!(
            name.len() <= MAX_INTERFACE_NAME,
            "host name {name:?} is too long for an interface name"
        );
        let namespace = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &namespace])
            .unwrap_or_else(|e| panic!("setting up the test network: {e}"));
        self.namespaces.push(namespace.clone());
        let cidr = format!("{addr}/24");
        let steps: [&[&str]; 5] = [
            &["link", "set", "dev", "lo", "up"],
            &[
                "link",
                "add",
                HOST_INTERFACE,
                "type",
                "veth",
                "peer",
                "name",
                name,
            ],
            &["link", "set", "dev", name, "netns", &self.switch],
            &["addr", "add", &cidr, "dev", HOST_INTERFACE],
            &["link", "set", "dev", HOST_INTERFACE, "up"],
        ];
        for step in steps {
            let mut all = vec!["-n", &namespace];
            all.extend_from_slice(step);
            ip(&all).unwrap_or_else(|e| panic!("setting up the test network: {e}"));
        }
        self.in_switch(&["link", "set", "dev", name, "master", BRIDGE]);
        self.in_switch(&["link", "set", "dev", name, "up"]);
        Host {
            name: name.to_owned(),
            namespace,
            addr: addr.to_owned(),
        }
    }

    /// Cuts `host`'s link as a pulled cable would: its port on the switch goes down. Nothing
    /// reaches the host or comes from it any more, and nobody is told: connections to it
    /// fall silent rather than close.
    pub fn cut(&self, host: &Host) {
        self.in_switch(&["link", "set", "dev", &host.name, "down"]);
    }

    /// Removes every namespace made (which removes the interfaces in them), and checks that
    /// none is left.
    ///
    /// # Errors
    /// What could not be removed.
    pub fn tear_down(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        // The hosts first, then the switch: the veths go with the hosts' namespaces.
        while let Some(namespace) = self.namespaces.pop() {
            if let Err(e) = ip(&["netns", "del", &namespace]) {
                errors.push(e);
            }
        }
        let ours = format!("{}-", self.prefix);
        let left: Vec<String> = namespaces()?
            .into_iter()
            .filter(|name| name.starts_with(&ours))
            .collect();
        if !left.is_empty() {
            errors.push(format!("namespaces left behind: {}", left.join(", ")));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.tear_down() {
            eprintln!("removing the test network {}: {e}", self.prefix);
        }
    }
}
