//! Merge policies: one default per schema class, every change a new version with the old ones
//! kept, bulk reads of the latest versions, and the writes AEP refuses.

use std::collections::HashMap;

use dossier_model::ValidationError;
use dossier_model::ids::{DatasetId, MergePolicyId};
use dossier_model::merge_policy::{
    AttributeMerge, IdentityGraphType, MergePolicy, MergePolicyDefinition, MergePolicyListQuery, SEEDED_MERGE_POLICY_ID,
};
use dossier_model::schema::PROFILE_SCHEMA_NAME;
use dossier_model::tenancy::Tenant;

use super::fixtures::{ORG_A, sorted, stored_dataset, tenant, with_prod};
use crate::meta::{MergePolicyWriteError, MetaStore};

pub(crate) fn definition(name: &str, is_default: bool) -> MergePolicyDefinition {
    MergePolicyDefinition {
        name: name.to_owned(),
        schema_name: PROFILE_SCHEMA_NAME.to_owned(),
        identity_graph: IdentityGraphType::Pdg,
        attribute_merge: AttributeMerge::TimestampOrdered,
        is_default,
        is_active_on_edge: false,
    }
}

pub(crate) async fn create(store: &MetaStore, t: &Tenant, definition: MergePolicyDefinition) -> MergePolicy {
    let policy = MergePolicy::new(MergePolicyId::generate(), t, definition, 1_000);
    store.create_merge_policy(&policy).await.unwrap();
    policy
}

fn seeded_id() -> MergePolicyId {
    MergePolicyId::from_string(SEEDED_MERGE_POLICY_ID)
}

async fn latest(store: &MetaStore, t: &Tenant, id: &MergePolicyId) -> MergePolicy {
    store
        .merge_policy(t, id, None)
        .await
        .unwrap()
        .expect("the policy exists")
}

async fn defaults(store: &MetaStore, t: &Tenant) -> Vec<MergePolicyId> {
    let params: HashMap<String, String> = [("default".to_owned(), "true".to_owned())].into();
    let query = MergePolicyListQuery::from_params(&params).unwrap();
    let page = store.list_merge_policies(t, &query).await.unwrap();
    assert_eq!(page.total, page.items.len() as u64);
    page.items.into_iter().map(|p| p.id).collect()
}

pub(crate) async fn one_default_per_schema(store: MetaStore) {
    let t = with_prod(&store).await;
    let first = create(&store, &t, definition("first", true)).await;
    let seeded = latest(&store, &t, &seeded_id()).await;
    assert_eq!(
        (seeded.version, seeded.is_default),
        (2, false),
        "the old default gets a new version"
    );
    let original = store.merge_policy(&t, &seeded_id(), Some(1)).await.unwrap();
    assert!(original.is_some_and(|v1| v1.is_default), "version 1 stays as it was");
    assert_eq!(defaults(&store, &t).await, std::slice::from_ref(&first.id));
    assert_eq!(
        store
            .default_merge_policy(&t, PROFILE_SCHEMA_NAME)
            .await
            .unwrap()
            .map(|p| p.id),
        Some(first.id.clone())
    );

    let back = store
        .update_merge_policy(&t, &seeded_id(), 2_000, |current| {
            Ok(MergePolicyDefinition {
                is_default: true,
                ..current.definition()
            })
        })
        .await
        .unwrap();
    assert_eq!((back.version, back.is_default, back.update_epoch), (3, true, 2_000));
    let first_now = latest(&store, &t, &first.id).await;
    assert_eq!(
        (first_now.version, first_now.is_default, first_now.update_epoch),
        (2, false, 2_000)
    );
    assert_eq!(defaults(&store, &t).await, [seeded_id()]);

    // Two new defaults racing: both are created, one default remains.
    let racers: Vec<_> = ["racer one", "racer two"]
        .into_iter()
        .map(|name| {
            let (store, t) = (store.clone(), t.clone());
            tokio::spawn(async move { create(&store, &t, definition(name, true)).await.id })
        })
        .collect();
    let mut created = Vec::new();
    for racer in racers {
        created.push(racer.await.unwrap());
    }
    let remaining = defaults(&store, &t).await;
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!(created.contains(&remaining[0]));
    let other = tenant(ORG_A, "dev");
    assert_eq!(
        store.default_merge_policy(&other, PROFILE_SCHEMA_NAME).await.unwrap(),
        None
    );
}

pub(crate) async fn updates_keep_every_version(store: MetaStore) {
    let t = with_prod(&store).await;
    let original = create(&store, &t, definition("first", false)).await;
    let renamed = store
        .update_merge_policy(&t, &original.id, 2_000, |current| {
            Ok(MergePolicyDefinition {
                name: "second".into(),
                ..current.definition()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        (renamed.version, renamed.name.as_str(), renamed.update_epoch),
        (2, "second", 2_000)
    );
    assert_eq!(latest(&store, &t, &original.id).await, renamed);
    assert_eq!(
        store.merge_policy(&t, &original.id, Some(1)).await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        store.merge_policy(&t, &original.id, Some(2)).await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(store.merge_policy(&t, &original.id, Some(3)).await.unwrap(), None);

    let unchanged = store
        .update_merge_policy(&t, &original.id, 3_000, |current| Ok(current.definition()))
        .await
        .unwrap();
    assert_eq!(
        unchanged, renamed,
        "an unchanged definition keeps the version and its time"
    );

    let invalid = store
        .update_merge_policy(&t, &original.id, 4_000, |_| {
            Err(ValidationError::invalid("name", "", "a name is required"))
        })
        .await;
    assert!(
        matches!(&invalid, Err(MergePolicyWriteError::Invalid(e)) if e.field == "name"),
        "{invalid:?}"
    );
    let unknown = MergePolicyId::generate();
    let missing = store.update_merge_policy(&t, &unknown, 1, |c| Ok(c.definition())).await;
    assert!(
        matches!(&missing, Err(MergePolicyWriteError::NotFound(id)) if *id == unknown),
        "{missing:?}"
    );

    store.delete_merge_policy(&t, &original.id).await.unwrap();
    assert_eq!(store.merge_policy(&t, &original.id, None).await.unwrap(), None);
    assert_eq!(
        store.merge_policy(&t, &original.id, Some(1)).await.unwrap(),
        None,
        "every version goes"
    );
    assert!(matches!(
        store.delete_merge_policy(&t, &original.id).await,
        Err(MergePolicyWriteError::NotFound(_))
    ));
}

pub(crate) async fn bulk_get_returns_latest_known_ids(store: MetaStore) {
    let t = with_prod(&store).await;
    let one = create(&store, &t, definition("one", false)).await;
    let two = create(&store, &t, definition("two", false)).await;
    let one_v2 = store
        .update_merge_policy(&t, &one.id, 2_000, |current| {
            Ok(MergePolicyDefinition {
                name: "one again".into(),
                ..current.definition()
            })
        })
        .await
        .unwrap();
    let asked = [one.id.clone(), MergePolicyId::generate(), two.id.clone()];
    let mut found = store.merge_policies_by_id(&t, &asked).await.unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![one_v2, two];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(found, expected, "latest versions of the known ids only");
    assert_eq!(store.merge_policies_by_id(&t, &[]).await.unwrap(), []);
    let ids: Vec<MergePolicyId> = store
        .merge_policies_by_id(&t, &[seeded_id()])
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(sorted(&ids), [seeded_id()]);
}

pub(crate) async fn write_errors(store: MetaStore) {
    let t = with_prod(&store).await;
    let cleared = store
        .update_merge_policy(&t, &seeded_id(), 1, |current| {
            Ok(MergePolicyDefinition {
                is_default: false,
                ..current.definition()
            })
        })
        .await;
    assert!(matches!(&cleared, Err(MergePolicyWriteError::DefaultCannotBeCleared { id, .. }) if *id == seeded_id()));
    let deleted = store.delete_merge_policy(&t, &seeded_id()).await;
    assert!(matches!(&deleted, Err(MergePolicyWriteError::DefaultCannotBeDeleted { id, .. }) if *id == seeded_id()));
    assert_eq!(
        latest(&store, &t, &seeded_id()).await.version,
        1,
        "refused writes change nothing"
    );

    let edge = |name: &str| MergePolicyDefinition {
        is_active_on_edge: true,
        ..definition(name, false)
    };
    let on_edge = create(&store, &t, edge("edge")).await;
    let second = MergePolicy::new(MergePolicyId::generate(), &t, edge("second edge"), 1);
    let taken = store.create_merge_policy(&second).await;
    assert!(
        matches!(&taken, Err(MergePolicyWriteError::EdgeTaken { active }) if *active == on_edge.id),
        "{taken:?}"
    );
    assert_eq!(store.merge_policy(&t, &second.id, None).await.unwrap(), None);
    let plain = create(&store, &t, definition("plain", false)).await;
    let moved = store
        .update_merge_policy(&t, &plain.id, 2, |current| {
            Ok(MergePolicyDefinition {
                is_active_on_edge: true,
                ..current.definition()
            })
        })
        .await;
    assert!(
        matches!(&moved, Err(MergePolicyWriteError::EdgeTaken { active }) if *active == on_edge.id),
        "{moved:?}"
    );
    let deleted = store.delete_merge_policy(&t, &on_edge.id).await;
    assert!(matches!(&deleted, Err(MergePolicyWriteError::ActiveOnEdgeCannotBeDeleted(id)) if *id == on_edge.id));

    // Datasets named in a precedence order must exist when added.
    let crm = stored_dataset(&store, &t, "crm", 1).await;
    let unknown = DatasetId::generate();
    let ranked = |order: Vec<DatasetId>| MergePolicyDefinition {
        attribute_merge: AttributeMerge::DataSetPrecedence { order },
        ..definition("ranked", false)
    };
    let refused = MergePolicy::new(
        MergePolicyId::generate(),
        &t,
        ranked(vec![crm.id.clone(), unknown.clone()]),
        1,
    );
    let result = store.create_merge_policy(&refused).await;
    assert!(
        matches!(&result, Err(MergePolicyWriteError::UnknownDataset(id)) if *id == unknown),
        "{result:?}"
    );
    assert_eq!(store.merge_policy(&t, &refused.id, None).await.unwrap(), None);
    let policy = create(&store, &t, ranked(vec![crm.id.clone()])).await;
    let adding = store
        .update_merge_policy(&t, &policy.id, 2, |current| {
            Ok(MergePolicyDefinition {
                attribute_merge: AttributeMerge::DataSetPrecedence {
                    order: vec![crm.id.clone(), unknown.clone()],
                },
                ..current.definition()
            })
        })
        .await;
    assert!(
        matches!(&adding, Err(MergePolicyWriteError::UnknownDataset(id)) if *id == unknown),
        "{adding:?}"
    );
    // One deleted since it was put in the order does not block other changes.
    store.delete_dataset(&t, &crm.id).await.unwrap();
    let renamed = store
        .update_merge_policy(&t, &policy.id, 3, |current| {
            Ok(MergePolicyDefinition {
                name: "renamed".into(),
                ..current.definition()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        (renamed.version, renamed.attribute_merge.dataset_order()),
        (2, &[crm.id][..])
    );
}
