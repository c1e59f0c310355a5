//! A small Kubo RPC client: the calls the storage layer needs, each with a
//! timeout on our side and, where the node may wait for blocks, on its side.

use std::io::Read;
use std::time::Duration;

use serde::Deserialize;

use super::multipart::{MultipartBody, Part};
use crate::error::{Result, StorageError};

/// Seconds an IPFS call may sit idle (no byte received) before it fails.
pub const TIMEOUT_ENV: &str = "IPFS_ACCELERATE_IPFS_TIMEOUT";

/// Default idle timeout of a call (see [`TIMEOUT_ENV`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connecting is local or near; a node that does not accept within this is
/// treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One line of `add`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AddedEntry {
    /// Path as sent (folder names included).
    #[serde(rename = "Name")]
    pub name: String,
    /// Its CID.
    #[serde(rename = "Hash")]
    pub hash: String,
    /// Cumulative size; Kubo sends a string, unpatched js-ipfs a number.
    #[serde(rename = "Size", default, deserialize_with = "number_or_string")]
    pub size: u64,
}

/// One entry of a folder, from `ls`: the fields `add` answers with (the
/// size is the content size for files, cumulative for folders on some
/// nodes), plus the entry's type.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LsLink {
    /// Entry name, CID and size.
    #[serde(flatten)]
    pub entry: AddedEntry,
    /// UnixFS type: 1 is a folder; anything else is read as a file.
    #[serde(rename = "Type", default)]
    pub kind: i64,
}

impl LsLink {
    /// Whether the entry is a folder.
    pub fn is_dir(&self) -> bool {
        self.kind == 1
    }
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
    }
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// A Kubo RPC API endpoint (`http://host:port`, no `/api/v0`).
#[derive(Clone, Debug)]
pub struct IpfsClient {
    api: String,
    timeout: Duration,
    agent: ureq::Agent,
}

impl IpfsClient {
    /// A client for `api` whose calls fail after `timeout` without a byte.
    pub fn new(api: &str, timeout: Duration) -> IpfsClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .max_redirects(0)
            .build();
        IpfsClient {
            api: api.trim_end_matches('/').to_owned(),
            timeout,
            agent: config.into(),
        }
    }

    /// The configured node ([`crate::ipfs_api_url`], else
    /// [`crate::DEFAULT_IPFS_API`]) with the timeout from
    /// `IPFS_ACCELERATE_IPFS_TIMEOUT` (seconds, default 30).
    pub fn from_env() -> IpfsClient {
        let api = crate::ipfs_api_url().unwrap_or_else(|| crate::DEFAULT_IPFS_API.to_owned());
        let timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        IpfsClient::new(&api, timeout)
    }

    /// The API base URL.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The idle timeout of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn err(&self, op: &str, reason: impl std::fmt::Display) -> StorageError {
        StorageError::Ipfs {
            api: self.api.clone(),
            op: op.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn http_err(&self, op: &str, source: ureq::Error) -> StorageError {
        StorageError::IpfsHttp {
            api: self.api.clone(),
            op: op.to_owned(),
            source: Box::new(source),
        }
    }

    fn io_err(&self, op: &str, source: std::io::Error) -> StorageError {
        StorageError::IpfsIo {
            api: self.api.clone(),
            op: op.to_owned(),
            source,
        }
    }

    fn answer_err(
        &self,
        op: &str,
        answer: Option<&str>,
        source: serde_json::Error,
    ) -> StorageError {
        StorageError::IpfsAnswer {
            api: self.api.clone(),
            op: op.to_owned(),
            answer: answer.map(str::to_owned),
            source,
        }
    }

    /// The node-side timeout argument: js-ipfs waits forever for a block it
    /// lacks unless told otherwise (Kubo takes the same option).
    fn node_timeout(&self) -> String {
        format!("{}ms", self.timeout.as_millis().max(1))
    }

    fn url(&self, path: &str, args: &[(&str, &str)]) -> String {
        let mut url = format!("{}/api/v0/{path}", self.api);
        for (i, (k, v)) in args.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&query_escape(v));
        }
        url
    }

    /// POST and check the status; the body of an error answer becomes the
    /// reason (Kubo sends `{"Message": ...}`).
    fn post(
        &self,
        op: &str,
        path: &str,
        args: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = self.url(path, args);
        tracing::debug!(%url, "IPFS call");
        let resp = self
            .agent
            .post(&url)
            .send_empty()
            .map_err(|e| self.http_err(op, e))?;
        self.check(op, resp)
    }

    fn check(
        &self,
        op: &str,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let mut body = String::new();
        let _ = resp
            .into_body()
            .into_with_config()
            .limit(64 * 1024)
            .reader()
            .read_to_string(&mut body);
        #[derive(Deserialize)]
        struct ApiError {
            #[serde(rename = "Message")]
            message: String,
        }
        let reason = serde_json::from_str::<ApiError>(&body)
            .map(|e| e.message)
            .unwrap_or_else(|_| body.trim().chars().take(300).collect());
        Err(self.err(op, format!("HTTP {status}: {reason}")))
    }

    /// The whole body of an answer as text, up to 256 MiB (a JSON answer
    /// larger than that is not one the storage layer asked for).
    fn read_text(&self, op: &str, resp: ureq::http::Response<ureq::Body>) -> Result<String> {
        let mut text = String::new();
        resp.into_body()
            .into_with_config()
            .limit(256 * 1024 * 1024)
            .reader()
            .read_to_string(&mut text)
            .map_err(|e| self.io_err(op, e))?;
        Ok(text)
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        op: &str,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<T> {
        let text = self.read_text(op, resp)?;
        serde_json::from_str(&text).map_err(|e| self.answer_err(op, None, e))
    }

    /// `version`: the node's version string; an error when no node answers.
    pub fn version(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "Version")]
            version: String,
        }
        let resp = self.post("version", "version", &[])?;
        Ok(self.read_json::<Version>("version", resp)?.version)
    }

    /// `add` a folder: `files` are (path inside the folder, file on disk);
    /// the folder is sent as `root_name`. CIDv0, 256 KiB chunks, balanced
    /// layout and dag-pb leaves: what [`crate::unixfs`] computes. Pinned
    /// when `pin` is true. Answers one entry per file and folder.
    pub fn add_dir(
        &self,
        root_name: &str,
        files: &[(String, std::path::PathBuf)],
        pin: bool,
    ) -> Result<Vec<AddedEntry>> {
        let op = format!("add {root_name}/");
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(root_name.to_owned());
        for (rel, _) in files {
            let mut prefix = root_name.to_owned();
            let parts: Vec<&str> = rel.split('/').collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                prefix = format!("{prefix}/{part}");
                dirs.insert(prefix.clone());
            }
        }
        // BTreeSet order puts every folder before its subfolders.
        let mut parts: Vec<Part> = dirs.into_iter().map(|name| Part::Dir { name }).collect();
        parts.extend(files.iter().map(|(rel, path)| Part::File {
            name: format!("{root_name}/{rel}"),
            path: path.clone(),
        }));
        let body = MultipartBody::new(parts);
        let content_type = body.content_type();
        let pin = if pin { "true" } else { "false" };
        let url = self.url(
            "add",
            &[
                ("cid-version", "0"),
                ("raw-leaves", "false"),
                ("chunker", "size-262144"),
                ("pin", pin),
                ("progress", "false"),
                ("wrap-with-directory", "false"),
            ],
        );
        tracing::debug!(%url, files = files.len(), "IPFS add");
        let resp = self
            .agent
            .post(&url)
            .header("Content-Type", content_type)
            .send(ureq::SendBody::from_owned_reader(body))
            .map_err(|e| self.http_err(&op, e))?;
        let resp = self.check(&op, resp)?;
        let text = self.read_text(&op, resp)?;
        // Newline-delimited JSON, one object per added entry.
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<AddedEntry>(l).map_err(|e| self.answer_err(&op, Some(l), e))
            })
            .collect()
    }

    /// `add` one file, pinned, with the same settings as [`Self::add_dir`].
    pub fn add_file(&self, path: &std::path::Path) -> Result<AddedEntry> {
        let op = format!("add {}", path.display());
        let files = [("file".to_owned(), path.to_path_buf())];
        // A one-file folder answers the file's entry and the folder's; only
        // the file's counts, and the folder is never pinned on its own.
        let entries = self.add_dir("file-add", &files, false)?;
        let entry = entries
            .into_iter()
            .find(|e| e.name == "file-add/file")
            .ok_or_else(|| self.err(&op, "the answer names no file"))?;
        self.pin_add(&entry.hash)?;
        Ok(entry)
    }

    /// `files/cp`: link `/ipfs/<cid>` at MFS path `dest`, creating parent
    /// folders; an existing `dest` is replaced.
    pub fn files_cp(&self, cid: &str, dest: &str) -> Result<()> {
        self.files_rm(dest)?;
        let op = format!("files/cp {cid} {dest}");
        let src = format!("/ipfs/{cid}");
        let timeout = self.node_timeout();
        self.post(
            &op,
            "files/cp",
            &[
                ("arg", &src),
                ("arg", dest),
                ("parents", "true"),
                ("timeout", &timeout),
            ],
        )?;
        Ok(())
    }

    /// `files/rm -r --force`; a missing path is fine.
    pub fn files_rm(&self, path: &str) -> Result<()> {
        let op = format!("files/rm {path}");
        match self.files_stat(path)? {
            None => Ok(()),
            Some(_) => {
                self.post(
                    &op,
                    "files/rm",
                    &[("arg", path), ("recursive", "true"), ("force", "true")],
                )?;
                Ok(())
            }
        }
    }

    /// `files/stat`: the CID at MFS path `path`, None when nothing is there.
    pub fn files_stat(&self, path: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Stat {
            #[serde(rename = "Hash")]
            hash: String,
        }
        let op = format!("files/stat {path}");
        let url = self.url("files/stat", &[("arg", path)]);
        let resp = self
            .agent
            .post(&url)
            .send_empty()
            .map_err(|e| self.http_err(&op, e))?;
        let server_error = resp.status().is_server_error();
        let resp = match self.check(&op, resp) {
            Ok(resp) => resp,
            // "does not exist" is an error answer (500 on js-ipfs and Kubo).
            Err(e) if server_error && e.to_string().contains("not exist") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(self.read_json::<Stat>(&op, resp)?.hash))
    }

    /// `cat`: a reader over the content of a file CID. Reading fails (never
    /// hangs) when the node stops sending for longer than the timeout.
    pub fn cat(&self, cid: &str) -> Result<ureq::BodyReader<'static>> {
        let timeout = self.node_timeout();
        let resp = self.post(
            &format!("cat {cid}"),
            "cat",
            &[("arg", cid), ("timeout", &timeout)],
        )?;
        Ok(resp.into_body().into_reader())
    }

    /// `ls`: the entries of a folder CID.
    pub fn ls(&self, cid: &str) -> Result<Vec<LsLink>> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(rename = "Links", default)]
            links: Option<Vec<LsLink>>,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Objects")]
            objects: Vec<Object>,
        }
        let op = format!("ls {cid}");
        let timeout = self.node_timeout();
        let resp = self.post(
            &op,
            "ls",
            &[("arg", cid), ("timeout", &timeout), ("stream", "false")],
        )?;
        let answer: Answer = self.read_json(&op, resp)?;
        Ok(answer
            .objects
            .into_iter()
            .flat_map(|o| o.links.unwrap_or_default())
            .collect())
    }

    /// `pin/add` (recursive).
    pub fn pin_add(&self, cid: &str) -> Result<()> {
        let timeout = self.node_timeout();
        let op = format!("pin/add {cid}");
        let resp = self.post(&op, "pin/add", &[("arg", cid), ("timeout", &timeout)])?;
        let _: serde_json::Value = self.read_json(&op, resp)?;
        Ok(())
    }

    /// `pin/rm` (recursive).
    pub fn pin_rm(&self, cid: &str) -> Result<()> {
        let op = format!("pin/rm {cid}");
        let resp = self.post(&op, "pin/rm", &[("arg", cid)])?;
        let _: serde_json::Value = self.read_json(&op, resp)?;
        Ok(())
    }

    /// Whether `cid` is pinned recursively on the node.
    pub fn is_pinned(&self, cid: &str) -> Result<bool> {
        let op = format!("pin/ls {cid}");
        let url = self.url("pin/ls", &[("arg", cid), ("type", "recursive")]);
        let resp = self
            .agent
            .post(&url)
            .send_empty()
            .map_err(|e| self.http_err(&op, e))?;
        // Kubo and js-ipfs answer an error status for "not pinned".
        if !resp.status().is_success() {
            return Ok(false);
        }
        let answer: serde_json::Value = self.read_json(&op, resp)?;
        let keys = answer.get("Keys").and_then(|k| k.as_object());
        Ok(keys.is_some_and(|k| k.keys().any(|key| crate::unixfs::same_cid(key, cid))))
    }
}

/// Percent-encoding for query values (CIDs, paths, durations).
fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn size_is_number_or_string() {
        let kubo: AddedEntry =
            serde_json::from_str(r#"{"Name":"a","Hash":"Qm","Size":"12"}"#).unwrap();
        let js: AddedEntry = serde_json::from_str(r#"{"Name":"a","Hash":"Qm","Size":12}"#).unwrap();
        assert_eq!(kubo, js);
        assert_eq!(kubo.size, 12);
    }

    #[test]
    fn ls_link_reads_the_add_fields_and_the_type() {
        let link: LsLink =
            serde_json::from_str(r#"{"Name":"d","Hash":"Qm","Size":"7","Type":1,"Target":""}"#)
                .unwrap();
        assert_eq!(link.entry.name, "d");
        assert_eq!(link.entry.hash, "Qm");
        assert_eq!(link.entry.size, 7);
        assert!(link.is_dir());
        let file: LsLink = serde_json::from_str(r#"{"Name":"f","Hash":"Qm","Size":3}"#).unwrap();
        assert_eq!(file.entry.size, 3);
        assert!(!file.is_dir());
    }

    #[test]
    fn urls_escape_arguments() {
        let c = IpfsClient::new("http://127.0.0.1:5001/", DEFAULT_TIMEOUT);
        assert_eq!(
            c.url("cat", &[("arg", "/ipfs/Qm x"), ("timeout", "5s")]),
            "http://127.0.0.1:5001/api/v0/cat?arg=%2Fipfs%2FQm%20x&timeout=5s"
        );
    }

    #[test]
    fn unreachable_node_is_a_one_line_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = IpfsClient::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
        let err = c.version().unwrap_err().to_string();
        assert!(err.contains("version failed"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
