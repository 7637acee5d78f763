//! Keying one profile: the fast path of a lookup. Instead of keying the whole population, the
//! graph snapshot is streamed once for the component of the identity asked about, and only the
//! fragments whose primary identity is in it are kept. What it gives is read, aligned and merged
//! like any shard's profiles ([`super::partition`]).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::xdm::SchemaClass;
use dossier_storage::{Lake, MetaStore};

use super::keys::{EventScan, KeyedFile, KeyedSources, ProfileFacts, source_datasets, source_files};
use crate::EngineError;
use crate::identity::buckets::{BucketKind, Manifest, bucket_of};
use crate::identity::snapshot::{scan_file_until, scan_snapshot_until};
use crate::identity::store::current_graph_unloaded;
use crate::identity::{Identity, read_file_primaries};

/// The one profile an identity belongs to, keyed: profile 0 of `sources`.
pub struct OneProfile {
    pub sources: KeyedSources,
    /// The profile's key: the identity itself (`none`) or the smallest identity of its graph
    /// component (`pdg`).
    pub key: Identity,
    /// Every identity of its component (`pdg`); just the key under `none`.
    pub members: HashSet<Identity>,
}

/// The component of `identity` in a graph snapshot: its key and every identity in it.
struct Component {
    key: Identity,
    members: HashSet<Identity>,
}

/// The component of `identity` in the graph version at `version_path`: in a bucketed version,
/// its key from the identity's bucket and its members from the key's component bucket (two
/// files, whatever the graph's size); in an earlier release's single file, by streaming it.
async fn component_of(lake: &Lake, version_path: &str, identity: &Identity) -> Result<Option<Component>, EngineError> {
    if !Manifest::is_manifest(version_path) {
        return scan_for_component(lake, &ObjectPath::from(version_path), identity).await;
    }
    let manifest = Manifest::read(lake, &ObjectPath::from(version_path)).await?;
    let bucket = bucket_of(&identity.namespace, &identity.id, manifest.buckets);
    let Some(file) = manifest.file(BucketKind::Identity, bucket) else {
        return Ok(None);
    };
    let mut key = None;
    scan_file_until(lake, &file, |namespace, id, key_namespace, key_id| {
        if namespace == identity.namespace && id == identity.id {
            key = Some(Identity::new(key_namespace, key_id));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .await?;
    let Some(key) = key else {
        return Ok(None);
    };
    let bucket = bucket_of(&key.namespace, &key.id, manifest.buckets);
    let mut members = HashSet::new();
    if let Some(file) = manifest.file(BucketKind::Component, bucket) {
        scan_file_until(lake, &file, |namespace, id, key_namespace, key_id| {
            if key_namespace == key.namespace && key_id == key.id {
                members.insert(Identity::new(namespace, id));
            } else if !members.is_empty() {
                // The component's rows are contiguous: it is read.
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .await?;
    }
    Ok(Some(Component { key, members }))
}

/// Streams the single-file snapshot at `snapshot` for the component of `identity` (a
/// component's rows are contiguous and share its key), stopping once it is read.
async fn scan_for_component(
    lake: &Lake,
    snapshot: &ObjectPath,
    identity: &Identity,
) -> Result<Option<Component>, EngineError> {
    let mut run: Vec<Identity> = Vec::new();
    let mut run_key: Option<Identity> = None;
    let mut run_has_identity = false;
    let mut found: Option<Component> = None;
    scan_snapshot_until(lake, snapshot, |namespace, id, key_namespace, key_id| {
        let same = run_key
            .as_ref()
            .is_some_and(|k| k.namespace == key_namespace && k.id == key_id);
        if !same {
            if run_has_identity {
                found = run_key.take().map(|key| Component {
                    key,
                    members: run.drain(..).collect(),
                });
                return ControlFlow::Break(());
            }
            run.clear();
            run_key = Some(Identity::new(key_namespace, key_id));
        }
        run_has_identity |= namespace == identity.namespace && id == identity.id;
        run.push(Identity::new(namespace, id));
        ControlFlow::Continue(())
    })
    .await?;
    if found.is_none() && run_has_identity {
        found = run_key.map(|key| Component {
            key,
            members: run.into_iter().collect(),
        });
    }
    Ok(found)
}

/// Keys the profile `identity` belongs to under `policy`, or `None` when the graph does not know
/// it (`pdg`) or no fragment makes it. Under `pdg` one version of the graph is read, and only
/// the batches it covers, so a batch committing meanwhile is either wholly in the profile or not
/// at all.
pub async fn key_one_profile(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    policy: &MergePolicy,
    identity: &Identity,
) -> Result<Option<OneProfile>, EngineError> {
    let (graph, component) = match policy.identity_graph {
        IdentityGraphType::None => (None, None),
        IdentityGraphType::Pdg => {
            let graph = current_graph_unloaded(meta, lake, tenant).await?;
            let Some(version) = &graph.version else {
                return Ok(None);
            };
            let Some(component) = component_of(lake, &version.path, identity).await? else {
                return Ok(None);
            };
            (Some(graph), Some(component))
        }
    };
    let (key, members) = match component {
        Some(component) => (component.key, component.members),
        None => (identity.clone(), HashSet::from([identity.clone()])),
    };
    let datasets = source_datasets(meta, tenant, policy).await?;
    let files = source_files(meta, tenant, &datasets, graph.as_ref()).await?;
    let mut sources = KeyedSources {
        datasets: Arc::new(datasets),
        records: Vec::new(),
        events: Vec::new(),
        profiles: vec![key.clone()],
        facts: vec![ProfileFacts::default()],
    };
    let mut namespaces: Vec<Arc<str>> = Vec::new();
    for file in files {
        let source = &sources.datasets[file.dataset];
        if !EventScan::All.reads(source, &file) {
            continue;
        }
        let is_record = source.schema.class == SchemaClass::Profile;
        let (primaries, row_ids) = read_file_primaries(lake, &file.location, &source.schema).await?;
        let mut keyed = KeyedFile::new(file);
        for (row, (primary, row_id)) in primaries.iter().zip(&row_ids).enumerate() {
            let Some(primary) = primary.as_ref().filter(|p| members.contains(p)) else {
                continue;
            };
            keyed.push(row as u32, 0, *row_id);
            sources.facts[0].observe(is_record, &keyed.file, *row_id, || {
                shared(&mut namespaces, &primary.namespace)
            });
        }
        if keyed.rows.is_empty() {
            continue;
        }
        match is_record {
            true => sources.records.push(keyed),
            false => sources.events.push(keyed),
        }
    }
    if sources.records.is_empty() && sources.events.is_empty() {
        return Ok(None);
    }
    Ok(Some(OneProfile { sources, key, members }))
}

/// One shared string per namespace.
fn shared(namespaces: &mut Vec<Arc<str>>, namespace: &str) -> Arc<str> {
    if let Some(known) = namespaces.iter().find(|n| n.as_ref() == namespace) {
        return known.clone();
    }
    namespaces.push(Arc::from(namespace));
    namespaces[namespaces.len() - 1].clone()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::identity::fold::fold_into_version;
    use crate::identity::snapshot::write_snapshot;
    use crate::identity::union_find::IdentityGraph;

    fn id(namespace: &str, id: &str) -> Identity {
        Identity::new(namespace, id)
    }

    /// The same lookups on an earlier release's single file and on a bucketed version.
    #[tokio::test]
    async fn the_component_of_an_identity_is_its_key_and_every_identity_linked_to_it() {
        let lake = Lake::with_store(Arc::new(InMemory::new()));
        let mut graph = IdentityGraph::new();
        graph.link(&[id("Email", "ana@x"), id("CRMID", "c1")]);
        graph.link(&[id("ECID", "e9"), id("Email", "ana@x")]);
        graph.link(&[id("CRMID", "c2")]);
        graph.link(&[id("CRMID", "c3"), id("ECID", "e3")]);
        let single = ObjectPath::from("graph/v1.parquet");
        write_snapshot(&lake, &single, &mut graph.clone()).await.unwrap();
        let bucketed = ObjectPath::from("graph/v1.json");
        fold_into_version(&lake, None, &bucketed, graph, 2).await.unwrap();

        for location in [single.as_ref(), bucketed.as_ref()] {
            let first = component_of(&lake, location, &id("ECID", "e9")).await.unwrap().unwrap();
            assert_eq!(first.key, id("CRMID", "c1"));
            let expected: HashSet<Identity> = [id("CRMID", "c1"), id("Email", "ana@x"), id("ECID", "e9")].into();
            assert_eq!(first.members, expected, "{location}");
            let alone = component_of(&lake, location, &id("CRMID", "c2"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(alone.members, HashSet::from([id("CRMID", "c2")]));
            let last = component_of(&lake, location, &id("ECID", "e3")).await.unwrap().unwrap();
            assert_eq!(last.key, id("CRMID", "c3"));
            assert_eq!(last.members, HashSet::from([id("CRMID", "c3"), id("ECID", "e3")]));
            let unknown = component_of(&lake, location, &id("CRMID", "c4")).await.unwrap();
            assert!(unknown.is_none(), "{location}");
        }
    }
}
