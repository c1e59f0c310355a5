//! Whether the cache is shared over IPFS: the gate allows it and a node
//! answers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipfs_accelerate_gating::Gate;
use serde::{Deserialize, Serialize};

/// The API probed when nothing is configured.
pub const DEFAULT_IPFS_API: &str = "http://127.0.0.1:5001";

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where model files live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Only this machine's cache.
    Local,
    /// The cache is shared through a reachable IPFS node.
    Distributed,
}

/// The configured IPFS HTTP API: `$IPFS_API_URL`, else the multiaddr in
/// `$IPFS_PATH/api` (`~/.ipfs/api` when `IPFS_PATH` is unset, as kubo
/// does). None means nothing is configured and only
/// [`DEFAULT_IPFS_API`] is worth probing.
pub fn ipfs_api_url() -> Option<String> {
    let env_url = std::env::var("IPFS_API_URL").ok();
    let repo = match std::env::var_os("IPFS_PATH") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::home_dir().map(|h| h.join(".ipfs")),
    };
    let api_file = repo.and_then(|r| std::fs::read_to_string(r.join("api")).ok());
    ipfs_api_url_from(env_url.as_deref(), api_file.as_deref())
}

/// Pure form of [`ipfs_api_url`]: the `IPFS_API_URL` value and the content
/// of the repo's `api` file.
pub fn ipfs_api_url_from(env_url: Option<&str>, api_file: Option<&str>) -> Option<String> {
    if let Some(url) = env_url.map(str::trim).filter(|u| !u.is_empty()) {
        return Some(url.trim_end_matches('/').to_owned());
    }
    api_file.and_then(multiaddr_to_url)
}

/// `/ip4/127.0.0.1/tcp/5001` -> `http://127.0.0.1:5001` (also `ip6`,
/// `dns`, `dns4`, `dns6`, and a trailing `/http` or `/https`).
pub fn multiaddr_to_url(addr: &str) -> Option<String> {
    let parts: Vec<&str> = addr.trim().trim_matches('/').split('/').collect();
    let (proto, host, port, rest) = match parts.as_slice() {
        [proto, host, "tcp", port, rest @ ..] => (*proto, *host, *port, rest),
        _ => return None,
    };
    port.parse::<u16>().ok()?;
    let scheme = match rest {
        [] | ["http"] => "http",
        ["https"] => "https",
        _ => return None,
    };
    let host = match proto {
        "ip4" | "dns" | "dns4" | "dns6" => host.to_owned(),
        "ip6" => format!("[{host}]"),
        _ => return None,
    };
    Some(format!("{scheme}://{host}:{port}"))
}

/// True only when the gate allows IPFS, local storage is not forced, and a
/// node answers `POST /api/v0/version` with 200 within about a second.
pub fn is_distributed(gate: &Gate) -> bool {
    if !gate.ipfs || gate.force_local {
        return false;
    }
    let url = ipfs_api_url().unwrap_or_else(|| DEFAULT_IPFS_API.to_owned());
    let up = probe(&url);
    tracing::debug!(api = %url, up, "probed IPFS node");
    up
}

/// The storage mode for this gate (probes the node; see [`is_distributed`]).
pub fn storage_mode(gate: &Gate) -> StorageMode {
    if is_distributed(gate) {
        StorageMode::Distributed
    } else {
        StorageMode::Local
    }
}

/// Minimal HTTP/1.1 probe, so the crate needs no HTTP client. Only plain
/// `http://` APIs are probed; TLS is not spoken here.
fn probe(url: &str) -> bool {
    let Some(authority) = url.strip_prefix("http://") else {
        tracing::debug!(api = %url, "only http:// IPFS APIs can be probed");
        return false;
    };
    let authority = authority.split('/').next().unwrap_or_default();
    // One overall budget, so an unreachable node costs about a second.
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let Ok(addrs) = authority.to_socket_addrs() else {
        return false;
    };
    // `localhost` may resolve to ::1 and 127.0.0.1; the node may listen on
    // either.
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Ok(s) = TcpStream::connect_timeout(&addr, left) {
            stream = Some(s);
            break;
        }
    }
    let Some(mut stream) = stream else {
        return false;
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    if stream.set_read_timeout(Some(left)).is_err() || stream.set_write_timeout(Some(left)).is_err()
    {
        return false;
    }
    let request = format!(
        "POST /api/v0/version HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut len = 0;
    // The status line is all we need; it may arrive in pieces.
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    is_ok_status(&head[..len])
}

fn is_ok_status(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    let mut words = line.split_whitespace();
    matches!(
        (words.next(), words.next()),
        (Some(v), Some("200")) if v.starts_with("HTTP/1.")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn multiaddrs() {
        let cases = [
            ("/ip4/127.0.0.1/tcp/5001", Some("http://127.0.0.1:5001")),
            ("/ip4/127.0.0.1/tcp/5001\n", Some("http://127.0.0.1:5001")),
            ("/ip6/::1/tcp/5002", Some("http://[::1]:5002")),
            ("/dns4/ipfs.local/tcp/80/http", Some("http://ipfs.local:80")),
            ("/dns/node/tcp/443/https", Some("https://node:443")),
            ("/ip4/127.0.0.1/udp/5001", None),
            ("/ip4/127.0.0.1/tcp/notaport", None),
            ("/unix/tmp/ipfs.sock", None),
            ("", None),
        ];
        for (addr, want) in cases {
            assert_eq!(multiaddr_to_url(addr).as_deref(), want, "{addr:?}");
        }
    }

    #[test]
    fn env_wins_over_api_file() {
        let file = Some("/ip4/10.0.0.1/tcp/5001");
        assert_eq!(
            ipfs_api_url_from(Some("http://h:1/"), file).as_deref(),
            Some("http://h:1")
        );
        assert_eq!(
            ipfs_api_url_from(Some(""), file).as_deref(),
            Some("http://10.0.0.1:5001")
        );
        assert_eq!(ipfs_api_url_from(None, None), None);
    }

    #[test]
    fn status_lines() {
        assert!(is_ok_status(b"HTTP/1.1 200 OK\r\n"));
        assert!(!is_ok_status(b"HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(!is_ok_status(b""));
    }

    fn serve_once(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        });
        format!("http://{addr}")
    }

    #[test]
    fn probe_talks_http() {
        assert!(probe(&serve_once("200 OK")));
        assert!(!probe(&serve_once("404 Not Found")));
        // Nothing listens on a port we just released.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!probe(&format!("http://127.0.0.1:{port}")));
        assert!(!probe("https://127.0.0.1:5001"));
    }
}
