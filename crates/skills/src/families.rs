//! The family table: every model family this build runs, one row each.
//! The registry (`config.json` → skill), each task's dispatch to its
//! networks, the `architectures` lookup, the model-status matrix and the
//! benches all read this list. A family's `model_type` string is written
//! once, as `MODEL_TYPE` in its model file; this table and the exporter
//! name the constant.
//!
//! Adding a family to an existing task is one model file in
//! `ipfs-accelerate-models` and one row here (README, "Adding a model
//! family").

use crate::text_generation::BuildCausalLm;
use crate::{similarity, speech_recognition, SkillKind};
use ipfs_accelerate_models::{
    bert, clap, clip, gpt2, llama, llava, opt, parse_config, t5, wav2vec2, whisper, xclip,
};

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
    /// The task it runs, with what that task needs from it. Its tiny
    /// reference model is `fixtures/models/<model_type>/` (tests, matrix,
    /// benches).
    pub(crate) task: Task,
}

/// Every family, in the order `supported` lists them. A config without a
/// known `model_type` takes the family with the longest `architecture`
/// prefix its `architectures` start with (`LlavaNext` over `Llava`).
pub(crate) const FAMILIES: &[Family] = &[
    Family {
        model_type: bert::MODEL_TYPE,
        architecture: "Bert",
        task: Task::TextEmbedding,
    },
    Family {
        model_type: gpt2::MODEL_TYPE,
        architecture: "GPT2",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(gpt2::Gpt2::load(vb, &parse_config(config)?)?))
        }),
    },
    Family {
        model_type: opt::MODEL_TYPE,
        architecture: "OPT",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(opt::Opt::load(vb, &parse_config(config)?)?))
        }),
    },
    Family {
        model_type: llama::MODEL_TYPE,
        architecture: "Llama",
        task: Task::TextGeneration(|config, vb| {
            Ok(Box::new(llama::Llama::load(vb, &parse_config(config)?)?))
        }),
    },
    Family {
        model_type: t5::MODEL_TYPE,
        architecture: "T5",
        task: Task::Text2Text,
    },
    Family {
        model_type: whisper::MODEL_TYPE,
        architecture: "Whisper",
        task: Task::SpeechRecognition(speech_recognition::Family::Whisper),
    },
    Family {
        model_type: wav2vec2::MODEL_TYPE,
        architecture: "Wav2Vec2",
        task: Task::SpeechRecognition(speech_recognition::Family::Ctc),
    },
    Family {
        model_type: clip::MODEL_TYPE,
        architecture: "CLIPModel",
        task: Task::Similarity(similarity::Family::Clip),
    },
    Family {
        model_type: clap::MODEL_TYPE,
        architecture: "ClapModel",
        task: Task::Similarity(similarity::Family::Clap),
    },
    Family {
        model_type: xclip::MODEL_TYPE,
        architecture: "XCLIPModel",
        task: Task::Similarity(similarity::Family::XClip),
    },
    Family {
        model_type: llava::MODEL_TYPE,
        architecture: "Llava",
        task: Task::ImageToText,
    },
    Family {
        model_type: llava::NEXT_MODEL_TYPE,
        architecture: "LlavaNext",
        task: Task::ImageToText,
    },
];

/// What the outside sees of one family: its names, its skill and its
/// reference fixture (`status --json` lists these as `families`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FamilyInfo {
    /// `config.json`'s `model_type`.
    pub model_type: &'static str,
    /// The prefix of its `architectures` entries.
    pub architecture: &'static str,
    /// The skill that runs it.
    #[serde(serialize_with = "skill_name")]
    pub skill: SkillKind,
    /// Its reference model's folder under `fixtures/models/`: the
    /// `model_type`.
    pub fixture: &'static str,
    /// For similarity families, the media they compare texts with
    /// (`image`, `audio`, `video`).
    pub media: Option<&'static str>,
    /// For speech families, how they decode: `generate` (Whisper) or `ctc`.
    pub decoding: Option<&'static str>,
}

fn skill_name<S: serde::Serializer>(skill: &SkillKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(skill.name())
}

/// Every family this build runs.
pub fn families() -> impl Iterator<Item = FamilyInfo> {
    FAMILIES.iter().map(|f| FamilyInfo {
        model_type: f.model_type,
        architecture: f.architecture,
        skill: f.task.skill(),
        fixture: f.model_type,
        media: match f.task {
            Task::Similarity(family) => Some(family.media()),
            _ => None,
        },
        decoding: match f.task {
            Task::SpeechRecognition(family) => Some(family.decoding()),
            _ => None,
        },
    })
}
