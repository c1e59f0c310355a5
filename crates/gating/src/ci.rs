//! Detection of the common CI systems from their marker variables.

use crate::truthy::read_flag;
use std::collections::BTreeMap;

/// Variables that CI systems set. `CI` and the boolean markers must read as
/// true; the others (URLs, build numbers, versions) count when non-empty.
pub const CI_MARKERS: &[(&str, MarkerKind)] = &[
    ("CI", MarkerKind::Boolean),
    ("CONTINUOUS_INTEGRATION", MarkerKind::Boolean),
    ("GITHUB_ACTIONS", MarkerKind::Boolean),
    ("GITLAB_CI", MarkerKind::Boolean),
    ("BUILDKITE", MarkerKind::Boolean),
    ("CIRCLECI", MarkerKind::Boolean),
    ("TRAVIS", MarkerKind::Boolean),
    ("TF_BUILD", MarkerKind::Boolean),
    ("APPVEYOR", MarkerKind::Boolean),
    ("DRONE", MarkerKind::Boolean),
    ("JENKINS_URL", MarkerKind::Present),
    ("TEAMCITY_VERSION", MarkerKind::Present),
    ("BITBUCKET_BUILD_NUMBER", MarkerKind::Present),
    ("CODEBUILD_BUILD_ID", MarkerKind::Present),
    ("BUILD_BUILDID", MarkerKind::Present),
];

/// How a CI marker's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// Must be a truthy value.
    Boolean,
    /// Any non-empty value counts.
    Present,
}

/// Returns `NAME=value` of the first marker that says "CI", if any.
pub(crate) fn detect(env: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Option<String> {
    for (name, kind) in CI_MARKERS {
        let Some(value) = env.get(*name) else {
            continue;
        };
        let is_ci = match kind {
            MarkerKind::Present => !value.trim().is_empty(),
            MarkerKind::Boolean => read_flag(name, value, warnings),
        };
        if is_ci {
            return Some(format!("{name}={value}"));
        }
    }
    None
}
