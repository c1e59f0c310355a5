//! Fixture copies that carry a chat template. The tiny fixtures are built
//! without one; the serving and chat tests need a text model and a LLaVA
//! model that have one, so they copy the fixture and add the template the
//! published checkpoints use (the weights stay the fixture's).

use crate::fixture::{edit_json, fixture_copy};
use std::path::{Path, PathBuf};

/// SmolLM2-Instruct's ChatML template (its `tokenizer_config.json`).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// llava-hf/llava-1.5-7b-hf's processor template (`chat_template.json`),
/// `{% generation %}` markers included: images first, then text parts.
pub const LLAVA_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";

/// A copy of the `llama` fixture in `into/llama` whose
/// `tokenizer_config.json` holds the ChatML template.
pub fn llama_with_chat_template(into: &Path) -> PathBuf {
    let dir = fixture_copy("llama", into);
    edit_json(&dir.join("tokenizer_config.json"), |config| {
        config["chat_template"] = CHATML_TEMPLATE.into();
    });
    dir
}

/// A copy of the `llava` fixture in `into/llava` with LLaVA-1.5's
/// `chat_template.json`, as `LlavaProcessor.save_pretrained` writes it.
pub fn llava_with_chat_template(into: &Path) -> PathBuf {
    let dir = fixture_copy("llava", into);
    let file = serde_json::json!({ "chat_template": LLAVA_TEMPLATE });
    std::fs::write(dir.join("chat_template.json"), file.to_string())
        .unwrap_or_else(|e| panic!("cannot write chat_template.json: {e}"));
    dir
}
