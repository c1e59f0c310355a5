//! A local server speaking the Hugging Face Hub's file protocol, so the Hub
//! origin is tested for real without reaching huggingface.co: `hf-hub`
//! (what the loader uses) and Python's `huggingface_hub` download from it
//! exactly as they do from the Hub.
//!
//! What it reproduces, as the real Hub answers (and as those two clients
//! read it):
//!
//! * `GET`/`HEAD /{repo}/resolve/{revision}/{file}`: `X-Repo-Commit`,
//!   `ETag` (the git blob id, quoted), `Content-Length`, `Accept-Ranges`,
//!   `Range` requests (`206` + `Content-Range`, `416` past the end). The
//!   revision is a branch, a tag or a full commit hash, percent-encoded in
//!   the path (`refs%2Fpr%2F1`).
//! * Large (LFS) files: a `302` to a second listener on another host
//!   (127.0.0.2) and port, the stand-in for the Hub's CDN, with `X-Linked-Etag` (the sha256),
//!   `X-Linked-Size` and `X-Repo-Commit` on the redirect itself. The CDN
//!   URL is signed (a per-server secret in the query), so a gated file can
//!   only be fetched through the Hub's redirect, never directly.
//! * Errors with the Hub's `X-Error-Code` / `X-Error-Message`: gated repos
//!   answer `401 GatedRepo` without a token and `403 GatedRepo` with a
//!   valid token that has no access; an invalid `Authorization: Bearer`
//!   token is `401 "Invalid credentials in Authorization header"`; a
//!   missing repo is `401 RepoNotFound` anonymously and `404 RepoNotFound`
//!   with a valid token (the Hub does not tell anonymous callers whether a
//!   private repo exists); `404 RevisionNotFound`; `404 EntryNotFound`
//!   (with `X-Repo-Commit`, which `huggingface_hub` uses to cache the
//!   absence under `.no_exist/`).
//! * `GET /api/models/{repo}[/revision/{revision}]`: the repo info JSON
//!   (`sha`, `siblings`) that `hf-hub`'s `info()` and Python's `model_info`
//!   read; `GET /api/models/{repo}/tree/{revision}[/{path}]`, the listing
//!   Python's `snapshot_download` reads (1.x and later).
//!
//! Files are served byte-for-byte from real folders (the fixtures), under
//! fixed commit hashes. Every request is logged ([`HubServer::requests`]) so
//! tests can check what a client sent (a resumed `Range`, a token that must
//! not reach the CDN). [`HubServer::fail_once_after`] cuts the next transfer
//! of a file after N bytes, as a dropped connection does.
//!
//! HTTP/1.1 over `std::net`, one thread per connection, `Connection: close`
//! on every answer: the clients only send `GET`/`HEAD` without bodies, and
//! closing after each answer keeps a cut transfer unambiguous.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Extensions the Hub stores through LFS (its default `.gitattributes`):
/// these resolve to a redirect to the CDN.
const LFS_EXTENSIONS: &[&str] = &[
    "safetensors",
    "bin",
    "onnx",
    "gguf",
    "h5",
    "msgpack",
    "pt",
    "pth",
    "ckpt",
    "ot",
    "tflite",
    "model",
];

/// One file of a commit, with the identifiers the Hub derives from it.
#[derive(Debug, Clone)]
pub struct HubFile {
    /// The content, byte-for-byte.
    pub bytes: Arc<Vec<u8>>,
    /// sha256 of the content, hex: the LFS object id (`X-Linked-Etag`).
    pub sha256: String,
    /// The git blob id of what git stores: the content for a regular file,
    /// the LFS pointer for an LFS file (the `ETag` the Hub sends).
    pub git_oid: String,
    /// Stored through LFS: served by a redirect to the CDN.
    pub lfs: bool,
}

impl HubFile {
    /// A file named `name` (the extension decides LFS, as the Hub's
    /// default `.gitattributes` does) holding `bytes`.
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let lfs = LFS_EXTENSIONS.contains(&ext);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let git_oid = if lfs {
            git_blob_oid(pointer_text(&sha256, bytes.len()).as_bytes())
        } else {
            git_blob_oid(&bytes)
        };
        Self {
            bytes: Arc::new(bytes),
            sha256,
            git_oid,
            lfs,
        }
    }

    /// What the Hub cache names the blob: the sha256 for LFS files, the git
    /// blob id otherwise (the etag `huggingface_hub` and `hf-hub` use).
    pub fn etag(&self) -> &str {
        if self.lfs {
            &self.sha256
        } else {
            &self.git_oid
        }
    }
}

/// The LFS pointer git stores in place of an LFS file.
fn pointer_text(sha256: &str, size: usize) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

fn lfs_pointer(file: &HubFile) -> String {
    pointer_text(&file.sha256, file.bytes.len())
}

/// A repo on the server: commits (each a set of files), branches and tags
/// pointing at them, and optionally a gate.
#[derive(Debug, Clone, Default)]
pub struct HubRepo {
    /// `org/name`.
    pub id: String,
    commits: BTreeMap<String, BTreeMap<String, HubFile>>,
    refs: BTreeMap<String, String>,
    gate_token: Option<String>,
}

impl HubRepo {
    /// An empty repo `id` (`org/name`).
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    /// Adds commit `sha` (40 hex digits) holding every file under `dir`,
    /// read byte-for-byte.
    pub fn commit_dir(mut self, sha: &str, dir: &Path) -> io::Result<Self> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a commit hash is 40 hex digits, not {sha:?}"),
            ));
        }
        let mut files = BTreeMap::new();
        read_tree(dir, dir, &mut files)?;
        self.commits.insert(sha.to_ascii_lowercase(), files);
        Ok(self)
    }

    /// Points branch or tag `name` (e.g. `main`, `v1.0`, `refs/pr/1`) at
    /// commit `sha`.
    pub fn reference(mut self, name: &str, sha: &str) -> Self {
        self.refs.insert(name.to_owned(), sha.to_ascii_lowercase());
        self
    }

    /// Gates the repo: only `Authorization: Bearer <token>` gets in.
    pub fn gated(mut self, token: &str) -> Self {
        self.gate_token = Some(token.to_owned());
        self
    }

    /// The commit `revision` names: a branch or tag, or a commit hash.
    pub fn resolve(&self, revision: &str) -> Option<&str> {
        if let Some((sha, _)) = self.commits.get_key_value(revision) {
            return Some(sha);
        }
        let sha = self.refs.get(revision)?;
        self.commits.get_key_value(sha).map(|(sha, _)| sha.as_str())
    }

    /// File `name` of commit `sha`.
    pub fn file(&self, sha: &str, name: &str) -> Option<&HubFile> {
        self.commits.get(sha)?.get(name)
    }

    /// The files of commit `sha`, by name.
    pub fn files(&self, sha: &str) -> Option<&BTreeMap<String, HubFile>> {
        self.commits.get(sha)
    }
}

/// Every file under `dir`, named by its `/`-separated path below `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, HubFile>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_tree(root, &path, out)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(&path)?;
        out.insert(name.clone(), HubFile::new(&name, bytes));
    }
    Ok(())
}

/// Which listener answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The Hub itself (`HF_ENDPOINT`).
    Hub,
    /// The CDN the Hub redirects LFS files to.
    Cdn,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Which listener.
    pub host: Host,
    /// `GET` or `HEAD` (or whatever was sent).
    pub method: String,
    /// The request target as sent (path and query, still percent-encoded).
    pub target: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Body bytes sent (fewer than `Content-Length` when `cut`).
    pub body_bytes: u64,
    /// The transfer was cut on purpose ([`HubServer::fail_once_after`]).
    pub cut: bool,
}

/// A pending "cut the next transfer of this blob after N bytes".
#[derive(Debug, Clone)]
struct Cut {
    sha256: String,
    after: u64,
}

#[derive(Debug)]
struct State {
    repos: Vec<HubRepo>,
    cdn_origin: String,
    secret: String,
    log: Mutex<Vec<Logged>>,
    cut: Mutex<Option<Cut>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic in another connection's thread;
    // the log and the pending cut stay usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running server: the Hub listener and the CDN listener, both on
/// 127.0.0.1. Stopped when dropped.
#[derive(Debug)]
pub struct HubServer {
    endpoint: String,
    state: Arc<State>,
    threads: Vec<(String, JoinHandle<()>)>,
}

impl HubServer {
    /// Starts serving `repos` on two free ports.
    pub fn start(repos: Vec<HubRepo>) -> io::Result<Self> {
        let hub = TcpListener::bind("127.0.0.1:0")?;
        // The CDN is another host, as the Hub's is (clients drop the
        // `Authorization` header when a redirect leaves the host): Linux
        // routes all of 127.0.0.0/8 to loopback; elsewhere, another port.
        let cdn = TcpListener::bind("127.0.0.2:0").or_else(|_| TcpListener::bind("127.0.0.1:0"))?;
        let hub_addr = hub.local_addr()?.to_string();
        let cdn_addr = cdn.local_addr()?.to_string();
        // The signature CDN URLs carry: unguessable per server, so only the
        // Hub's redirect leads to a file.
        let secret = hex::encode(Sha256::digest(
            format!("{hub_addr} {cdn_addr} {:?}", std::time::SystemTime::now()).as_bytes(),
        ));
        let state = Arc::new(State {
            repos,
            cdn_origin: format!("http://{cdn_addr}"),
            secret,
            log: Mutex::new(Vec::new()),
            cut: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let threads = vec![
            (
                hub_addr.clone(),
                accept_loop(hub, Host::Hub, Arc::clone(&state))?,
            ),
            (cdn_addr, accept_loop(cdn, Host::Cdn, Arc::clone(&state))?),
        ];
        Ok(Self {
            endpoint: format!("http://{hub_addr}"),
            state,
            threads,
        })
    }

    /// The Hub's base URL, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CDN's origin (`http://127.0.0.2:PORT` on Linux).
    pub fn cdn_origin(&self) -> &str {
        &self.state.cdn_origin
    }

    /// Repo `id` as served.
    pub fn repo(&self, id: &str) -> Option<&HubRepo> {
        self.state.repos.iter().find(|r| r.id == id)
    }

    /// The next transfer of `file` of `id`'s default branch (whichever host
    /// serves it, whatever range it starts at) sends its headers, then stops
    /// after byte `after` of the file and closes the connection: a download
    /// interrupted half-way. Once; later transfers are whole.
    pub fn fail_once_after(&self, id: &str, file: &str, after: u64) -> io::Result<()> {
        let found = self
            .repo(id)
            .and_then(|r| r.file(r.resolve("main")?, file))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{id} has no {file}"))
            })?;
        *lock(&self.state.cut) = Some(Cut {
            sha256: found.sha256.clone(),
            after,
        });
        Ok(())
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.state.log).clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        for (addr, thread) in self.threads.drain(..) {
            // Wake the blocking accept so it sees the stop flag.
            let _ = TcpStream::connect(&addr);
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, host: Host, state: Arc<State>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("hub-server-{host:?}"))
        .spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&state);
                // A connection's failure (a client that hangs up) only ends
                // that connection.
                let _ = std::thread::Builder::new()
                    .name("hub-server-conn".to_owned())
                    .spawn(move || {
                        let _ = serve_connection(stream, host, &state);
                    });
            }
        })
}

/// A parsed request: method, target, lower-cased header names.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.take(64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    Ok(Request {
        method,
        target,
        headers,
    })
}

/// What to send back.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

#[derive(Debug, Default)]
enum Body {
    #[default]
    Empty,
    Text(Vec<u8>),
    /// `bytes[start..end]` of a served file (whose sha256 is given, for cuts).
    File {
        bytes: Arc<Vec<u8>>,
        sha256: String,
        start: u64,
        end: u64,
    },
}

impl Answer {
    fn new(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn text(mut self, content_type: &str, text: impl Into<String>) -> Self {
        self.body = Body::Text(text.into().into_bytes());
        self.header("Content-Type", content_type)
    }

    /// A Hub error: status, `X-Error-Code` (if any), `X-Error-Message` and
    /// the same message as a JSON body, as the Hub sends them.
    fn hub_error(status: u16, code: Option<&str>, message: &str) -> Self {
        let mut answer = Self::new(status);
        if let Some(code) = code {
            answer = answer.header("X-Error-Code", code);
        }
        let body = serde_json::json!({ "error": message }).to_string();
        answer
            .header("X-Error-Message", message)
            .text("application/json; charset=utf-8", body)
    }
}

fn serve_connection(mut stream: TcpStream, host: Host, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&stream)?;
    if state.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let answer = match host {
        Host::Hub => hub_answer(&request, state),
        Host::Cdn => cdn_answer(&request, state),
    };
    let (body, cut) = plan_body(&request, &answer, state);
    // Logged before the answer goes out: a client that has its answer (and
    // a test that then reads the log) never finds the request missing.
    lock(&state.log).push(Logged {
        host,
        method: request.method.clone(),
        target: request.target.clone(),
        range: request.header("range").map(str::to_owned),
        authorization: request.header("authorization").map(str::to_owned),
        status: answer.status,
        body_bytes: body.len() as u64,
        cut,
    });
    // A client that hangs up early is its own business.
    let _ = write_answer(&mut stream, &answer, body);
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// The body bytes to send for `request` (none for `HEAD`), and whether a
/// pending cut for the file ([`HubServer::fail_once_after`]) shortens
/// them; the cut is used up here.
fn plan_body<'a>(request: &Request, answer: &'a Answer, state: &State) -> (&'a [u8], bool) {
    if request.method == "HEAD" {
        return (&[], false);
    }
    match &answer.body {
        Body::Empty => (&[], false),
        Body::Text(text) => (text, false),
        Body::File {
            bytes,
            sha256,
            start,
            end,
        } => {
            let slice = bytes
                .get(*start as usize..*end as usize)
                .unwrap_or_default();
            let mut pending = lock(&state.cut);
            match pending.as_ref() {
                Some(c) if &c.sha256 == sha256 && *start <= c.after && c.after < *end => {
                    let keep = (c.after - start) as usize;
                    *pending = None;
                    (&slice[..keep.min(slice.len())], true)
                }
                _ => (slice, false),
            }
        }
    }
}

/// Writes the status line, the headers (`Content-Length` as the answer
/// says, or the body's length), then `body`, which a cut makes shorter
/// than `Content-Length`.
fn write_answer(stream: &mut TcpStream, answer: &Answer, body: &[u8]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !answer.headers.iter().any(|(n, _)| n == "Content-Length") {
        let full = match &answer.body {
            Body::Empty => 0,
            Body::Text(text) => text.len(),
            Body::File { start, end, .. } => (end - start) as usize,
        };
        head.push_str(&format!("Content-Length: {full}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Unknown",
    }
}

/// Decodes `%XX` escapes (the revision and file name in a resolve URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value or path segment.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token of an `Authorization: Bearer` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?;
    Some(value.strip_prefix("Bearer ").unwrap_or(value).trim())
}

/// Who the caller is: anonymous, a valid token, or an invalid one (which
/// the Hub refuses outright, whatever the repo).
enum Caller<'a> {
    Anonymous,
    Token(&'a str),
}

fn caller<'a>(request: &'a Request, state: &State) -> Result<Caller<'a>, Answer> {
    let Some(token) = bearer(request) else {
        return Ok(Caller::Anonymous);
    };
    let known = state
        .repos
        .iter()
        .any(|r| r.gate_token.as_deref() == Some(token));
    if known {
        Ok(Caller::Token(token))
    } else {
        Err(Answer::hub_error(
            401,
            None,
            "Invalid credentials in Authorization header",
        ))
    }
}

/// The repo `id`, if the caller may read it; otherwise the Hub's answer.
fn readable_repo<'a>(id: &str, request: &Request, state: &'a State) -> Result<&'a HubRepo, Answer> {
    let who = caller(request, state)?;
    let Some(repo) = state.repos.iter().find(|r| r.id == id) else {
        return Err(match who {
            Caller::Anonymous => {
                Answer::hub_error(401, Some("RepoNotFound"), "Repository not found")
            }
            Caller::Token(_) => {
                Answer::hub_error(404, Some("RepoNotFound"), "Repository not found")
            }
        });
    };
    match (&repo.gate_token, who) {
        (None, _) => Ok(repo),
        (Some(t), Caller::Token(given)) if t == given => Ok(repo),
        (Some(_), Caller::Anonymous) => Err(Answer::hub_error(
            401,
            Some("GatedRepo"),
            &format!(
                "Access to model {id} is restricted. You must have access to it and be authenticated to access it. Please log in."
            ),
        )),
        (Some(_), Caller::Token(_)) => Err(Answer::hub_error(
            403,
            Some("GatedRepo"),
            &format!(
                "Access to model {id} is restricted and you are not in the authorized list. Visit {}/{id} to ask for access.",
                "https://huggingface.co"
            ),
        )),
    }
}

fn hub_answer(request: &Request, state: &State) -> Answer {
    if request.method != "GET" && request.method != "HEAD" {
        return Answer::new(405).text("text/plain", "Method Not Allowed");
    }
    let path = request.target.split('?').next().unwrap_or("");
    if let Some(rest) = path.strip_prefix("/api/models/") {
        if let Some((repo, rest)) = rest.split_once("/tree/") {
            return tree_answer(&percent_decode(repo), rest, request, state);
        }
        return api_answer(rest, request, state);
    }
    match path.trim_start_matches('/').split_once("/resolve/") {
        Some((repo, rest)) => resolve_answer(&percent_decode(repo), rest, request, state),
        None => Answer::new(404).text("text/plain", "Not Found"),
    }
}

/// `/api/models/{repo}[/revision/{revision}]`.
fn api_answer(rest: &str, request: &Request, state: &State) -> Answer {
    let (repo_id, revision) = match rest.split_once("/revision/") {
        Some((repo, rev)) => (percent_decode(repo), percent_decode(rev)),
        None => (
            percent_decode(rest.trim_end_matches('/')),
            "main".to_owned(),
        ),
    };
    let repo = match readable_repo(&repo_id, request, state) {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    let Some(sha) = repo.resolve(&revision) else {
        return Answer::hub_error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {revision}"),
        );
    };
    let siblings: Vec<serde_json::Value> = repo
        .files(sha)
        .into_iter()
        .flat_map(|files| files.keys())
        .map(|name| serde_json::json!({ "rfilename": name }))
        .collect();
    let (author, _) = repo_id.split_once('/').unwrap_or(("", ""));
    let body = serde_json::json!({
        "_id": repo.git_oid_of_id(),
        "id": repo_id,
        "modelId": repo_id,
        "author": author,
        "sha": sha,
        "private": false,
        "gated": if repo.gate_token.is_some() { serde_json::json!("manual") } else { serde_json::json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    });
    Answer::new(200).text("application/json; charset=utf-8", body.to_string())
}

/// `/api/models/{repo}/tree/{revision}[/{path}][?recursive=true]`: the
/// listing `snapshot_download` (huggingface_hub 1.x and later) reads; `rest`
/// is `{revision}[/{path}]`, still percent-encoded. One page: the Hub pages
/// with a `Link` header only past 1,000 entries.
fn tree_answer(repo_id: &str, rest: &str, request: &Request, state: &State) -> Answer {
    let repo = match readable_repo(repo_id, request, state) {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    let (revision, dir) = match rest.split_once('/') {
        Some((rev, dir)) => (percent_decode(rev), percent_decode(dir)),
        None => (percent_decode(rest), String::new()),
    };
    let dir = dir.trim_matches('/').to_owned();
    let Some(sha) = repo.resolve(&revision) else {
        return Answer::hub_error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {revision}"),
        );
    };
    let recursive = request.target.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv == "recursive=true" || kv == "recursive=1")
    });
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (name, file) in repo.files(sha).into_iter().flatten() {
        let Some(below) = name.strip_prefix(&prefix) else {
            continue;
        };
        // Every folder between `dir` and the file is an entry of its own.
        let parts: Vec<&str> = below.split('/').collect();
        let depth = if recursive {
            parts.len() - 1
        } else {
            parts.len().min(2) - 1
        };
        for i in 1..=depth {
            dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
        }
        if !recursive && parts.len() > 1 {
            continue;
        }
        let mut entry = serde_json::json!({
            "type": "file",
            "oid": file.git_oid,
            "size": file.bytes.len(),
            "path": name,
        });
        if file.lfs {
            entry["lfs"] = serde_json::json!({
                "oid": file.sha256,
                "size": file.bytes.len(),
                "pointerSize": lfs_pointer(file).len(),
            });
        }
        entries.push(entry);
    }
    if !dir.is_empty() && entries.is_empty() && dirs.is_empty() {
        return Answer::hub_error(
            404,
            Some("EntryNotFound"),
            &format!("{dir} does not exist on \"{revision}\""),
        );
    }
    for d in dirs {
        entries.push(serde_json::json!({
            "type": "directory",
            "oid": git_blob_oid(d.as_bytes()),
            "size": 0,
            "path": d,
        }));
    }
    Answer::new(200).text(
        "application/json; charset=utf-8",
        serde_json::Value::Array(entries).to_string(),
    )
}

impl HubRepo {
    /// A stable id for the repo info's `_id` (the Hub's is a database id).
    fn git_oid_of_id(&self) -> String {
        git_blob_oid(self.id.as_bytes())[..24].to_owned()
    }
}

/// `/{repo}/resolve/{revision}/{file}`: `rest` is `{revision}/{file}`,
/// still percent-encoded.
fn resolve_answer(repo_id: &str, rest: &str, request: &Request, state: &State) -> Answer {
    let repo = match readable_repo(repo_id, request, state) {
        Ok(repo) => repo,
        Err(answer) => return answer,
    };
    let (revision, file) = match rest.split_once('/') {
        Some((rev, file)) => (percent_decode(rev), percent_decode(file)),
        None => (percent_decode(rest), String::new()),
    };
    let Some(sha) = repo.resolve(&revision) else {
        return Answer::hub_error(
            404,
            Some("RevisionNotFound"),
            &format!("Invalid rev id: {revision}"),
        );
    };
    let Some(found) = repo.file(sha, &file) else {
        return Answer::hub_error(404, Some("EntryNotFound"), "Entry not found")
            .header("X-Repo-Commit", sha);
    };
    if found.lfs {
        // The Hub answers LFS files with a redirect to a signed CDN URL,
        // carrying the file's metadata on the redirect itself.
        let location = format!(
            "{}/lfs/{}?filename={}&signature={}",
            state.cdn_origin,
            found.sha256,
            percent_encode(file.rsplit('/').next().unwrap_or(&file)),
            state.secret
        );
        let body = format!("Found. Redirecting to {location}");
        return Answer::new(302)
            .header("Location", location)
            .header("X-Repo-Commit", sha)
            .header("X-Linked-Etag", format!("\"{}\"", found.sha256))
            .header("X-Linked-Size", found.bytes.len().to_string())
            .header("ETag", format!("\"{}\"", found.git_oid))
            .header("Accept-Ranges", "bytes")
            .text("text/plain; charset=utf-8", body);
    }
    file_answer(found, request, content_type(&file))
        .header("X-Repo-Commit", sha)
        .header("ETag", format!("\"{}\"", found.git_oid))
}

/// The CDN: `/lfs/{sha256}?filename=..&signature=..`.
fn cdn_answer(request: &Request, state: &State) -> Answer {
    if request.method != "GET" && request.method != "HEAD" {
        return Answer::new(405).text("text/plain", "Method Not Allowed");
    }
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(percent_decode)
    };
    if param("signature").as_deref() != Some(state.secret.as_str()) {
        return Answer::new(403).text(
            "application/xml",
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
    }
    let Some(sha256) = path.strip_prefix("/lfs/") else {
        return Answer::new(404).text("text/plain", "Not Found");
    };
    let found = state
        .repos
        .iter()
        .flat_map(|r| r.commits.values())
        .flat_map(|files| files.values())
        .find(|f| f.lfs && f.sha256 == sha256);
    let Some(found) = found else {
        return Answer::new(404).text(
            "application/xml",
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        );
    };
    let filename = param("filename").unwrap_or_else(|| sha256.to_owned());
    file_answer(found, request, "application/octet-stream")
        .header("ETag", format!("\"{}\"", found.sha256))
        .header(
            "Content-Disposition",
            format!(
                "attachment; filename*=UTF-8''{}; filename=\"{}\";",
                percent_encode(&filename),
                filename.replace('"', "")
            ),
        )
}

/// The content of `file`, whole (`200`) or the requested range (`206`,
/// `416` when it starts past the end).
fn file_answer(file: &HubFile, request: &Request, content_type: &str) -> Answer {
    let size = file.bytes.len() as u64;
    let range = request.header("range").and_then(|r| parse_range(r, size));
    let (status, start, end) = match range {
        None => (200, 0, size),
        Some(Ok((start, end))) => (206, start, end),
        Some(Err(())) => {
            return Answer::new(416)
                .header("Content-Range", format!("bytes */{size}"))
                .text("text/plain", "Range Not Satisfiable");
        }
    };
    let mut answer = Answer::new(status)
        .header("Content-Type", content_type)
        .header("Accept-Ranges", "bytes")
        .header("Content-Length", (end - start).to_string());
    if status == 206 {
        answer = answer.header(
            "Content-Range",
            format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        );
    }
    answer.body = Body::File {
        bytes: Arc::clone(&file.bytes),
        sha256: file.sha256.clone(),
        start,
        end,
    };
    answer
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` as the half-open `[start, end)`;
/// `None` for what is ignored (not bytes, several ranges: the whole file is
/// sent, as HTTP allows), `Err` for a range past the end.
fn parse_range(value: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        return Some(Ok((size.saturating_sub(n), size)));
    }
    let start: u64 = a.parse().ok()?;
    if start >= size {
        return Some(Err(()));
    }
    let end = if b.is_empty() {
        size
    } else {
        let last: u64 = b.parse().ok()?;
        if last < start {
            return None;
        }
        (last + 1).min(size)
    };
    Some(Ok((start, end)))
}

fn content_type(file: &str) -> &'static str {
    if file.ends_with(".json") {
        "application/json; charset=utf-8"
    } else if file.ends_with(".txt") || file.ends_with(".md") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// The variable naming a Python interpreter that has `huggingface_hub`
/// (`cargo xtask ci` installs one into a venv and sets it).
pub const HF_HUB_PYTHON_VAR: &str = "IPFS_ACCELERATE_HF_HUB_PYTHON";

/// A Python interpreter that imports `huggingface_hub`: the one
/// [`HF_HUB_PYTHON_VAR`] names, else `python3` on PATH if it has the
/// package; `Err` says why there is none.
pub fn hf_hub_python() -> Result<std::path::PathBuf, String> {
    let candidate = match std::env::var_os(HF_HUB_PYTHON_VAR) {
        Some(path) if !path.is_empty() => std::path::PathBuf::from(path),
        _ => std::path::PathBuf::from("python3"),
    };
    let probe = std::process::Command::new(&candidate)
        .args([
            "-c",
            "import huggingface_hub; print(huggingface_hub.__version__)",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(candidate),
        Ok(out) => Err(format!(
            "{} cannot import huggingface_hub ({}); set {HF_HUB_PYTHON_VAR} to a Python that has it",
            candidate.display(),
            String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("")
        )),
        Err(e) => Err(format!(
            "cannot run {} ({e}); set {HF_HUB_PYTHON_VAR} to a Python that has huggingface_hub",
            candidate.display()
        )),
    }
}

/// [`hf_hub_python`], or `None` after reporting the skip of `test`.
pub fn hf_hub_python_or_skip(test: &str) -> Option<std::path::PathBuf> {
    match hf_hub_python() {
        Ok(python) => Some(python),
        Err(reason) => {
            crate::skip(test, &reason);
            None
        }
    }
}

/// Runs `script` with `python` in a clean environment (PATH and
/// `env`; no inherited `HF_*`), expecting one JSON object as the last line
/// of stdout. `Err` carries the exit status and stderr.
pub fn run_python(
    python: &Path,
    script: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<serde_json::Value, String> {
    let mut cmd = std::process::Command::new(python);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // No progress bars or telemetry in the output we parse.
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .args(["-c", script]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("python exited with {}:\n{stderr}", out.status));
    }
    let last = stdout.trim().lines().last().unwrap_or("");
    serde_json::from_str(last)
        .map_err(|e| format!("python printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Git's object id of a blob: `sha1("blob <len>\0" + content)`, hex.
pub fn git_blob_oid(content: &[u8]) -> String {
    let mut data = format!("blob {}\0", content.len()).into_bytes();
    data.extend_from_slice(content);
    hex::encode(sha1(&data))
}

/// SHA-1 (FIPS 180-4), only for git blob ids: the Hub's `ETag` of a
/// regular file, which clients name blobs after. Not for security.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answers() {
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // Two blocks.
        assert_eq!(
            hex::encode(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        // `git hash-object` of "hello\n".
        assert_eq!(
            git_blob_oid(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Some(Ok((0, 1))));
        assert_eq!(parse_range("bytes=4-", 10), Some(Ok((4, 10))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 10))));
        assert_eq!(parse_range("bytes=2-100", 10), Some(Ok((2, 10))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,4-5", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("refs%2Fpr%2F1"), "refs/pr/1");
        assert_eq!(percent_decode("a%zz%"), "a%zz%");
        assert_eq!(percent_encode("refs/pr 1"), "refs%2Fpr%201");
    }
}
