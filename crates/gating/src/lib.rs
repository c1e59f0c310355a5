//! Cache gating: decides from environment variables whether model loading is
//! intercepted (routed through our storage), whether IPFS may be used, and
//! whether storage is forced local.
//!
//! [`Gate::decide`] is a pure function over an env map so every rule can be
//! tested over a table; [`Gate::from_env`] reads the process environment.
//! Every decision carries the reasons that made it.
//!
//! ```
//! use ipfs_accelerate_gating::Gate;
//!
//! let gate = Gate::decide([("GITHUB_ACTIONS", "true")]);
//! assert!(gate.ci && !gate.intercept);
//! assert!(gate.reasons.iter().any(|r| r.contains("GITHUB_ACTIONS")));
//!
//! let forced = Gate::decide([("CI", "1"), ("IPFS_ACCELERATE_FORCE_INTERCEPT", "yes")]);
//! assert!(forced.intercept);
//! ```

mod ci;
mod truthy;

use serde::Serialize;
use std::collections::BTreeMap;

pub use ci::{MarkerKind, CI_MARKERS};
pub use truthy::{parse_flag, Flag};

/// Disables interception (loading goes straight to the Hub cache) and the
/// checkpoint / config patches of the patches crate.
pub const TRANSFORMERS_PATCH_DISABLE: &str = "TRANSFORMERS_PATCH_DISABLE";
/// Disables IPFS, and with it interception.
pub const IPFS_KIT_DISABLE: &str = "IPFS_KIT_DISABLE";
/// Keeps storage local even when an IPFS node answers.
pub const STORAGE_FORCE_LOCAL: &str = "STORAGE_FORCE_LOCAL";
/// Intercepts even when a CI system is detected (so CI can test interception).
/// Explicit disables still win over it.
pub const FORCE_INTERCEPT: &str = "IPFS_ACCELERATE_FORCE_INTERCEPT";
/// Turns off exporting ONNX graphs from the weights on first use: an ONNX
/// backend then runs only the graphs a model ships (`--no-export` does the
/// same).
pub const NO_EXPORT: &str = "IPFS_ACCELERATE_NO_EXPORT";

/// The gate's decisions, each explained in `reasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    /// Route `from_pretrained` through our storage.
    pub intercept: bool,
    /// IPFS may be used (a node still has to answer for distributed mode).
    pub ipfs: bool,
    /// Storage is forced to local mode.
    pub force_local: bool,
    /// Checkpoint and config patches apply when models load.
    pub patches: bool,
    /// ONNX backends export a model without a graph on first use (and
    /// cache the graph).
    pub export: bool,
    /// A CI system was detected.
    pub ci: bool,
    /// Which variable made `ci` true, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_marker: Option<String>,
    /// One line per decision, e.g. `intercept=false: CI detected (GITHUB_ACTIONS=true)`.
    pub reasons: Vec<String>,
    /// Malformed values that were read as false.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Gate {
    /// Decides from the process environment.
    pub fn from_env() -> Self {
        Self::decide(std::env::vars())
    }

    /// Decides from an env map (pure; the basis of the tests).
    pub fn decide<I, K, V>(env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut warnings = Vec::new();
        let mut reasons = Vec::new();
        let mut flag = |name: &str| -> bool {
            env.get(name)
                .is_some_and(|value| truthy::read_flag(name, value, &mut warnings))
        };

        let patch_disabled = flag(TRANSFORMERS_PATCH_DISABLE);
        let ipfs_disabled = flag(IPFS_KIT_DISABLE);
        let force_local = flag(STORAGE_FORCE_LOCAL);
        let force_intercept = flag(FORCE_INTERCEPT);
        let no_export = flag(NO_EXPORT);
        let ci_marker = ci::detect(&env, &mut warnings);
        let ci = ci_marker.is_some();

        let ipfs = !ipfs_disabled;
        if ipfs_disabled {
            reasons.push(format!("ipfs=false: {IPFS_KIT_DISABLE} is set"));
        } else {
            reasons.push("ipfs=true: not disabled".to_owned());
        }

        let intercept = if patch_disabled {
            reasons.push(format!(
                "intercept=false: {TRANSFORMERS_PATCH_DISABLE} is set"
            ));
            false
        } else if ipfs_disabled {
            reasons.push(format!(
                "intercept=false: {IPFS_KIT_DISABLE} is set (no IPFS, so no interception)"
            ));
            false
        } else if let Some(marker) = &ci_marker {
            if force_intercept {
                reasons.push(format!(
                    "intercept=true: CI detected ({marker}) but {FORCE_INTERCEPT} is set"
                ));
                true
            } else {
                reasons.push(format!(
                    "intercept=false: CI detected ({marker}); set {FORCE_INTERCEPT}=1 to intercept anyway"
                ));
                false
            }
        } else {
            reasons.push("intercept=true: no disabling variable, no CI detected".to_owned());
            true
        };

        if force_local {
            reasons.push(format!("force_local=true: {STORAGE_FORCE_LOCAL} is set"));
        }
        // Only the explicit variable turns patches off: CI still needs them.
        if patch_disabled {
            reasons.push(format!(
                "patches=false: {TRANSFORMERS_PATCH_DISABLE} is set"
            ));
        }

        if no_export {
            reasons.push(format!("export=false: {NO_EXPORT} is set"));
        }

        Gate {
            intercept,
            ipfs,
            force_local,
            patches: !patch_disabled,
            export: !no_export,
            ci,
            ci_marker,
            reasons,
            warnings,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gate(pairs: &[(&str, &str)]) -> Gate {
        Gate::decide(pairs.iter().copied())
    }

    /// (env, intercept, ipfs, force_local, ci)
    type Case = (
        &'static [(&'static str, &'static str)],
        bool,
        bool,
        bool,
        bool,
    );

    #[test]
    fn table_of_env_maps() {
        let cases: &[Case] = &[
            (&[], true, true, false, false),
            (
                &[("TRANSFORMERS_PATCH_DISABLE", "1")],
                false,
                true,
                false,
                false,
            ),
            (
                &[("TRANSFORMERS_PATCH_DISABLE", "TRUE")],
                false,
                true,
                false,
                false,
            ),
            (
                &[("TRANSFORMERS_PATCH_DISABLE", "0")],
                true,
                true,
                false,
                false,
            ),
            (
                &[("TRANSFORMERS_PATCH_DISABLE", "maybe")],
                true,
                true,
                false,
                false,
            ),
            (&[("IPFS_KIT_DISABLE", "yes")], false, false, false, false),
            (&[("IPFS_KIT_DISABLE", "On")], false, false, false, false),
            (&[("STORAGE_FORCE_LOCAL", "on")], true, true, true, false),
            (&[("STORAGE_FORCE_LOCAL", "off")], true, true, false, false),
            (&[("CI", "true")], false, true, false, true),
            (&[("CI", "1")], false, true, false, true),
            (&[("CI", "false")], true, true, false, false),
            (&[("GITHUB_ACTIONS", "true")], false, true, false, true),
            (&[("GITLAB_CI", "true")], false, true, false, true),
            (
                &[("JENKINS_URL", "http://jenkins:8080/")],
                false,
                true,
                false,
                true,
            ),
            (&[("BUILDKITE", "true")], false, true, false, true),
            (&[("CIRCLECI", "true")], false, true, false, true),
            (&[("TRAVIS", "true")], false, true, false, true),
            (&[("TF_BUILD", "True")], false, true, false, true),
            (&[("TEAMCITY_VERSION", "2024.03")], false, true, false, true),
            (
                &[("BITBUCKET_BUILD_NUMBER", "17")],
                false,
                true,
                false,
                true,
            ),
            (
                &[("CI", "true"), ("IPFS_ACCELERATE_FORCE_INTERCEPT", "1")],
                true,
                true,
                false,
                true,
            ),
            (
                &[
                    ("CI", "true"),
                    ("IPFS_ACCELERATE_FORCE_INTERCEPT", "1"),
                    ("TRANSFORMERS_PATCH_DISABLE", "1"),
                ],
                false,
                true,
                false,
                true,
            ),
            (
                &[
                    ("IPFS_ACCELERATE_FORCE_INTERCEPT", "1"),
                    ("IPFS_KIT_DISABLE", "1"),
                ],
                false,
                false,
                false,
                false,
            ),
        ];
        for (env, intercept, ipfs, force_local, ci) in cases {
            let g = gate(env);
            assert_eq!(
                (g.intercept, g.ipfs, g.force_local, g.ci),
                (*intercept, *ipfs, *force_local, *ci),
                "env {env:?} gave {g:?}"
            );
            assert!(!g.reasons.is_empty());
        }
    }

    #[test]
    fn malformed_value_is_reported_not_fatal() {
        let g = gate(&[("STORAGE_FORCE_LOCAL", "perhaps")]);
        assert!(!g.force_local);
        assert_eq!(g.warnings.len(), 1);
        assert!(g.warnings[0].contains("STORAGE_FORCE_LOCAL"));
    }

    #[test]
    fn reasons_name_the_variable() {
        let g = gate(&[("GITHUB_ACTIONS", "true")]);
        assert!(g.reasons.iter().any(|r| r.contains("GITHUB_ACTIONS")));
        let g = gate(&[("TRANSFORMERS_PATCH_DISABLE", "1")]);
        assert!(!g.patches);
        assert!(gate(&[("CI", "1")]).patches);
        assert!(g
            .reasons
            .iter()
            .any(|r| r.contains("TRANSFORMERS_PATCH_DISABLE")));
    }
}
