//! Version gates: `transformers < 4.31`, `onnx_opset >= 18`,
//! `onnxruntime >= 1.20, < 1.32`, or `any`. A gate names what it compares
//! (a [`Versions`] key) and one or more comparisons that must all hold.

use crate::{PatchError, Version};
use serde::Serialize;
use std::collections::BTreeMap;

/// The `transformers_version` a checkpoint's `config.json` records.
pub const TRANSFORMERS: &str = "transformers";
/// The ONNX opset of a graph (default domain).
pub const ONNX_OPSET: &str = "onnx_opset";
/// The ONNX Runtime version that will run a graph.
pub const ONNX_RUNTIME: &str = "onnxruntime";

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    const ALL: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(s, _)| s)
    }

    fn holds(self, found: &Version, bound: &Version) -> bool {
        match self {
            Op::Lt => found < bound,
            Op::Le => found <= bound,
            Op::Gt => found > bound,
            Op::Ge => found >= bound,
            Op::Eq => found == bound,
            Op::Ne => found != bound,
        }
    }
}

/// What a gate says about a set of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    /// Every comparison holds.
    Pass,
    /// A comparison fails: the patch is not for this version.
    Fail,
    /// The version the gate compares is not known (e.g. a `config.json`
    /// without `transformers_version`).
    Unknown,
}

/// A version gate. The default is `any`: no version condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionGate {
    /// `None` for `any`.
    subject: Option<String>,
    clauses: Vec<(Op, Version)>,
}

impl VersionGate {
    /// The gate that always passes.
    pub fn any() -> Self {
        Self::default()
    }

    /// Parses `any` or `SUBJECT OP VERSION[, OP VERSION...]`.
    pub fn parse(text: &str) -> Result<Self, PatchError> {
        let err = |reason: &str| PatchError::Gate {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text_t = text.trim();
        if text_t.eq_ignore_ascii_case("any") {
            return Ok(Self::any());
        }
        let op_at = text_t
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| err("no comparison (<, <=, >, >=, ==, !=)"))?;
        let subject = text_t[..op_at].trim();
        if subject.is_empty() || subject.contains(char::is_whitespace) {
            return Err(err("expected one subject word before the comparison"));
        }
        let clauses = text_t[op_at..]
            .split(',')
            .map(|clause| {
                let clause = clause.trim();
                let (symbol, op) = Op::ALL
                    .iter()
                    .find(|(s, _)| clause.starts_with(s))
                    .ok_or_else(|| err(&format!("'{clause}' does not start with a comparison")))?;
                let version = Version::parse(&clause[symbol.len()..])?;
                Ok((*op, version))
            })
            .collect::<Result<Vec<_>, PatchError>>()?;
        Ok(Self {
            subject: Some(subject.to_owned()),
            clauses,
        })
    }

    /// What the gate compares (`None` for `any`).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Evaluates the gate against `versions`.
    pub fn evaluate(&self, versions: &Versions) -> GateOutcome {
        let Some(subject) = &self.subject else {
            return GateOutcome::Pass;
        };
        match versions.get(subject) {
            None => GateOutcome::Unknown,
            Some(found) if self.clauses.iter().all(|(op, v)| op.holds(found, v)) => {
                GateOutcome::Pass
            }
            Some(_) => GateOutcome::Fail,
        }
    }

    /// Whether a patch behind this gate may apply: it passes, or the version
    /// is unknown (then what the target holds decides, as transformers does
    /// for checkpoints that predate `transformers_version`).
    pub fn admits(&self, versions: &Versions) -> bool {
        self.evaluate(versions) != GateOutcome::Fail
    }
}

impl std::fmt::Display for VersionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(subject) = &self.subject else {
            return f.write_str("any");
        };
        let clauses: Vec<String> = self
            .clauses
            .iter()
            .map(|(op, v)| format!("{} {v}", op.symbol()))
            .collect();
        write!(f, "{subject} {}", clauses.join(", "))
    }
}

impl Serialize for VersionGate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for VersionGate {
    type Err = PatchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The versions gates are evaluated against, by subject.
#[derive(Debug, Clone, Default)]
pub struct Versions(BTreeMap<String, Version>);

impl Versions {
    /// No version known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `subject`'s version.
    pub fn with(mut self, subject: &str, version: Version) -> Self {
        self.0.insert(subject.to_owned(), version);
        self
    }

    /// `transformers` from a `config.json`'s `transformers_version`; a value
    /// that is not a version is reported and left unknown.
    pub fn from_config(config: &serde_json::Value) -> Self {
        let mut versions = Self::new();
        if let Some(text) = config.get("transformers_version").and_then(|v| v.as_str()) {
            match Version::parse(text) {
                Ok(v) => versions = versions.with(TRANSFORMERS, v),
                Err(e) => tracing::warn!(
                    "config.json: {e}; version gates on transformers see it as unknown"
                ),
            }
        }
        versions
    }

    /// The version of `subject`, if known.
    pub fn get(&self, subject: &str) -> Option<&Version> {
        self.0.get(subject)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tf(v: &str) -> Versions {
        Versions::new().with(TRANSFORMERS, Version::parse(v).unwrap())
    }

    #[test]
    fn parses_evaluates_and_prints() {
        let gate = VersionGate::parse("transformers < 4.31").unwrap();
        assert_eq!(gate.to_string(), "transformers < 4.31");
        assert_eq!(gate.evaluate(&tf("4.30.2")), GateOutcome::Pass);
        assert_eq!(gate.evaluate(&tf("4.31.0.dev0")), GateOutcome::Pass);
        assert_eq!(gate.evaluate(&tf("4.31.0")), GateOutcome::Fail);
        assert_eq!(gate.evaluate(&Versions::new()), GateOutcome::Unknown);
        assert!(gate.admits(&Versions::new()));
        assert!(!gate.admits(&tf("4.57.6")));

        let range = VersionGate::parse("onnx_opset>=13,<18").unwrap();
        assert_eq!(range.to_string(), "onnx_opset >= 13, < 18");
        let opset = |n: &str| Versions::new().with(ONNX_OPSET, Version::parse(n).unwrap());
        assert_eq!(range.evaluate(&opset("17")), GateOutcome::Pass);
        assert_eq!(range.evaluate(&opset("18")), GateOutcome::Fail);
        assert_eq!(range.evaluate(&opset("12")), GateOutcome::Fail);

        assert_eq!(VersionGate::parse("any").unwrap(), VersionGate::any());
        assert_eq!(
            VersionGate::any().evaluate(&Versions::new()),
            GateOutcome::Pass
        );
    }

    #[test]
    fn refuses_malformed_gates() {
        for bad in [
            "transformers",
            "< 4.31",
            "transformers ~ 4",
            "a b < 1",
            "x < y",
        ] {
            assert!(VersionGate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_config_version() {
        let config = serde_json::json!({"transformers_version": "4.30.0.dev0"});
        let versions = Versions::from_config(&config);
        assert_eq!(versions.get(TRANSFORMERS).unwrap().as_str(), "4.30.0.dev0");
        assert!(Versions::from_config(&serde_json::json!({}))
            .get(TRANSFORMERS)
            .is_none());
    }
}
