//! Parsing of boolean environment values.

/// How an environment value reads as a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `1`, `true`, `yes`, `on` in any case.
    True,
    /// `0`, `false`, `no`, `off` or empty, in any case.
    False,
    /// Anything else: treated as false and reported.
    Malformed,
}

/// Reads a value as a boolean flag; surrounding whitespace is ignored.
pub fn parse_flag(value: &str) -> Flag {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Flag::True,
        "" | "0" | "false" | "no" | "off" => Flag::False,
        _ => Flag::Malformed,
    }
}

/// Reads `name=value` as a flag; a malformed value reads as false and is
/// reported in `warnings`.
pub(crate) fn read_flag(name: &str, value: &str, warnings: &mut Vec<String>) -> bool {
    match parse_flag(value) {
        Flag::True => true,
        Flag::False => false,
        Flag::Malformed => {
            warnings.push(format!(
                "{name}={value:?} is not a boolean (1/true/yes/on or 0/false/no/off); read as false"
            ));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        for v in ["1", "true", "TRUE", "Yes", "on", " on "] {
            assert_eq!(parse_flag(v), Flag::True, "{v}");
        }
        for v in ["0", "false", "No", "OFF", ""] {
            assert_eq!(parse_flag(v), Flag::False, "{v}");
        }
        for v in ["2", "enable", "y"] {
            assert_eq!(parse_flag(v), Flag::Malformed, "{v}");
        }
    }
}
