//! `cargo xtask ipfs-node start|stop|status|install|patch [check|apply|revert]`:
//! the real IPFS node the tests use. npm `ipfs@0.66.1` (js-ipfs) installed
//! once into `target/ipfs-node/` (290 MB, minutes: reused afterwards), run
//! under Node 20 with a `Promise.withResolvers` preload, offline, API on a
//! free 127.0.0.1 port, a fresh repo each start. The API URL is written to
//! `target/ipfs-node/api`, where the tests look for it. The same install
//! runs the online node pairs of the two-node tests (the harness starts
//! those itself); `install` prepares it without touching a running node.

use crate::process::sh;
use anyhow::{bail, Context};
use ipfs_accelerate_patches::file::{js_ipfs_add_size, FilePatch, FileState};
use ipfs_accelerate_tests::ipfs_node::{self, Daemon, IPFS_PACKAGE, MULTIADDR_12_PIN};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The Node.js major version js-ipfs 0.66 is run under here.
const NODE_MAJOR: u32 = 20;

const POLYFILL: &str = r#"// Preloaded into Node 20: dependencies of js-ipfs 0.66 call
// Promise.withResolvers, which Node ships only from version 22.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
"#;

/// Kubo answers `add` with `Size` as a string; js-ipfs 0.66 sends a number.
/// Clients written for Kubo (ours accepts both) expect the string. The patch
/// (and the check / apply / revert mechanism) lives in the patches crate.
pub fn size_patch(install: &Path) -> FilePatch {
    js_ipfs_add_size(install)
}

/// Every file patch of the install: `add`'s `Size`, and the fixes that
/// keep an online node alive when a `cat` loses its blocks (their text and
/// reason live with the harness, which checks them before starting online
/// nodes: `ipfs_node::CAT_ABORT_FIXES`).
pub fn patches(install: &Path) -> Vec<FilePatch> {
    let mut all = vec![size_patch(install)];
    all.extend(ipfs_node::CAT_ABORT_FIXES.iter().map(|fix| FilePatch {
        name: fix.name.to_owned(),
        package_dir: install.join(fix.package),
        version: fix.version.to_owned(),
        file: fix.file.to_owned(),
        original: fix.original.to_owned(),
        patched: fix.patched.to_owned(),
    }));
    all
}

fn apply_patches(install: &Path) -> anyhow::Result<()> {
    for patch in patches(install) {
        eprintln!("{}", patch.apply()?);
    }
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let install = ipfs_node::node_dir();
    match args.first().map(String::as_str) {
        Some("start") => {
            let api = start(&install)?;
            eprintln!("IPFS node up: IPFS_API_URL={api}");
            Ok(())
        }
        Some("stop") => stop(&install),
        Some("install") => {
            check_node_version()?;
            ensure_installed(&install)?;
            apply_patches(&install)?;
            eprintln!("IPFS node installed in {}", install.display());
            Ok(())
        }
        Some("status") => {
            match std::fs::read_to_string(install.join("api")) {
                Ok(api) if ipfs_node::answers(api.trim()) => {
                    eprintln!("IPFS node running: IPFS_API_URL={}", api.trim());
                }
                _ => eprintln!("IPFS node not running"),
            }
            match ipfs_node::online_unready(&install) {
                None => eprintln!("online node pairs: can run"),
                Some(why) => eprintln!("online node pairs: cannot run: {why}"),
            }
            Ok(())
        }
        Some("patch") => {
            let action = args.get(1).map(String::as_str);
            for patch in patches(&install) {
                let msg = match action {
                    None | Some("check") => match patch.check()? {
                        FileState::Applied => format!("patch {}: applied", patch.name),
                        FileState::Original => format!("patch {}: not applied", patch.name),
                    },
                    Some("apply") => patch.apply()?.to_string(),
                    Some("revert") => patch.revert()?.to_string(),
                    Some(other) => bail!("unknown patch action '{other}' (check, apply, revert)"),
                };
                eprintln!("{msg}");
            }
            Ok(())
        }
        _ => bail!(
            "usage: cargo xtask ipfs-node <start | stop | status | install | patch [check|apply|revert]>"
        ),
    }
}

/// Installs if needed, patches, stops any node this folder still runs and
/// starts a fresh one. Returns the API URL.
pub fn start(install: &Path) -> anyhow::Result<String> {
    check_node_version()?;
    ensure_installed(install)?;
    apply_patches(install)?;
    stop(install)?;
    let repo = install.join("repo");
    let log = install.join("daemon.log");
    let daemon = Daemon::start(install, &repo, &log, Duration::from_secs(180))
        .context("cannot start the IPFS node")?;
    let api = daemon.api().to_owned();
    let pid = daemon.detach();
    std::fs::write(install.join("pid"), pid.to_string())?;
    std::fs::write(install.join("api"), &api)?;
    Ok(api)
}

/// Stops the node started from `install` (if any) and removes its repo.
pub fn stop(install: &Path) -> anyhow::Result<()> {
    let pid_file = install.join("pid");
    let _ = std::fs::remove_file(install.join("api"));
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = pid.trim().to_owned();
    if pid.parse::<u32>().is_err() {
        bail!("{} holds no process id", pid_file.display());
    }
    if is_our_daemon(&pid, install) {
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(&pid) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        eprintln!("IPFS node (pid {pid}) stopped");
    }
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_dir_all(install.join("repo"));
    Ok(())
}

fn alive(pid: &str) -> bool {
    // A reaped or zombie process is as good as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
}

/// Only ever signal the node this folder started, never a recycled pid:
/// it runs with the install folder as its working directory (its command
/// line is no help: js-ipfs renames its process title to `ipfs`).
fn is_our_daemon(pid: &str, install: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    let ours = install.canonicalize();
    matches!((cwd, ours), (Ok(a), Ok(b)) if a == b)
}

fn check_node_version() -> anyhow::Result<()> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .context("Node.js (`node`) is needed for the IPFS node and was not found")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the Node.js version from {version:?}"))?;
    if major < NODE_MAJOR {
        bail!("Node.js {version} is too old for js-ipfs 0.66: need {NODE_MAJOR} or newer");
    }
    Ok(())
}

/// Installs js-ipfs, or brings an install made before the multiaddr pin up
/// to date (`npm install` on the existing tree only swaps those copies:
/// about a minute). Nothing to do when the package, the pin in
/// `package.json` and every installed multiaddr 12 copy are as wanted.
fn ensure_installed(install: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(install)?;
    std::fs::write(ipfs_node::polyfill(install), POLYFILL)?;
    let (name, version) = IPFS_PACKAGE.split_once('@').unwrap_or((IPFS_PACKAGE, ""));
    let installed = ipfs_node::package_version(&install.join("node_modules/ipfs"));
    let package_json = install.join("package.json");
    let overrides = std::fs::read_to_string(&package_json)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| v["overrides"].clone());
    let stray = ipfs_node::multiaddr_copies(install)
        .into_iter()
        .find(|(_, v)| v.starts_with("12.") && v != MULTIADDR_12_PIN);
    if installed.as_deref() == Some(version)
        && overrides == Some(ipfs_node::npm_overrides())
        && stray.is_none()
    {
        return Ok(());
    }
    let package = serde_json::json!({
        "name": "ipfs-accelerate-test-node",
        "private": true,
        "version": "0.0.0",
        "dependencies": { name: version },
        "overrides": ipfs_node::npm_overrides()
    });
    std::fs::write(&package_json, serde_json::to_vec_pretty(&package)?)?;
    if installed.as_deref() == Some(version) {
        eprintln!(
            "pinning @multiformats/multiaddr 12 to {MULTIADDR_12_PIN} in {} (online nodes cannot listen otherwise)",
            install.display()
        );
    } else {
        eprintln!(
            "installing {IPFS_PACKAGE} into {} (takes minutes, once)",
            install.display()
        );
    }
    // `npm ci` fails on js-ipfs's lockfile; `npm install` resolves it.
    sh(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(install))
    .context("npm install of the IPFS node failed")?;
    if !ipfs_node::is_installed(install) {
        bail!(
            "npm install finished but {} is missing",
            ipfs_node::cli_js(install).display()
        );
    }
    if let Some((dir, found)) = ipfs_node::multiaddr_copies(install)
        .into_iter()
        .find(|(_, v)| v.starts_with("12.") && v != MULTIADDR_12_PIN)
    {
        bail!(
            "npm install left multiaddr {found} in {} despite the {MULTIADDR_12_PIN} override",
            dir.display()
        );
    }
    Ok(())
}

/// The install folder (for `ci`).
pub fn install_dir() -> PathBuf {
    ipfs_node::node_dir()
}
