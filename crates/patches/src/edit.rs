//! Edits a patch makes, logged so that undoing them restores the target
//! exactly (renamed keys renamed back, removed values put back, overwritten
//! values restored, added keys removed).

use crate::{KeyError, PatchError, Target};

/// One edit, with what undoing it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit<V> {
    /// `from` was moved to `to`.
    Renamed { from: String, to: String },
    /// `key` was removed; it held `value`.
    Removed { key: String, value: V },
    /// `key` was set; it held `previous` (`None`: it did not exist).
    Set { key: String, previous: Option<V> },
}

/// Why [`undo`] failed: the target was changed after the edits were made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    /// A renamed key is no longer there to be renamed back.
    #[error("cannot undo the rename to {key}: it is gone")]
    Gone {
        /// The key the edit renamed to.
        key: String,
    },
    /// A key could not be put back.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Makes edits on a target and logs them.
#[derive(Debug)]
pub struct Editor<'a, T: Target> {
    target: &'a mut T,
    patch: &'a str,
    edits: Vec<Edit<T::Value>>,
}

impl<'a, T: Target> Editor<'a, T> {
    pub(crate) fn new(target: &'a mut T, patch: &'a str) -> Self {
        Self {
            target,
            patch,
            edits: Vec::new(),
        }
    }

    /// The target as it stands now.
    pub fn target(&self) -> &T {
        self.target
    }

    fn error(&self, reason: String) -> PatchError {
        PatchError::Edit {
            patch: self.patch.to_owned(),
            reason,
        }
    }

    fn key_error(&self, source: KeyError) -> PatchError {
        PatchError::Key {
            patch: self.patch.to_owned(),
            source,
        }
    }

    /// Moves `from` to `to`; an error when `from` is missing or `to` exists
    /// (a patch never overwrites silently).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), PatchError> {
        if self.target.get(to).is_some() {
            return Err(self.error(format!("cannot rename {from} to {to}: {to} exists")));
        }
        let value = self
            .target
            .remove(from)
            .ok_or_else(|| self.error(format!("cannot rename {from}: it does not exist")))?;
        if let Err(source) = self.target.insert(to, value) {
            return Err(self.key_error(source));
        }
        self.edits.push(Edit::Renamed {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        Ok(())
    }

    /// Removes `key`; nothing happens when it is missing.
    pub fn remove(&mut self, key: &str) {
        if let Some(value) = self.target.remove(key) {
            self.edits.push(Edit::Removed {
                key: key.to_owned(),
                value,
            });
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: T::Value) -> Result<(), PatchError> {
        let previous = self
            .target
            .insert(key, value)
            .map_err(|source| self.key_error(source))?;
        self.edits.push(Edit::Set {
            key: key.to_owned(),
            previous,
        });
        Ok(())
    }

    pub(crate) fn into_edits(self) -> Vec<Edit<T::Value>> {
        self.edits
    }
}

/// Undoes `edits` (last first). Edits replayed on the target they were made
/// on cannot fail; an error means the target was changed in between.
pub fn undo<T: Target>(target: &mut T, edits: Vec<Edit<T::Value>>) -> Result<(), UndoError> {
    for edit in edits.into_iter().rev() {
        match edit {
            Edit::Renamed { from, to } => {
                let value = target.remove(&to).ok_or(UndoError::Gone { key: to })?;
                target.insert(&from, value)?;
            }
            Edit::Removed { key, value } => {
                target.insert(&key, value)?;
            }
            Edit::Set { key, previous } => match previous {
                Some(value) => {
                    target.insert(&key, value)?;
                }
                None => {
                    target.remove(&key);
                }
            },
        }
    }
    Ok(())
}
