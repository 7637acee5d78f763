//! Reading the graph snapshot as identity hashes and component numbers.

use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

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
