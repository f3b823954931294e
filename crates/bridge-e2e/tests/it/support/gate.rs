//! Gating: find the installed clients and make sure the test runs in a loopback-only network namespace.
//!
//! A misconfigured real client may fall back to a public endpoint, so no client is launched unless
//! `/proc/net/dev` (per network namespace, unlike `/sys/class/net`) lists only `lo`. When the clients or the
//! namespace are missing a test skips with a message, or fails when `CODEX_BRIDGE_REQUIRE_CLIENTS=1`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The clients' `node_modules/.bin` directory (printed last by `scripts/install-clients.sh`).
pub const CLIENTS_BIN_VAR: &str = "CODEX_BRIDGE_CLIENTS_BIN";
/// `1` turns every skip into a failure (CI).
pub const REQUIRE_VAR: &str = "CODEX_BRIDGE_REQUIRE_CLIENTS";
const SKIP_MESSAGE: &str = "skipping real-client tests: set CODEX_BRIDGE_CLIENTS_BIN (scripts/install-clients.sh \
                            prints it) and run inside a loopback-only namespace (see README)";

/// The installed clients.
#[derive(Debug, Clone)]
pub struct Clients {
    bin: PathBuf,
}

impl Clients {
    /// The `codex` binary (a node shim).
    pub fn codex(&self) -> PathBuf {
        self.bin.join("codex")
    }

    /// The `opencode` binary.
    pub fn opencode(&self) -> PathBuf {
        self.bin.join("opencode")
    }

    /// `PATH` for a client: the clients' `.bin` first, then the current `PATH` (the codex shim needs node).
    pub fn path_env(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(self.bin.clone()).chain(std::env::split_paths(&rest));
        std::env::join_paths(dirs).unwrap_or_else(|_| self.bin.clone().into_os_string())
    }
}

/// Overrides where the pinned openai Python SDK is installed (default: `python` next to the clients'
/// `node_modules`, where `scripts/install-clients.sh` puts it).
pub const PYTHON_SDK_VAR: &str = "CODEX_BRIDGE_CLIENTS_PYTHON";

impl Clients {
    /// The `--target` directory holding the openai Python SDK, if installed.
    pub fn python_sdk(&self) -> Result<PathBuf, String> {
        let dir = match std::env::var_os(PYTHON_SDK_VAR).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => self.bin.join("../../python"),
        };
        if dir.join("openai/__init__.py").is_file() {
            Ok(dir)
        } else {
            Err(format!("the openai Python SDK is not installed in {} (scripts/install-clients.sh)", dir.display()))
        }
    }
}

/// The clients and the Python SDK directory, or `None` (after printing why) to skip; panics when it cannot
/// run and `CODEX_BRIDGE_REQUIRE_CLIENTS=1`.
pub fn python_sdk() -> Option<(Clients, PathBuf)> {
    let clients = clients()?;
    match clients.python_sdk() {
        Ok(dir) => Some((clients, dir)),
        Err(problem) if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") => {
            panic!("{REQUIRE_VAR}=1 but the Python SDK test cannot run: {problem}")
        }
        Err(problem) => {
            eprintln!("skipping: {problem}");
            None
        }
    }
}

/// The clients if this test may launch them; `None` (after printing why) if it must skip.
///
/// Panics when it cannot run and `CODEX_BRIDGE_REQUIRE_CLIENTS=1`.
pub fn clients() -> Option<Clients> {
    let problem = match locate().and_then(|c| loopback_only().map(|()| c)) {
        Ok(clients) => return Some(clients),
        Err(problem) => problem,
    };
    if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_VAR}=1 but the real-client tests cannot run: {problem}");
    }
    eprintln!("{SKIP_MESSAGE}");
    eprintln!("  reason: {problem}");
    None
}

fn locate() -> Result<Clients, String> {
    let bin = std::env::var_os(CLIENTS_BIN_VAR).filter(|v| !v.is_empty());
    let bin = PathBuf::from(bin.ok_or_else(|| format!("{CLIENTS_BIN_VAR} is not set"))?);
    for name in ["codex", "opencode"] {
        let path = bin.join(name);
        if !is_executable(&path) {
            return Err(format!("{} is missing or not executable", path.display()));
        }
    }
    Ok(Clients { bin })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `Ok` when the current network namespace has no interface but `lo`.
pub fn loopback_only() -> Result<(), String> {
    let dev = std::fs::read_to_string("/proc/net/dev").map_err(|e| format!("cannot read /proc/net/dev: {e}"))?;
    let names = interfaces(&dev);
    if names == ["lo"] {
        Ok(())
    } else {
        Err(format!("not in a loopback-only network namespace (interfaces: {})", names.join(", ")))
    }
}

/// Interface names from the text of `/proc/net/dev` (the two header lines have no `:`).
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev.lines().filter_map(|l| l.split_once(':')).map(|(name, _)| name.trim().to_owned()).collect()
}

#[test]
fn interfaces_parse_proc_net_dev() {
    let text = [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets",
        "    lo:    1234      10    0    0    0     0          0         0     1234      10",
        "  eth0:      99       1    0    0    0     0          0         0       99       1",
    ]
    .join("\n");
    assert_eq!(interfaces(&text), ["lo", "eth0"]);
    assert_eq!(interfaces("h1\nh2\n    lo: 0 0\n"), ["lo"]);
}
