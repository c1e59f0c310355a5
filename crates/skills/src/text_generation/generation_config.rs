//! `generation_config.json`, and the ids `transformers`' `generate` takes
//! from it (end of sequence, decoder start).

use serde_json::Value;

/// `eos_token_id` of `generation_config.json`, else of `config.json` (an
/// integer or a list in either).
pub fn eos_ids(config: &Value, generation_config: Option<&Value>) -> Vec<u32> {
    generation_config
        .and_then(|g| ids(g.get("eos_token_id")))
        .or_else(|| ids(config.get("eos_token_id")))
        .unwrap_or_default()
}

/// `decoder_start_token_id` the same way (encoder-decoder models).
pub fn decoder_start_id(config: &Value, generation_config: Option<&Value>) -> Option<u32> {
    generation_config
        .and_then(|g| ids(g.get("decoder_start_token_id")))
        .or_else(|| ids(config.get("decoder_start_token_id")))
        .and_then(|v| v.first().copied())
}

fn ids(value: Option<&Value>) -> Option<Vec<u32>> {
    match value? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| vec![n]),
        Value::Array(items) => {
            let ids: Vec<u32> = items
                .iter()
                .filter_map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect();
            (!ids.is_empty()).then_some(ids)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generation_config_wins_and_lists_work() {
        let config = json!({"eos_token_id": 2});
        assert_eq!(eos_ids(&config, None), [2]);
        assert_eq!(
            eos_ids(&config, Some(&json!({"eos_token_id": [5, 7]}))),
            [5, 7]
        );
        assert_eq!(eos_ids(&config, Some(&json!({"bos_token_id": 1}))), [2]);
        assert!(eos_ids(&json!({}), None).is_empty());
    }
}
