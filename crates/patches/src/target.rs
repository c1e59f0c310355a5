//! What patches rewrite, seen as keys -> values so that every edit can be
//! logged and undone exactly: a `config.json` (keys are JSON pointers such as
//! `/rope_scaling/type`) and a checkpoint's tensor map (keys are tensor names).

use serde_json::Value;
use std::collections::HashMap;

/// A key a target cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A `config.json` key that is not a JSON pointer.
    #[error("'{key}' is not a JSON pointer (it must start with '/')")]
    NotAPointer {
        /// The key.
        key: String,
    },
    /// A JSON pointer whose parent is missing or not an object.
    #[error("{key}: its parent is not a JSON object")]
    ParentNotObject {
        /// The key.
        key: String,
    },
}

/// A rewritable target.
pub trait Target {
    /// What a key holds.
    type Value;
    /// File extension of the dumps of this target.
    const DUMP_EXTENSION: &'static str;

    /// The value at `key`.
    fn get(&self, key: &str) -> Option<&Self::Value>;
    /// Sets `key`, returning what was there; an error when the key cannot
    /// exist (e.g. a JSON pointer whose parent is not an object).
    fn insert(&mut self, key: &str, value: Self::Value) -> Result<Option<Self::Value>, KeyError>;
    /// Removes `key`, returning what was there.
    fn remove(&mut self, key: &str) -> Option<Self::Value>;
    /// Text for rewrite dumps: stable, one item per line where possible.
    fn render(&self) -> String;
}

/// A `config.json` document; keys are JSON pointers (RFC 6901).
impl Target for Value {
    type Value = Value;
    const DUMP_EXTENSION: &'static str = "json";

    fn get(&self, key: &str) -> Option<&Value> {
        self.pointer(key)
    }

    fn insert(&mut self, key: &str, value: Value) -> Result<Option<Value>, KeyError> {
        let (parent, last) = split_pointer(key)?;
        match self.pointer_mut(parent) {
            Some(Value::Object(map)) => Ok(map.insert(last, value)),
            _ => Err(KeyError::ParentNotObject {
                key: key.to_owned(),
            }),
        }
    }

    fn remove(&mut self, key: &str) -> Option<Value> {
        let (parent, last) = split_pointer(key).ok()?;
        match self.pointer_mut(parent) {
            Some(Value::Object(map)) => map.remove(&last),
            _ => None,
        }
    }

    fn render(&self) -> String {
        // serde_json's maps are sorted, so the text is stable.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `/a/b~1c` -> (`/a`, `b/c`).
fn split_pointer(key: &str) -> Result<(&str, String), KeyError> {
    let at = key.rfind('/').ok_or_else(|| KeyError::NotAPointer {
        key: key.to_owned(),
    })?;
    let last = key[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&key[..at], last))
}

/// The JSON pointer of a top-level key (escaping `~` and `/`).
pub fn pointer(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// A tensor whose shape can be shown (and checked by patches).
pub trait TensorLike {
    /// The dimensions.
    fn shape(&self) -> Vec<usize>;
}

/// A shape alone: enough to list or plan checkpoint rewrites.
impl TensorLike for Vec<usize> {
    fn shape(&self) -> Vec<usize> {
        self.clone()
    }
}

#[cfg(feature = "candle")]
impl TensorLike for candle_core::Tensor {
    fn shape(&self) -> Vec<usize> {
        self.dims().to_vec()
    }
}

/// A checkpoint as loaded: tensor name -> tensor.
impl<T: TensorLike> Target for HashMap<String, T> {
    type Value = T;
    const DUMP_EXTENSION: &'static str = "txt";

    fn get(&self, key: &str) -> Option<&T> {
        HashMap::get(self, key)
    }

    fn insert(&mut self, key: &str, value: T) -> Result<Option<T>, KeyError> {
        Ok(HashMap::insert(self, key.to_owned(), value))
    }

    fn remove(&mut self, key: &str) -> Option<T> {
        HashMap::remove(self, key)
    }

    fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .iter()
            .map(|(name, t)| format!("{name} {:?}\n", t.shape()))
            .collect();
        lines.sort();
        lines.concat()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_pointers_edit_nested_objects() {
        let mut v = json!({"rope_scaling": {"type": "linear"}, "a/b": 1});
        assert_eq!(
            Target::get(&v, "/rope_scaling/type"),
            Some(&json!("linear"))
        );
        assert_eq!(Target::get(&v, &pointer(&["a/b"])), Some(&json!(1)));
        Target::insert(&mut v, "/rope_scaling/rope_type", json!("linear")).unwrap();
        assert_eq!(v["rope_scaling"]["rope_type"], "linear");
        assert_eq!(
            Target::remove(&mut v, "/rope_scaling/type"),
            Some(json!("linear"))
        );
        assert!(Target::insert(&mut v, "/missing/x", json!(1)).is_err());
        assert!(Target::insert(&mut v, "no-slash", json!(1)).is_err());
    }
}
