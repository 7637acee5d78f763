//! The spill folder of an export and its per-part spills.

use std::path::Path;

use super::super::spill::{FragmentSpill, Spill, fragment_schema};
use crate::EngineError;

/// Where an export's spills go: a folder of its own under the configured root, removed when
/// the export ends however it ends.
pub(super) fn spill_folder(root: &Path) -> Result<tempfile::TempDir, EngineError> {
    std::fs::create_dir_all(root)?;
    Ok(tempfile::Builder::new().prefix("export-").tempdir_in(root)?)
}

/// One spill per part: on disk under `folder`, or in memory when there is no folder.
pub(super) fn spills(
    folder: Option<&Path>,
    name: &str,
    parts: usize,
    key_ids: bool,
) -> Result<Vec<FragmentSpill>, EngineError> {
    (0..parts)
        .map(|part| {
            let schema = fragment_schema(key_ids);
            let spill = match folder {
                Some(folder) => Spill::disk(schema, folder.join(format!("{name}-{part}.arrows")))?,
                None => Spill::memory(schema),
            };
            Ok(FragmentSpill::new(spill))
        })
        .collect()
}

pub(super) fn finish(spills: Vec<FragmentSpill>) -> Result<Vec<Option<Spill>>, EngineError> {
    spills.into_iter().map(|s| s.finish().map(Some)).collect()
}
