//! An error and its causes as the one line users read (CLI and server).

/// `err` and its `source()` chain on one line, joined with `: `, without
/// repeating a cause that an outer message already contains (our errors
/// name their cause in their own text), white space folded.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(current) = cause {
        let text = current.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = current.source();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_causes_on_one_line() {
        let err = Outer(std::io::Error::other("inner\n  detail"));
        assert_eq!(error_line(&err), "outer: inner detail");
    }
}
