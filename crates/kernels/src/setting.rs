//! The switches between our kernels and a library's own: each is an
//! environment variable holding `ours` (the default) or the library's name,
//! and anything else is an error, never ignored.

/// A kernel switch holds neither `ours` nor the library's name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}={value:?} is neither \"ours\" nor \"{library}\"")]
pub struct KernelsSettingError {
    /// The environment variable.
    pub variable: &'static str,
    /// The other value it accepts (`candle`, `ggml`).
    pub library: &'static str,
    /// What it held.
    pub value: String,
}

/// Whether `variable` asks for our kernels: unset or `ours` (any case) is
/// yes, `library` is no.
pub fn ours_wanted(
    variable: &'static str,
    library: &'static str,
) -> Result<bool, KernelsSettingError> {
    match std::env::var(variable) {
        Ok(v) if v.eq_ignore_ascii_case(library) => Ok(false),
        Ok(v) if !v.eq_ignore_ascii_case("ours") => Err(KernelsSettingError {
            variable,
            library,
            value: v,
        }),
        _ => Ok(true),
    }
}
