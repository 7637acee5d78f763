//! Reading the graph snapshot and joining it to fragments bucket by bucket.

use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::super::spill::{FragmentRow, FragmentSpill, Spill, fragment_rows};
use super::component_table::ComponentTable;
use super::identity_hash::identity_hash;
use super::membership_keys::MembershipKeys;
use crate::EngineError;
use crate::identity::snapshot::scan_snapshot;

/// Streams the snapshot at `snapshot`: `sink(hash, component)` for every identity (components
/// numbered in file order, where a component's rows are contiguous), and the components of the
/// evaluated memberships' identities into `membership_keys`.
pub(super) async fn scan_graph(
    lake: &Lake,
    snapshot: &ObjectPath,
    membership_keys: &mut MembershipKeys,
    mut sink: impl FnMut(u128, u32) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut component: u32 = 0;
    let mut previous_key: Option<(String, String)> = None;
    let mut failure = None;
    scan_snapshot(lake, snapshot, |namespace, id, key_namespace, key_id| {
        if failure.is_some() {
            return;
        }
        let same = previous_key
            .as_ref()
            .is_some_and(|(n, i)| n == key_namespace && i == key_id);
        if !same {
            if previous_key.is_some() {
                component += 1;
            }
            previous_key = Some((key_namespace.to_owned(), key_id.to_owned()));
        }
        let hash = identity_hash(namespace, id);
        membership_keys.offer(hash, (namespace, id), component);
        if let Err(error) = sink(hash, component) {
            failure = Some(error);
        }
    })
    .await?;
    failure.map_or(Ok(()), Err)
}

/// Joins one bucket: its fragments looked up in the table of the graph's identities of the
/// bucket; what is found goes to `out` keyed by component, still in file order.
pub(super) fn join_bucket(
    components: &ComponentTable,
    fragments: Option<Spill>,
    mut out: FragmentSpill,
) -> Result<Spill, EngineError> {
    let Some(fragments) = fragments else {
        return out.finish();
    };
    for batch in fragments.into_batches()? {
        for row in fragment_rows(&batch?).0 {
            let Some(component) = components.get(row.key) else {
                continue;
            };
            out.push(
                FragmentRow {
                    key: u128::from(component),
                    ..row
                },
                None,
            )?;
        }
    }
    out.finish()
}

/// Calls `emit` with the rows of every joined bucket in file order (each bucket is in file order
/// already; this merges them).
pub(super) fn merge_in_file_order(
    joined: Vec<Spill>,
    mut emit: impl FnMut(FragmentRow) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    struct Cursor {
        batches: Box<dyn Iterator<Item = Result<arrow::array::RecordBatch, EngineError>>>,
        rows: Vec<FragmentRow>,
        next: usize,
    }
    impl Cursor {
        /// The current row, reading the next batch when this one is done.
        fn peek(&mut self) -> Result<Option<FragmentRow>, EngineError> {
            while self.next == self.rows.len() {
                match self.batches.next() {
                    Some(batch) => {
                        self.rows = fragment_rows(&batch?).0;
                        self.next = 0;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some(self.rows[self.next]))
        }
    }
    let mut cursors = Vec::new();
    let mut heap = BinaryHeap::new();
    for spill in joined {
        let mut cursor = Cursor {
            batches: spill.into_batches()?,
            rows: Vec::new(),
            next: 0,
        };
        if let Some(row) = cursor.peek()? {
            heap.push(Reverse((row.file, row.row, cursors.len())));
        }
        cursors.push(cursor);
    }
    while let Some(Reverse((_, _, index))) = heap.pop() {
        let cursor = &mut cursors[index];
        let row = cursor.rows[cursor.next];
        cursor.next += 1;
        emit(row)?;
        if let Some(next) = cursor.peek()? {
            heap.push(Reverse((next.file, next.row, index)));
        }
    }
    Ok(())
}
