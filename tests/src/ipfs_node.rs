//! The real IPFS node the tests run against: js-ipfs 0.66.1 (a Kubo RPC
//! implementation) installed by `cargo xtask ipfs-node start` under
//! `target/ipfs-node/`. Shared by xtask (the node `xtask ci` runs) and by
//! tests that need a node of their own (e.g. to kill it mid-transfer), or
//! two online nodes connected over TCP on loopback, so that blocks travel
//! between them by bitswap ([`NodePair`]).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The npm package and version that provides the node.
pub const IPFS_PACKAGE: &str = "ipfs@0.66.1";

/// The release every installed copy of `@multiformats/multiaddr` 12 is
/// pinned to (an npm `overrides` entry, [`npm_overrides`], that `xtask
/// ipfs-node` writes). js-ipfs 0.66's libp2p 0.42 builds multiaddr 11
/// objects, while npm resolves its transports' ranges to releases built on
/// multiaddr 12 (`@libp2p/tcp` 6.2.2, `@libp2p/websockets` 5.0.10). Up to
/// 12.4.0 both majors tag their objects with the same `Symbol.for` key and
/// accept each other's; later releases (12.4.4, 12.5.1 checked) changed the
/// key, so the TCP transport's address filter rejects every address libp2p
/// hands it and an online node dies at start with "no valid addresses were
/// provided for transports [@libp2p/tcp, @libp2p/websockets, ...]".
/// Offline nodes listen on nothing and never notice.
pub const MULTIADDR_12_PIN: &str = "12.4.0";

/// The `overrides` object of the install's `package.json`.
pub fn npm_overrides() -> serde_json::Value {
    serde_json::json!({ "@multiformats/multiaddr@^12": MULTIADDR_12_PIN })
}

/// One text fix of a file of an installed js-ipfs dependency. xtask
/// applies it (with the patches crate's check / apply / revert); the
/// harness only checks that it is there before starting online nodes.
#[derive(Debug, Clone, Copy)]
pub struct JsFix {
    /// Short name for messages.
    pub name: &'static str,
    /// The package folder, relative to the install folder.
    pub package: &'static str,
    /// The package version the fix was written for (exact).
    pub version: &'static str,
    /// The file, relative to the package folder.
    pub file: &'static str,
    /// The text before the fix (occurs once, and not inside `patched`).
    pub original: &'static str,
    /// The text after it.
    pub patched: &'static str,
}

const EXPORTER: &str = "node_modules/ipfs-unixfs-exporter";
const EXPORTER_VERSION: &str = "10.0.1";
const EXPORTER_FILE: &str = "src/resolvers/unixfs-v1/content/file.js";

/// js-ipfs 0.66 exits (its `cli.js` turns any unhandled rejection into
/// `process.exit(1)`) when a `cat` of a multi-block file loses its blocks:
/// a want that times out, or whose client hangs up, rejects the promise
/// `walkQueue.add(...)` returns in ipfs-unixfs-exporter 10.0.1, and nothing
/// awaits it (the same error already reaches the reader through the
/// queue's `error` event). Offline, a missing block fails before that code
/// runs; online, a node whose peer dies mid-transfer died with it. Both
/// `add` sites get a `.catch`.
pub const CAT_ABORT_FIXES: [JsFix; 2] = [
    JsFix {
        name: "js-ipfs cat abort (child blocks)",
        package: EXPORTER,
        version: EXPORTER_VERSION,
        file: EXPORTER_FILE,
        original: "          await walkDAG(blockstore, child, queue, blockStart, start, end, walkQueue, options)\n        })\n",
        patched: "          await walkDAG(blockstore, child, queue, blockStart, start, end, walkQueue, options)\n        }).catch(() => {}) // ipfs-accelerate: reported through the queue's 'error' event\n",
    },
    JsFix {
        name: "js-ipfs cat abort (root block)",
        package: EXPORTER,
        version: EXPORTER_VERSION,
        file: EXPORTER_FILE,
        original: "      await walkDAG(blockstore, node, queue, 0, offset, offset + length, walkQueue, options)\n    })\n",
        patched: "      await walkDAG(blockstore, node, queue, 0, offset, offset + length, walkQueue, options)\n    }).catch(() => {}) // ipfs-accelerate: reported through the queue's 'error' event\n",
    },
];

/// Where `xtask ipfs-node` installs and runs the node.
pub fn node_dir() -> PathBuf {
    crate::workspace_root().join("target").join("ipfs-node")
}

/// The js-ipfs command-line entry point inside an install.
pub fn cli_js(install: &Path) -> PathBuf {
    install.join("node_modules/ipfs/src/cli.js")
}

/// The `Promise.withResolvers` polyfill preloaded into Node 20.
pub fn polyfill(install: &Path) -> PathBuf {
    install.join("polyfill.cjs")
}

/// Whether `install` holds a usable node.
pub fn is_installed(install: &Path) -> bool {
    cli_js(install).is_file() && polyfill(install).is_file()
}

/// Every installed copy of `@multiformats/multiaddr`: its folder and
/// version (npm nests one copy per conflicting range, dozens of them).
pub fn multiaddr_copies(install: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![install.join("node_modules")];
    while let Some(modules) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&modules) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // `.bin`, `.package-lock.json`: not packages.
            let packages: Vec<PathBuf> = if name.starts_with('.') {
                Vec::new()
            } else if name.starts_with('@') {
                std::fs::read_dir(&path)
                    .map(|scope| scope.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default()
            } else {
                vec![path]
            };
            for package in packages {
                if package.ends_with("@multiformats/multiaddr") {
                    let version = package_version(&package).unwrap_or_else(|| "?".to_owned());
                    found.push((package.clone(), version));
                }
                let nested = package.join("node_modules");
                if nested.is_dir() {
                    stack.push(nested);
                }
            }
        }
    }
    found
}

/// The `version` of the npm package in `dir`.
pub fn package_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// Why the install at `install` cannot run online nodes (see
/// [`MULTIADDR_12_PIN`] and [`CAT_ABORT_FIXES`]), or `None` when it can.
pub fn online_unready(install: &Path) -> Option<String> {
    const FIX: &str = "run `cargo xtask ipfs-node start` (or `cargo xtask ipfs-node install`)";
    if !is_installed(install) {
        return Some(format!(
            "no IPFS node installed in {} ({FIX})",
            install.display()
        ));
    }
    if let Some((dir, version)) = multiaddr_copies(install)
        .into_iter()
        .find(|(_, v)| v.starts_with("12.") && v != MULTIADDR_12_PIN)
    {
        return Some(format!(
            "{} is multiaddr {version}, not {MULTIADDR_12_PIN}: js-ipfs cannot listen on TCP ({FIX})",
            dir.display()
        ));
    }
    for fix in CAT_ABORT_FIXES {
        let path = install.join(fix.package).join(fix.file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.contains(fix.patched) {
            return Some(format!(
                "patch {} is not applied to {} ({FIX})",
                fix.name,
                path.display()
            ));
        }
    }
    None
}

/// A free TCP port on 127.0.0.1 (released before use; a race with another
/// process taking it is possible but shows up as a failed start).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `n` lines of the file at `path`.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A running daemon. Dropping it kills it unless [`Daemon::detach`]ed.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pid: u32,
    api: String,
    repo: PathBuf,
    install: PathBuf,
    log: PathBuf,
    online: bool,
    /// `/ip4/127.0.0.1/tcp/PORT/p2p/PEER` once an online node listens.
    swarm: Option<String>,
    wait: Duration,
}

impl Daemon {
    /// Starts js-ipfs offline with a fresh repo at `repo` (removed first:
    /// a repo left by a killed daemon fails with "Lock already being
    /// held"), API, gateway and gRPC on free 127.0.0.1 ports, no swarm
    /// addresses (they crash it offline), no bootstrap. Logs go to
    /// `log`. Waits until the API answers, at most `wait`.
    pub fn start(install: &Path, repo: &Path, log: &Path, wait: Duration) -> io::Result<Daemon> {
        Daemon::start_fresh(install, repo, log, wait, false)
    }

    /// Starts js-ipfs online, as [`Daemon::start`] does, plus a swarm
    /// listener on TCP at a free 127.0.0.1 port. No bootstrap peers, MDNS,
    /// WebRTC star, delegates or preload: it talks to exactly the peers
    /// it is told to [`Daemon::connect`] to, and never leaves the machine.
    pub fn start_online(
        install: &Path,
        repo: &Path,
        log: &Path,
        wait: Duration,
    ) -> io::Result<Daemon> {
        if let Some(why) = online_unready(install) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        Daemon::start_fresh(install, repo, log, wait, true)
    }

    fn start_fresh(
        install: &Path,
        repo: &Path,
        log: &Path,
        wait: Duration,
        online: bool,
    ) -> io::Result<Daemon> {
        if !is_installed(install) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no IPFS node installed in {} (run `cargo xtask ipfs-node start`)",
                    install.display()
                ),
            ));
        }
        match std::fs::remove_dir_all(repo) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(repo.parent().unwrap_or(repo))?;
        let (api_port, gw_port, rpc_port) = (free_port()?, free_port()?, free_port()?);
        // A fixed port rather than tcp/0: the repo keeps it, so a restarted
        // node is found again at the address its peer already knows.
        let swarm: Vec<String> = if online {
            vec![format!("/ip4/127.0.0.1/tcp/{}", free_port()?)]
        } else {
            Vec::new()
        };
        let config = serde_json::json!({
            "Addresses": {
                "API": format!("/ip4/127.0.0.1/tcp/{api_port}"),
                "Gateway": format!("/ip4/127.0.0.1/tcp/{gw_port}"),
                "RPC": format!("/ip4/127.0.0.1/tcp/{rpc_port}"),
                "Swarm": swarm,
                "Announce": [],
                "NoAnnounce": [],
                "Delegates": []
            },
            "Bootstrap": [],
            "Discovery": { "MDNS": { "Enabled": false }, "webRTCStar": { "Enabled": false } }
        });
        let config_path = repo.with_extension("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut daemon = Daemon {
            child: None,
            pid: 0,
            api: format!("http://127.0.0.1:{api_port}"),
            repo: repo.to_path_buf(),
            install: install.to_path_buf(),
            log: log.to_path_buf(),
            online,
            swarm: None,
            wait,
        };
        daemon.launch(Some(&config_path))?;
        Ok(daemon)
    }

    /// Runs the daemon on the repo (initialising it from `init_config`
    /// when given) and waits until it is ready.
    fn launch(&mut self, init_config: Option<&Path>) -> io::Result<()> {
        let log_file = std::fs::File::create(&self.log)?;
        let mut cmd = Command::new("node");
        cmd.arg("--require")
            .arg(polyfill(&self.install))
            .arg(cli_js(&self.install))
            .arg("daemon");
        if self.online {
            // Preload would contact public preload nodes after every add.
            cmd.arg("--enable-preload=false");
        } else {
            cmd.arg("--offline");
        }
        if let Some(config) = init_config {
            cmd.arg("--init-config").arg(config);
        }
        cmd.env("IPFS_PATH", &self.repo)
            .current_dir(&self.install)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        #[cfg(unix)]
        {
            // Its own process group: a Ctrl-C aimed at cargo does not take
            // the node down mid-test, and `stop` can end it alone.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn()?;
        self.pid = child.id();
        self.child = Some(child);
        self.swarm = None;
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "IPFS daemon exited ({status}) during start; log {}:\n{}",
                        self.log.display(),
                        tail(&self.log, 15)
                    )));
                }
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("Daemon is ready") && answers(&self.api) {
                if self.online {
                    self.swarm = Some(swarm_address(&log).ok_or_else(|| {
                        io::Error::other(format!(
                            "the IPFS daemon is ready but listens on no 127.0.0.1 TCP address; log {}:\n{}",
                            self.log.display(),
                            tail(&self.log, 15)
                        ))
                    })?);
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "IPFS daemon not ready after {:?}; log {}",
                        self.wait,
                        self.log.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the daemon if it runs and starts it again on the same repo:
    /// same blocks and pins, same peer id, same ports. The previous log is
    /// kept as `<log>.previous`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        // A killed js-ipfs leaves its lock (a folder) behind, and the next
        // start would fail with "Lock already being held".
        let lock = self.repo.join("repo.lock");
        let removed = if lock.is_dir() {
            std::fs::remove_dir_all(&lock)
        } else {
            std::fs::remove_file(&lock)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut previous = self.log.clone().into_os_string();
        previous.push(".previous");
        let _ = std::fs::rename(&self.log, previous);
        self.launch(None)
    }

    /// The API base URL, e.g. `http://127.0.0.1:40123`.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The repo folder.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The log of the current run.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// An online node's swarm address with its peer id,
    /// `/ip4/127.0.0.1/tcp/PORT/p2p/PEER`; `None` offline.
    pub fn swarm_addr(&self) -> Option<&str> {
        self.swarm.as_deref()
    }

    /// An online node's peer id.
    pub fn peer_id(&self) -> Option<&str> {
        self.swarm
            .as_deref()?
            .rsplit_once("/p2p/")
            .map(|(_, id)| id)
    }

    /// How many blocks the repo holds, counted on disk (`blocks/**/*.data`):
    /// unlike bitswap's counters, this does not lag behind the transfer.
    pub fn stored_blocks(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self.repo.join("blocks")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "data") {
                    count += 1;
                }
            }
        }
        count
    }

    /// Whether the process this handle started still runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Leave the daemon running after this handle is dropped.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }

    /// Kill it now (SIGKILL: the way a crash looks) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The 127.0.0.1 TCP address an online js-ipfs prints as it starts
/// ("Swarm listening on /ip4/127.0.0.1/tcp/PORT/p2p/PEER").
fn swarm_address(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("Swarm listening on "))
        .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/") && a.contains("/p2p/"))
        .map(str::to_owned)
}

/// Calls to a node's RPC API that only tests make: connecting peers and
/// reading bitswap's counters.
#[cfg(feature = "harness")]
impl Daemon {
    /// POSTs `path` with `args` to the node's RPC API; its JSON answer, or
    /// an error carrying the node's message.
    pub fn rpc(&self, path: &str, args: &[(&str, &str)]) -> io::Result<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut url = format!("{}/api/v0/{path}", self.api);
        for (i, (k, v)) in args.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&query_escape(v));
        }
        let resp = agent
            .post(&url)
            .send_empty()
            .map_err(|e| io::Error::other(format!("{path}: {e}")))?;
        let status = resp.status();
        let text = resp
            .into_body()
            .read_to_string()
            .map_err(|e| io::Error::other(format!("{path}: {e}")))?;
        if !status.is_success() {
            return Err(io::Error::other(format!(
                "{path}: HTTP {status}: {}",
                text.trim()
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| io::Error::other(format!("{path}: not JSON ({e}): {text}")))
    }

    /// Dials `other` (an online node) over TCP on loopback and checks that
    /// it is then among this node's peers.
    pub fn connect(&self, other: &Daemon) -> io::Result<()> {
        let (Some(addr), Some(id)) = (other.swarm_addr(), other.peer_id()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the other node is offline: it has no swarm address",
            ));
        };
        self.rpc("swarm/connect", &[("arg", addr)])?;
        if self.peers()?.iter().any(|p| p == id) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "swarm/connect {addr} answered, but {id} is not among the peers"
            )))
        }
    }

    /// The peer ids this node is connected to.
    pub fn peers(&self) -> io::Result<Vec<String>> {
        let answer = self.rpc("swarm/peers", &[])?;
        Ok(answer["Peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter_map(|p| p["Peer"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Blocks and bytes this node has received by bitswap since it started
    /// (`bitswap/stat`; js-ipfs sends the counters as strings). js-ipfs
    /// folds new traffic into them once a second, so they lag by up to a
    /// second: see [`Daemon::bitswap_received_settled`].
    pub fn bitswap_received(&self) -> io::Result<(u64, u64)> {
        let stat = self.rpc("bitswap/stat", &[])?;
        let count = |field: &str| -> io::Result<u64> {
            let v = &stat[field];
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| io::Error::other(format!("bitswap/stat: no {field} in {stat}")))
        };
        Ok((count("BlocksReceived")?, count("DataReceived")?))
    }

    /// [`Daemon::bitswap_received`] once the counters have caught up: the
    /// same answer twice, longer than js-ipfs's 1 s folding interval apart
    /// (at most about 10 s, for a transfer that is still going on).
    pub fn bitswap_received_settled(&self) -> io::Result<(u64, u64)> {
        let mut last = self.bitswap_received()?;
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(1200));
            let now = self.bitswap_received()?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last)
    }
}

/// Percent-encodes a query value (multiaddrs keep their slashes).
#[cfg(feature = "harness")]
fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Two online js-ipfs nodes on one machine, each with its own repo under
/// `target/ipfs-node/pairs/`, swarms on loopback TCP, not yet connected
/// ([`NodePair::connect`]). Dropping the pair kills both and removes their
/// folder, except while a test panics: then the repos and logs stay, and
/// their folder is printed.
#[cfg(feature = "harness")]
#[derive(Debug)]
pub struct NodePair {
    /// The node host A talks to.
    pub a: Daemon,
    /// The node host B talks to.
    pub b: Daemon,
    dir: Option<tempfile::TempDir>,
}

#[cfg(feature = "harness")]
impl NodePair {
    /// Starts both nodes for `test`.
    pub fn start(test: &str) -> io::Result<NodePair> {
        let install = node_dir();
        let pairs = install.join("pairs");
        std::fs::create_dir_all(&pairs)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{test}-"))
            .tempdir_in(&pairs)?;
        let start = |name: &str| {
            Daemon::start_online(
                &install,
                &dir.path().join(format!("repo-{name}")),
                &dir.path().join(format!("daemon-{name}.log")),
                Duration::from_secs(120),
            )
        };
        let a = start("a")?;
        let b = start("b")?;
        Ok(NodePair {
            a,
            b,
            dir: Some(dir),
        })
    }

    /// B dials A.
    pub fn connect(&self) -> io::Result<()> {
        self.b.connect(&self.a)
    }

    /// The folder holding both repos and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

#[cfg(feature = "harness")]
impl Drop for NodePair {
    fn drop(&mut self) {
        self.a.kill();
        self.b.kill();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("IPFS node repos and logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// Two online nodes for `test` ([`NodePair::start`]), or `None` after
/// reporting the skip when the install cannot run them. An install that
/// can but whose nodes fail to start fails the test.
#[cfg(feature = "harness")]
pub fn online_pair_or_skip(test: &str) -> Option<NodePair> {
    if let Some(why) = online_unready(&node_dir()) {
        crate::skip(test, &why);
        return None;
    }
    match NodePair::start(test) {
        Ok(pair) => Some(pair),
        Err(e) => panic!("{test}: cannot start two online IPFS nodes: {e}"),
    }
}

/// Whether a Kubo RPC API answers `version` at `api` (about a second).
pub fn answers(api: &str) -> bool {
    let client = ipfs_accelerate_storage::IpfsClient::new(api, Duration::from_secs(2));
    client.version().is_ok()
}

/// The node `cargo xtask ipfs-node start` (or `xtask ci`) runs: the
/// `IPFS_API_URL` it exported, else the URL in `target/ipfs-node/api`,
/// if it answers.
pub fn shared_api() -> Option<String> {
    let url = std::env::var("IPFS_API_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| std::fs::read_to_string(node_dir().join("api")).ok())
        .map(|u| u.trim().trim_end_matches('/').to_owned())?;
    answers(&url).then_some(url)
}

/// [`shared_api`], or `None` after reporting the skip of `test`.
pub fn shared_api_or_skip(test: &str) -> Option<String> {
    crate::or_skip(
        shared_api(),
        test,
        "no IPFS node answers (run `cargo xtask ipfs-node start` or set IPFS_API_URL)",
    )
}

/// The shared node's API and `N` empty host folders (two cache roots on
/// one machine stand for two hosts), or `None` after reporting the skip of
/// `test` when no node answers.
#[cfg(feature = "harness")]
pub fn node_and_hosts<const N: usize>(test: &str) -> Option<(String, [tempfile::TempDir; N])> {
    let api = shared_api_or_skip(test)?;
    Some((
        api,
        std::array::from_fn(|_| tempfile::tempdir().expect("a temp folder")),
    ))
}

/// A model host: its store, a snapshot imported into it and published to a
/// node, and the client that published it.
#[derive(Debug)]
pub struct Published {
    /// The host's store.
    pub store: ipfs_accelerate_storage::Store,
    /// The imported snapshot.
    pub manifest: ipfs_accelerate_storage::Manifest,
    /// A client of the node, with a 30 s timeout.
    pub client: ipfs_accelerate_storage::IpfsClient,
    /// The snapshot's root CID, as published.
    pub root: String,
}

/// Imports fixture `fixture` as `id@main` into a store at `root` and
/// publishes it to the node at `api`.
pub fn publish_fixture(api: &str, root: &Path, fixture: &str, id: &str) -> Published {
    let store = ipfs_accelerate_storage::Store::open(root).expect("the store opens");
    let manifest = store
        .import_dir(&crate::fixture_model(fixture), id, "main")
        .expect("the fixture imports");
    let client = ipfs_accelerate_storage::IpfsClient::new(api, Duration::from_secs(30));
    let root = ipfs_accelerate_storage::ipfs::publish(&store, &client, &manifest)
        .expect("the snapshot publishes");
    Published {
        store,
        manifest,
        client,
        root,
    }
}

/// A model folder (`dir/big-model`) with one `mb`-MiB weights file, so a
/// transfer takes long enough to be interrupted.
pub fn incompressible_model(dir: &Path, mb: usize) -> PathBuf {
    let model = dir.join("big-model");
    std::fs::create_dir_all(&model).expect("the model folder can be made");
    std::fs::write(model.join("config.json"), b"{\"model_type\":\"bert\"}\n")
        .expect("config.json can be written");
    // Not compressible, not repetitive: every 256 KiB chunk is a distinct
    // block, as in real weights.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..mb * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(model.join("model.safetensors"), bytes).expect("the weights can be written");
    model
}
