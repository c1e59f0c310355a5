//! Version numbers as Python packages and runtimes write them
//! (`4.31.0`, `4.31.0.dev0`, `4.38.0rc1`, `1.31.1`, `17`), ordered the way
//! PEP 440 orders them: `dev < a < b < rc < release < post`.

use crate::PatchError;
use std::cmp::Ordering;

/// A parsed version. Missing trailing components are zero: `4.31 == 4.31.0`.
#[derive(Debug, Clone)]
pub struct Version {
    release: Vec<u64>,
    /// (stage, number): dev -4, a -3, b -2, rc -1, final 0, post 1.
    stage: (i8, u64),
    text: String,
}

impl Version {
    /// Parses `text`; a local part (`+cu121`) is ignored, as PEP 440 does for ordering.
    pub fn parse(text: &str) -> Result<Self, PatchError> {
        let err = |reason: &str| PatchError::Version {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        let public = trimmed.split('+').next().unwrap_or_default();
        let public = public.strip_prefix('v').unwrap_or(public);
        let digits_end = public
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(public.len());
        let (numbers, suffix) = public.split_at(digits_end);
        let numbers = numbers.trim_end_matches('.');
        if numbers.is_empty() {
            return Err(err("it does not start with a number"));
        }
        let release = numbers
            .split('.')
            .map(|part| part.parse::<u64>().map_err(|_| err("empty component")))
            .collect::<Result<Vec<_>, _>>()?;
        let stage = parse_stage(suffix)
            .ok_or_else(|| err("unknown suffix (expected devN, aN, bN, rcN or postN)"))?;
        Ok(Self {
            release,
            stage,
            text: trimmed.to_owned(),
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `.dev0`, `rc1`, `-rc.1`, `a2`, `.post1`, or nothing.
fn parse_stage(suffix: &str) -> Option<(i8, u64)> {
    let s = suffix
        .trim_start_matches(['.', '-', '_'])
        .to_ascii_lowercase();
    if s.is_empty() {
        return Some((0, 0));
    }
    const STAGES: &[(&str, i8)] = &[
        ("dev", -4),
        ("alpha", -3),
        ("beta", -2),
        ("rc", -1),
        ("post", 1),
        ("a", -3),
        ("b", -2),
        ("c", -1),
    ];
    let (tag, stage) = STAGES.iter().find(|(tag, _)| s.starts_with(tag))?;
    let number = s[tag.len()..].trim_start_matches(['.', '-', '_']);
    let number = if number.is_empty() {
        0
    } else {
        number.parse().ok()?
    };
    Some((*stage, number))
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.release.len().max(other.release.len());
        let at = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        (0..len)
            .map(|i| at(&self.release, i).cmp(&at(&other.release, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(self.stage.cmp(&other.stage))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = PatchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_like_pep_440() {
        let ordered = [
            "4.30.2",
            "4.31.0.dev0",
            "4.31.0a1",
            "4.31.0b2",
            "4.31.0rc1",
            "4.31",
            "4.31.0.post1",
            "4.31.1",
            "4.100.0",
            "5",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("4.31"), v("4.31.0"));
        assert_eq!(v("v1.31.1+cu121"), v("1.31.1"));
        assert!(v("1.31.1-rc.1") < v("1.31.1"));
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for bad in ["", "abc", "4.x", "4.31.0zeta", "4..1"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
