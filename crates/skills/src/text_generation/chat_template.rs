//! Chat templates: a prompt rendered as one user message through the
//! model's Jinja template (`tokenizer_config.json`'s `chat_template`, or a
//! GGUF file's `tokenizer.chat_template`), as `transformers`'
//! `apply_chat_template(..., add_generation_prompt=True)` renders it.

use super::{GenerateOptions, Generation, TextGenerator};
use crate::load::weights::one_line;
use crate::SkillError;
use ipfs_accelerate_loader::{Loader, ModelRef, ResolvedFile};
use minijinja::syntax::SyntaxConfig;
use minijinja::{context, Environment, Error, ErrorKind};
use serde_json::Value;

/// A model's chat template with the special tokens it may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// A template from its Jinja source and the model's BOS/EOS texts.
    pub fn new(source: &str, bos_token: Option<String>, eos_token: Option<String>) -> Self {
        Self {
            source: without_generation_markers(source),
            bos_token,
            eos_token,
        }
    }

    /// The template of a `tokenizer_config.json`: its `chat_template`
    /// string, or the one named `default` in a list of named templates.
    pub fn from_tokenizer_config(config: &Value) -> Option<Self> {
        let source = match config.get("chat_template")? {
            Value::String(source) => source.as_str(),
            Value::Array(named) => named.iter().find_map(|t| {
                (t.get("name")?.as_str()? == "default")
                    .then(|| t.get("template")?.as_str())
                    .flatten()
            })?,
            _ => return None,
        };
        // `bos_token` is a string or an AddedToken object with `content`.
        let token = |key: &str| -> Option<String> {
            match config.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
                _ => None,
            }
        };
        Some(Self::new(source, token("bos_token"), token("eos_token")))
    }

    /// The template of a processor's `chat_template.json`
    /// (`{"chat_template": "..."}`), with the tokenizer config's special
    /// tokens.
    pub fn from_processor_file(file: &Value, tokenizer_config: Option<&Value>) -> Option<Self> {
        let source = file.get("chat_template")?.as_str()?;
        let with_tokens = serde_json::json!({
            "chat_template": source,
            "bos_token": tokenizer_config.and_then(|c| c.get("bos_token")),
            "eos_token": tokenizer_config.and_then(|c| c.get("eos_token")),
        });
        Self::from_tokenizer_config(&with_tokens)
    }

    /// `content` as the single user message, followed by the generation
    /// prompt (the start of the assistant's turn).
    pub fn render_user_message(&self, content: &str) -> Result<String, Error> {
        self.render_messages(&serde_json::json!([{"role": "user", "content": content}]))
    }

    /// `messages` (a JSON list of `{"role", "content", ...}` as the client
    /// sent them) followed by the generation prompt.
    pub fn render_messages(&self, messages: &Value) -> Result<String, Error> {
        let env = environment()?;
        let template = env.template_from_str(&self.source)?;
        template.render(context! {
            messages => jinja_value(messages),
            add_generation_prompt => true,
            bos_token => self.bos_token.as_deref().unwrap_or_default(),
            eos_token => self.eos_token.as_deref().unwrap_or_default(),
        })
    }
}

/// transformers marks the assistant's part of a template with
/// `{% generation %}` … `{% endgeneration %}` (an extension of its own, for
/// masks when training); they render nothing, so they are dropped here.
fn without_generation_markers(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        // The tag closes after its opening (`{%}` is no tag).
        let Some(len) = rest[start + 2..].find("%}").map(|i| i + 2) else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        let inner =
            tag[2..tag.len() - 2].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if inner != "generation" && inner != "endgeneration" {
            out.push_str(tag);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A JSON value as the template sees it (objects keep their keys, numbers
/// their kind), as transformers passes the messages to Jinja.
fn jinja_value(value: &Value) -> minijinja::Value {
    match value {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => minijinja::Value::from(i),
            (None, Some(u)) => minijinja::Value::from(u),
            _ => minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => items.iter().map(jinja_value).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), jinja_value(v)))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into(),
    }
}

/// The template of `tokenizer_config.json` among a model's tokenizer files;
/// an unreadable one only means no template (logged).
pub(crate) fn from_files(
    loader: &Loader,
    model: &ModelRef,
    files: &[ResolvedFile],
) -> Option<ChatTemplate> {
    let file = files.iter().find(|f| f.file == "tokenizer_config.json")?;
    match loader.read_json::<Value>(model, file) {
        Ok(config) => ChatTemplate::from_tokenizer_config(&config),
        Err(e) => {
            tracing::warn!("no chat template: {e}");
            None
        }
    }
}

/// Jinja as `transformers` sets it up: `trim_blocks`, `lstrip_blocks`,
/// loop controls, Python string methods, `raise_exception`.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    Ok(env)
}

impl TextGenerator {
    /// The model's chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// `message` rendered as a single user message through the model's chat
    /// template, with the generation prompt.
    pub fn chat_prompt(&self, message: &str) -> Result<String, SkillError> {
        self.chat_messages_prompt(&serde_json::json!([{"role": "user", "content": message}]))
    }

    /// `messages` (`[{"role", "content"}, ...]`) rendered through the
    /// model's chat template, with the generation prompt.
    pub fn chat_messages_prompt(&self, messages: &Value) -> Result<String, SkillError> {
        render_chat(self.chat_template.as_ref(), &self.loaded.name, messages)
    }

    /// Generates the answer to `message` as a chat: the rendered template is
    /// tokenized without adding special tokens (the template holds them),
    /// as `apply_chat_template(tokenize=True)`.
    pub fn generate_chat(
        &self,
        message: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        if message.is_empty() {
            return Err(SkillError::InvalidInput("the prompt is empty".to_owned()));
        }
        let prompt = self.chat_prompt(message)?;
        self.generate_rendered_chat(&prompt, options, on_text)
    }

    /// Generates the answer to a conversation (`messages` as
    /// [`Self::chat_messages_prompt`] takes them), as [`Self::generate_chat`].
    pub fn generate_chat_messages(
        &self,
        messages: &Value,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        let prompt = self.chat_messages_prompt(messages)?;
        self.generate_rendered_chat(&prompt, options, on_text)
    }

    fn generate_rendered_chat(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, SkillError> {
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| SkillError::Tokenizer {
                model: self.loaded.name.clone(),
                source: e,
            })?;
        self.generate_from_ids(encoding.get_ids(), options, on_text)
    }
}

/// `messages` through `template`; a model without one, or a template that
/// fails (it may refuse a role order with `raise_exception`), is a request
/// error naming the model.
pub(crate) fn render_chat(
    template: Option<&ChatTemplate>,
    model: &str,
    messages: &Value,
) -> Result<String, SkillError> {
    let template = template.ok_or_else(|| {
        SkillError::InvalidInput(format!(
            "model '{model}' has no chat template (tokenizer.chat_template in GGUF, chat_template in tokenizer_config.json or chat_template.json); send the prompt as a completion instead"
        ))
    })?;
    template.render_messages(messages).map_err(|e| {
        SkillError::InvalidInput(format!(
            "model '{model}': the chat template failed: {}",
            one_line(&format!("{e:#}"))
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    // SmolLM2-135M-Instruct's template (its GGUF and tokenizer_config.json).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_as_transformers() {
        let template = ChatTemplate::new(SMOLLM2, None, None);
        // transformers 4.57.6 apply_chat_template(add_generation_prompt=True).
        assert_eq!(
            template.render_user_message("What is the capital of France?").unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_blocks_and_exceptions() {
        let source = "{{ bos_token }}\n{% for m in messages %}\n  {% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}\n[{{ m.content.strip() | upper }}]{% if loop.last %}{% break %}{% endif %}\n{% endfor %}";
        let template = ChatTemplate::new(source, Some("<s>".to_owned()), None);
        // What transformers 4.57.6 renders (trim_blocks and lstrip_blocks
        // drop the newlines after block tags, not the one after `{{ bos_token }}`).
        assert_eq!(template.render_user_message("  hi  ").unwrap(), "<s>\n[HI]");
        let failing = ChatTemplate::new("{{ raise_exception('nope') }}", None, None);
        assert!(failing.render_user_message("x").is_err());
    }

    #[test]
    fn generation_markers_render_nothing() {
        let source = "{% for m in messages %}{%- generation -%}[{{ m.content }}]{% endgeneration %}{% endfor %}";
        let template = ChatTemplate::new(source, None, None);
        assert_eq!(template.render_user_message("hi").unwrap(), "[hi]");
        // Found by the fuzzer: an opening that closes itself.
        assert_eq!(without_generation_markers("{%}x%}"), "{%}x%}");
        assert_eq!(without_generation_markers("a{%"), "a{%");
    }

    #[test]
    fn tokenizer_config_forms() {
        let config = json!({"chat_template": "{{ eos_token }}", "eos_token": {"content": "</s>"}});
        let template = ChatTemplate::from_tokenizer_config(&config).unwrap();
        assert_eq!(template.render_user_message("x").unwrap(), "</s>");
        let named = json!({"chat_template": [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]});
        assert_eq!(
            ChatTemplate::from_tokenizer_config(&named)
                .unwrap()
                .render_user_message("x")
                .unwrap(),
            "d"
        );
        assert!(ChatTemplate::from_tokenizer_config(&json!({})).is_none());
    }
}
