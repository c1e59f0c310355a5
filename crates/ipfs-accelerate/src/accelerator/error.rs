//! Accelerator errors, each with the HTTP status a server should answer.

use ipfs_accelerate_loader::LoadError;
use ipfs_accelerate_media::PreprocessError;
use ipfs_accelerate_skills::SkillError;

/// Why an endpoint could not be added or a request not answered.
#[derive(Debug, thiserror::Error)]
pub enum AcceleratorError {
    /// The model could not be loaded or run.
    #[error(transparent)]
    Skill(#[from] SkillError),
    /// No endpoint serves this model.
    #[error("model '{model}' is not served (served: {})", if served.is_empty() { "none".to_owned() } else { served.join(", ") })]
    UnknownModel {
        /// What was asked for.
        model: String,
        /// What is served.
        served: Vec<String>,
    },
    /// The endpoint's queue is full.
    #[error("endpoint for '{0}' is busy: its queue is full, retry later")]
    Busy(String),
    /// The request does not fit the model's task.
    #[error("model '{model}' does not serve {task} requests (it serves {serves})")]
    WrongTask {
        /// The model.
        model: String,
        /// What was asked.
        task: &'static str,
        /// What it does.
        serves: &'static str,
    },
    /// The request is malformed (empty input, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The endpoint went away while the request waited.
    #[error("endpoint for '{0}' was removed")]
    Gone(String),
    /// A task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LoadError> for AcceleratorError {
    fn from(e: LoadError) -> Self {
        Self::Skill(SkillError::Load(e))
    }
}

impl AcceleratorError {
    /// The HTTP status this error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UnknownModel { .. } => 404,
            Self::Busy(_) => 429,
            Self::WrongTask { .. } | Self::InvalidRequest(_) => 400,
            Self::Skill(SkillError::InvalidInput(_)) => 400,
            // The request's media could not be used (too long for the
            // model's window, unreadable): the client's to fix.
            Self::Skill(SkillError::Media(_))
            | Self::Skill(SkillError::Preprocess(PreprocessError::Input(_))) => 400,
            Self::Gone(_) => 503,
            Self::Skill(_) | Self::Internal(_) => 500,
        }
    }
}
