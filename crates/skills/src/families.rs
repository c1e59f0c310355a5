//! The family table: every model family this build runs, one row each.
//! The registry (`config.json` → skill), each task's dispatch to its
//! networks, the `architectures` lookup, the model-status matrix and the
//! benches all read this list; a family's `model_type` is written here and
//! in its model file, nowhere else.
//!
//! Adding a family to an existing task is one model file in
//! `ipfs-accelerate-models` and one row here (README, "Adding a model
//! family").

use crate::text_generation::BuildCausalLm;
use crate::{similarity, speech_recognition, SkillKind};
use ipfs_accelerate_models::{gpt2, llama, opt, parse_config};

/// What a task needs from one family to run it.
#[derive(Clone, Copy)]
pub(crate) enum Task {
    /// Sentence embeddings (BERT-family encoders).
    TextEmbedding,
    /// A decoder-only language model, built from its config and weights.
    TextGeneration(BuildCausalLm),
    /// An encoder-decoder model (T5).
    Text2Text,
    /// Speech to text, by the family's decoding scheme.
    SpeechRecognition(speech_recognition::Family),
    /// Text–media similarity, by the media the family compares with.
    Similarity(similarity::Family),
    /// Text generation about an image (LLaVA, LLaVA-NeXT).
    ImageToText,
}

impl Task {
    /// The skill that runs this task.
    pub(crate) fn skill(self) -> SkillKind {
        match self {
            Self::TextEmbedding => SkillKind::TextEmbedding,
            Self::TextGeneration(_) => SkillKind::TextGeneration,
            Self::Text2Text => SkillKind::Text2Text,
            Self::SpeechRecognition(_) => SkillKind::SpeechRecognition,
            Self::Similarity(_) => SkillKind::Similarity,
            Self::ImageToText => SkillKind::ImageToText,
        }
    }
}

/// One model family.
#[derive(Clone, Copy)]
pub(crate) struct Family {
    /// `config.json`'s `model_type`.
    pub(crate) model_type: &'static str,
    /// The prefix of its `architectures` entries, for configs without a
    /// known `model_type`.
    pub(crate) architecture: &'static str,
    /// The task it runs, with what that task needs from it.
    pub(crate) task: Task,
    /// Its tiny reference model under `fixtures/models/` (tests, matrix,
    /// benches).
    pub(crate) fixture: &'static str,
}

/// Every family, in the order `supported` lists them. Where one
/// architecture prefix starts another (`Llava` / `LlavaNext`), the longer
/// comes first.
pub(crate) const FAMILIES: &[Family] = &[
    Family {
        model_type: "bert",
        architecture: "Bert",
        task: Task::TextEmbedding,
        fixture: "bert",
    },
    Family {
        model_type: "gpt2",
        architecture: "GPT2",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(gpt2::Gpt2::load(vb, &parse_config(config)?)?))
        }),
        fixture: "gpt2",
    },
    Family {
        model_type: "opt",
        architecture: "OPT",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(opt::Opt::load(vb, &parse_config(config)?)?))
        }),
        fixture: "opt",
    },
    Family {
        model_type: "llama",
        architecture: "Llama",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(llama::Llama::load(vb, &parse_config(config)?)?))
        }),
        fixture: "llama",
    },
    Family {
        model_type: "t5",
        architecture: "T5",
        task: Task::Text2Text,
        fixture: "t5",
    },
    Family {
        model_type: "whisper",
        architecture: "Whisper",
        task: Task::SpeechRecognition(speech_recognition::Family::Whisper),
        fixture: "whisper",
    },
    Family {
        model_type: "wav2vec2",
        architecture: "Wav2Vec2",
        task: Task::SpeechRecognition(speech_recognition::Family::Ctc),
        fixture: "wav2vec2",
    },
    Family {
        model_type: "clip",
        architecture: "CLIPModel",
        task: Task::Similarity(similarity::Family::Clip),
        fixture: "clip",
    },
    Family {
        model_type: "llava_next",
        architecture: "LlavaNext",
        task: Task::ImageToText,
        fixture: "llava_next",
    },
    Family {
        model_type: "llava",
        architecture: "Llava",
        task: Task::ImageToText,
        fixture: "llava",
    },
    Family {
        model_type: "xclip",
        architecture: "XCLIPModel",
        task: Task::Similarity(similarity::Family::XClip),
        fixture: "xclip",
    },
    Family {
        model_type: "clap",
        architecture: "ClapModel",
        task: Task::Similarity(similarity::Family::Clap),
        fixture: "clap",
    },
];

/// What the outside sees of one family: its names, its skill and its
/// reference fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyInfo {
    /// `config.json`'s `model_type`.
    pub model_type: &'static str,
    /// The prefix of its `architectures` entries.
    pub architecture: &'static str,
    /// The skill that runs it.
    pub skill: SkillKind,
    /// Its reference model's folder under `fixtures/models/`.
    pub fixture: &'static str,
    /// For similarity families, the media they compare texts with
    /// (`image`, `audio`, `video`).
    pub media: Option<&'static str>,
}

/// Every family this build runs.
pub fn families() -> impl Iterator<Item = FamilyInfo> {
    FAMILIES.iter().map(|f| FamilyInfo {
        model_type: f.model_type,
        architecture: f.architecture,
        skill: f.task.skill(),
        fixture: f.fixture,
        media: match f.task {
            Task::Similarity(family) => Some(family.media()),
            _ => None,
        },
    })
}
