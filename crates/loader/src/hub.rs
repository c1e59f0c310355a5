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
}
