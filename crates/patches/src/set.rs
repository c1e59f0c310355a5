//! `PatchSet`: which patches to apply (by kind, built-in plus custom), where
//! to dump rewrites, and the guard that undoes everything on drop.

use crate::{Edit, Patch, PatchContext, PatchError, PatchKind, RewriteDump, Target};
use std::path::PathBuf;

/// Builds a [`PatchSet`].
#[derive(Debug)]
pub struct PatchSetBuilder<T: Target> {
    kinds: Option<Vec<PatchKind>>,
    patches: Vec<Box<dyn Patch<T>>>,
    custom: Vec<Box<dyn Patch<T>>>,
    dump_dir: Option<PathBuf>,
    stop_if_static: bool,
    enabled: bool,
}

impl<T: Target> PatchSetBuilder<T> {
    /// Only patches of these kinds (default: every kind).
    pub fn kinds(mut self, kinds: &[PatchKind]) -> Self {
        self.kinds = Some(kinds.to_vec());
        self
    }

    /// The built-in patches to consider (e.g. [`crate::config::builtin`]).
    pub fn patches(mut self, patches: Vec<Box<dyn Patch<T>>>) -> Self {
        self.patches.extend(patches);
        self
    }

    /// The caller's own patches, applied after the built-in ones.
    pub fn custom_patches(mut self, patches: Vec<Box<dyn Patch<T>>>) -> Self {
        self.custom.extend(patches);
        self
    }

    /// Dumps every applied rewrite into `dir` (`--dump-rewriting`).
    pub fn dump_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.dump_dir = dir;
        self
    }

    /// For ONNX exports: fail when a dimension declared dynamic became
    /// static (read by the ONNX side through [`PatchSet::stop_if_static`]).
    pub fn stop_if_static(mut self, stop: bool) -> Self {
        self.stop_if_static = stop;
        self
    }

    /// `false` applies nothing (`TRANSFORMERS_PATCH_DISABLE`, `--no-patches`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The set.
    pub fn build(self) -> PatchSet<T> {
        let kinds = self.kinds;
        let selected = |kind: PatchKind| kinds.as_ref().is_none_or(|k| k.contains(&kind));
        let patches = if self.enabled {
            self.patches
                .into_iter()
                .chain(self.custom)
                .filter(|p| selected(p.info().kind))
                .collect()
        } else {
            Vec::new()
        };
        PatchSet {
            patches,
            dump: self.dump_dir.map(RewriteDump::new),
            stop_if_static: self.stop_if_static,
        }
    }
}

/// Patches to apply to targets of type `T`, in order.
#[derive(Debug)]
pub struct PatchSet<T: Target> {
    patches: Vec<Box<dyn Patch<T>>>,
    dump: Option<RewriteDump>,
    stop_if_static: bool,
}

impl<T: Target> PatchSet<T> {
    /// A builder: every kind, no patch yet, enabled, no dump.
    pub fn builder() -> PatchSetBuilder<T> {
        PatchSetBuilder {
            kinds: None,
            patches: Vec::new(),
            custom: Vec::new(),
            dump_dir: None,
            stop_if_static: false,
            enabled: true,
        }
    }

    /// The patches it holds.
    pub fn patches(&self) -> &[Box<dyn Patch<T>>] {
        &self.patches
    }

    /// See [`PatchSetBuilder::stop_if_static`].
    pub fn stop_if_static(&self) -> bool {
        self.stop_if_static
    }

    /// Applies every patch that applies, in order, dumping each rewrite.
    /// On error, what was applied is undone and the target is as it was.
    pub fn apply<'t>(
        &'t self,
        target: &'t mut T,
        ctx: &PatchContext,
    ) -> Result<AppliedPatches<'t, T>, PatchError> {
        let mut guard = AppliedPatches {
            set: self,
            target,
            applied: Vec::new(),
        };
        for (index, patch) in self.patches.iter().enumerate() {
            let before = self.dump.as_ref().map(|_| guard.target.render());
            let edits = patch.apply(guard.target, ctx)?;
            if edits.is_empty() {
                continue;
            }
            let info = patch.info();
            tracing::info!(
                patch = %info.name,
                target = %info.target,
                edits = edits.len(),
                "applied patch"
            );
            guard.applied.push((index, edits));
            if let (Some(dump), Some(before)) = (&self.dump, before) {
                let after = guard.target.render();
                dump.write(&info.name, &info.target, T::DUMP_EXTENSION, &before, &after)?;
            }
        }
        Ok(guard)
    }
}

/// The patches a [`PatchSet::apply`] applied; undoes them on drop unless
/// [`AppliedPatches::keep`] is called.
#[derive(Debug)]
pub struct AppliedPatches<'t, T: Target> {
    set: &'t PatchSet<T>,
    target: &'t mut T,
    /// (index in the set, its edits), in the order applied.
    applied: Vec<(usize, Vec<Edit<T::Value>>)>,
}

impl<T: Target> AppliedPatches<'_, T> {
    /// The names of the patches applied, in order.
    pub fn names(&self) -> Vec<String> {
        self.applied
            .iter()
            .map(|(i, _)| self.set.patches[*i].info().name.clone())
            .collect()
    }

    /// The patched target.
    pub fn target(&self) -> &T {
        self.target
    }

    /// Keeps the rewrites (nothing is undone); returns the names applied.
    pub fn keep(mut self) -> Vec<String> {
        let names = self.names();
        self.applied.clear();
        names
    }

    /// Undoes now, reporting a failure (drop only logs it).
    pub fn undo(mut self) -> Result<(), PatchError> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> Result<(), PatchError> {
        while let Some((index, edits)) = self.applied.pop() {
            self.set.patches[index].undo(self.target, edits)?;
        }
        Ok(())
    }
}

impl<T: Target> Drop for AppliedPatches<'_, T> {
    fn drop(&mut self) {
        if let Err(e) = self.undo_all() {
            tracing::error!("{e}");
        }
    }
}
