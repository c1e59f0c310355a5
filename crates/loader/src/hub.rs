//! The Hub as origin, through `hf-hub`.

use ipfs_accelerate_gating::{parse_flag, Flag};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// How to reach the Hub: `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// Base URL (default `https://huggingface.co`).
    pub endpoint: String,
    /// Bearer token.
    pub token: Option<String>,
    /// Never touch the network.
    pub offline: bool,
}

impl HubSettings {
    /// Reads the `HF_*` variables through `env`.
    pub fn from_env_fn(env: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            endpoint: env("HF_ENDPOINT")
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| "https://huggingface.co".to_owned()),
            token: env("HF_TOKEN").filter(|v| !v.is_empty()),
            offline: env("HF_HUB_OFFLINE").is_some_and(|v| parse_flag(&v) == Flag::True),
        }
    }

    /// Downloads `file` of `id@revision` into the hub cache at `hub_dir`
    /// (same layout as Python's), returning the snapshot path.
    pub(crate) fn download(
        &self,
        hub_dir: &Path,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<PathBuf, hf_hub::api::sync::ApiError> {
        use hf_hub::api::sync::ApiBuilder;
        use hf_hub::{Cache, Repo, RepoType};
        let cache = Cache::new(hub_dir.to_path_buf());
        let mut builder = ApiBuilder::from_cache(cache)
            .with_endpoint(self.endpoint.clone())
            .with_progress(std::io::stderr().is_terminal());
        if self.token.is_some() {
            builder = builder.with_token(self.token.clone());
        }
        let api = builder.build()?;
        let repo = Repo::with_revision(id.to_owned(), RepoType::Model, revision.to_owned());
        api.repo(repo).download(file)
    }

    /// Why the Hub refused `file` of `id@revision`, in words a user can act
    /// on. `hf-hub` reports only "http status: 401"; the Hub names the
    /// reason in `X-Error-Code` / `X-Error-Message`, which one `HEAD` of the
    /// same URL reads. `None` when the Hub says nothing more.
    pub(crate) fn explain_refusal(&self, id: &str, revision: &str, file: &str) -> Option<String> {
        let url = format!(
            "{}/{id}/resolve/{}/{file}",
            self.endpoint,
            revision.replace('/', "%2F")
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        let mut request = agent.head(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call().ok()?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let code = header("x-error-code");
        let message = header("x-error-message").unwrap_or_default();
        let status = response.status().as_u16();
        let token_hint = if self.token.is_some() {
            "the HF_TOKEN given has no access to it"
        } else {
            "set HF_TOKEN to a token that has access"
        };
        Some(match (code.as_deref(), status) {
            (Some("GatedRepo"), _) => format!("{id} is a gated repository: {token_hint}"),
            (Some("RepoNotFound"), _) => {
                format!("repository {id} not found (or private: {token_hint})")
            }
            (Some("RevisionNotFound"), _) => format!("revision '{revision}' of {id} not found"),
            (Some("EntryNotFound"), _) => format!("{file} is not in {id}@{revision}"),
            (_, 401) if message.contains("credentials") => {
                format!("the Hub refused HF_TOKEN: {message}")
            }
            (_, 401 | 403) => format!("access to {id} refused: {token_hint}"),
            (Some(code), _) => format!("{code}: {message}"),
            (None, _) => return None,
        })
    }
}
