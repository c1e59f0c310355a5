//! Typed reads of GGUF metadata; a key of the wrong type is an error naming
//! the file and the key.

use crate::SkillError;
use candle_core::quantized::gguf_file::{Content, Value};
use ipfs_accelerate_loader::LoadError;

/// The metadata of one GGUF file, with the names its errors need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metadata<'a> {
    pub(crate) model: &'a str,
    pub(crate) file: &'a str,
    pub(crate) content: &'a Content,
}

impl<'a> Metadata<'a> {
    /// A malformed-file error about this GGUF file.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> SkillError {
        SkillError::Load(LoadError::Malformed {
            model: self.model.to_owned(),
            file: self.file.to_owned(),
            reason: reason.into(),
        })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.content.metadata.get(key)
    }

    fn wrong_type(&self, key: &str, expected: &str) -> SkillError {
        self.malformed(format!("metadata '{key}' is not {expected}"))
    }

    /// A string value, `None` when the key is absent.
    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    /// An unsigned integer value (any integer type that fits in u32).
    pub(crate) fn u32(&self, key: &str) -> Result<Option<u32>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => integer(value)
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an unsigned 32-bit integer")),
        }
    }

    /// A boolean value.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    /// An array of strings.
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_str()),
                    _ => Err(self.wrong_type(key, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong_type(key, "an array of strings")),
        }
    }

    /// An array of integers.
    pub(crate) fn integers(&self, key: &str) -> Result<Option<Vec<i64>>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| integer(v).ok_or_else(|| self.wrong_type(key, "an array of integers")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong_type(key, "an array of integers")),
        }
    }

    /// An array of floats.
    pub(crate) fn floats(&self, key: &str) -> Result<Option<Vec<f64>>, SkillError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::F32(x) => Ok(f64::from(*x)),
                    Value::F64(x) => Ok(*x),
                    _ => Err(self.wrong_type(key, "an array of floats")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong_type(key, "an array of floats")),
        }
    }

    /// `general.architecture`.
    pub(crate) fn architecture(&self) -> Result<&'a str, SkillError> {
        self.string("general.architecture")?
            .ok_or_else(|| self.malformed("metadata has no 'general.architecture'"))
    }
}

fn integer(value: &Value) -> Option<i64> {
    Some(match value {
        Value::U8(n) => i64::from(*n),
        Value::I8(n) => i64::from(*n),
        Value::U16(n) => i64::from(*n),
        Value::I16(n) => i64::from(*n),
        Value::U32(n) => i64::from(*n),
        Value::I32(n) => i64::from(*n),
        Value::U64(n) => i64::try_from(*n).ok()?,
        Value::I64(n) => *n,
        _ => return None,
    })
}
