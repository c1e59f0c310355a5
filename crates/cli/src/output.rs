//! Printing answers: JSON on stdout, or text for people.

use serde::Serialize;
use std::io::Write;

/// Prints `value` as one JSON object on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints lines for people on stdout.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// The error and its causes on one line, without repeating a cause that the
/// outer message already contains.
pub fn one_line_error(err: &anyhow::Error) -> String {
    ipfs_accelerate::error_line(err.as_ref())
}
