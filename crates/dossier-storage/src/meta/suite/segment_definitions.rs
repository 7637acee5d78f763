//! Segment definitions: stored with their resolved merge policy, unique names per sandbox,
//! `inSegment` dependencies that refuse cycles and protect what they name from deletion, and
//! bulk reads by id.

use dossier_model::ValidationError;
use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::merge_policy::SEEDED_MERGE_POLICY_ID;
use dossier_model::segment_definition::{SegmentDefinition, SegmentDefinitionSpec};
use dossier_model::tenancy::Tenant;

use super::fixtures::{ORG_A, ORG_B, check_pql, org, sandbox, segment_spec, sorted, tenant, with_prod};
use super::merge_policies::{create as create_policy, definition};
use crate::meta::{MetaStore, SegmentDefinitionWriteError};

const US: &str = "homeAddress.countryCode = \"US\"";

pub(crate) async fn create(
    store: &MetaStore,
    t: &Tenant,
    spec: SegmentDefinitionSpec,
) -> Result<SegmentDefinition, SegmentDefinitionWriteError> {
    store
        .create_segment_definition(t, SegmentDefinitionId::generate(), spec, 1_000, check_pql)
        .await
}

fn in_segment(ids: &[&SegmentDefinitionId]) -> String {
    ids.iter()
        .map(|id| format!("inSegment(\"{id}\")"))
        .collect::<Vec<_>>()
        .join(" or ")
}

pub(crate) async fn definitions_round_trip_and_update(store: MetaStore) {
    let t = with_prod(&store).await;
    let created = create(&store, &t, segment_spec("a", US)).await.unwrap();
    assert_eq!(
        created.merge_policy_id.as_str(),
        SEEDED_MERGE_POLICY_ID,
        "the default is resolved"
    );
    assert_eq!(
        (created.creation_time, created.update_time, created.name.as_str()),
        (1_000, 1_000, "a")
    );
    assert_eq!(
        store.segment_definition(&t, &created.id).await.unwrap(),
        Some(created.clone())
    );

    let same = store
        .update_segment_definition(&t, &created.id, 2_000, |current| Ok(current.spec()), check_pql)
        .await
        .unwrap();
    assert_eq!(same, created, "a change to nothing keeps the definition");
    let renamed = store
        .update_segment_definition(
            &t,
            &created.id,
            5_000,
            |current| {
                Ok(SegmentDefinitionSpec {
                    name: "renamed".into(),
                    ..current.spec()
                })
            },
            check_pql,
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.creation_time, renamed.update_time),
        ("renamed", 1_000, 5_000)
    );
    assert_eq!(
        store.segment_definition(&t, &created.id).await.unwrap(),
        Some(renamed.clone())
    );
    // A clock that went back still moves the update time forward, and that is what is stored.
    let earlier = store
        .update_segment_definition(
            &t,
            &created.id,
            900,
            |current| {
                Ok(SegmentDefinitionSpec {
                    name: "renamed again".into(),
                    ..current.spec()
                })
            },
            check_pql,
        )
        .await
        .unwrap();
    assert_eq!((earlier.creation_time, earlier.update_time), (1_000, 5_001));
    assert_eq!(store.segment_definition(&t, &created.id).await.unwrap(), Some(earlier));

    let invalid = store
        .update_segment_definition(
            &t,
            &created.id,
            6_000,
            |_| Err(ValidationError::invalid("name", "", "a name is required")),
            check_pql,
        )
        .await;
    assert!(
        matches!(&invalid, Err(SegmentDefinitionWriteError::Invalid(e)) if e.field == "name"),
        "{invalid:?}"
    );
    let unknown = SegmentDefinitionId::generate();
    let missing = store
        .update_segment_definition(&t, &unknown, 1, |c| Ok(c.spec()), check_pql)
        .await;
    assert!(
        matches!(&missing, Err(SegmentDefinitionWriteError::NotFound(id)) if *id == unknown),
        "{missing:?}"
    );

    store.delete_segment_definition(&t, &created.id).await.unwrap();
    assert_eq!(store.segment_definition(&t, &created.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_segment_definition(&t, &created.id).await,
        Err(SegmentDefinitionWriteError::NotFound(_))
    ));
}

pub(crate) async fn names_and_merge_policies_are_checked(store: MetaStore) {
    let t = with_prod(&store).await;
    let first = create(&store, &t, segment_spec("first", US)).await.unwrap();
    let taken = create(&store, &t, segment_spec("first", US)).await;
    assert!(
        matches!(&taken, Err(SegmentDefinitionWriteError::NameTaken { id, name }) if *id == first.id && name == "first"),
        "{taken:?}"
    );
    let second = create(&store, &t, segment_spec("second", US)).await.unwrap();
    let onto = store
        .update_segment_definition(
            &t,
            &second.id,
            2_000,
            |current| {
                Ok(SegmentDefinitionSpec {
                    name: "first".into(),
                    ..current.spec()
                })
            },
            check_pql,
        )
        .await;
    assert!(
        matches!(&onto, Err(SegmentDefinitionWriteError::NameTaken { id, .. }) if *id == first.id),
        "{onto:?}"
    );
    let bad_pql = create(&store, &t, segment_spec("bad", "homeAddress.nope = 1")).await;
    assert!(
        matches!(bad_pql, Err(SegmentDefinitionWriteError::Pql(_))),
        "{bad_pql:?}"
    );

    let chosen = create_policy(&store, &t, definition("chosen", false)).await;
    let mut spec = segment_spec("chosen policy", US);
    spec.merge_policy_id = Some(chosen.id.clone());
    assert_eq!(create(&store, &t, spec).await.unwrap().merge_policy_id, chosen.id);
    let unknown = MergePolicyId::from_string("no-such-policy");
    let mut spec = segment_spec("unknown policy", US);
    spec.merge_policy_id = Some(unknown.clone());
    let result = create(&store, &t, spec).await;
    assert!(
        matches!(&result, Err(SegmentDefinitionWriteError::UnknownMergePolicy(id)) if *id == unknown),
        "{result:?}"
    );

    // Another sandbox: the name is free there, the policy of prod is unknown there.
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    let dev = tenant(ORG_A, "dev");
    create(&store, &dev, segment_spec("first", US)).await.unwrap();
    let mut spec = segment_spec("prod policy", US);
    spec.merge_policy_id = Some(chosen.id.clone());
    assert!(matches!(
        create(&store, &dev, spec).await,
        Err(SegmentDefinitionWriteError::UnknownMergePolicy(_))
    ));
    // A sandbox that was never created has no default policy to resolve.
    let nowhere = tenant(ORG_B, "prod");
    let result = create(&store, &nowhere, segment_spec("orphan", US)).await;
    assert!(
        matches!(result, Err(SegmentDefinitionWriteError::NoDefaultMergePolicy)),
        "{result:?}"
    );
}

pub(crate) async fn dependents_block_deletion_and_cycles_are_refused(store: MetaStore) {
    let t = with_prod(&store).await;
    // b and d name a; c names b.
    let a = create(&store, &t, segment_spec("a", US)).await.unwrap();
    let b = create(&store, &t, segment_spec("b", &in_segment(&[&a.id])))
        .await
        .unwrap();
    let c = create(&store, &t, segment_spec("c", &in_segment(&[&b.id])))
        .await
        .unwrap();
    let d = create(&store, &t, segment_spec("d", &in_segment(&[&a.id])))
        .await
        .unwrap();
    assert_eq!(b.dependencies, [a.id.to_string()]);

    let dependents = store.segment_dependents(&t, &[&a.id, &b.id, &c.id]).await.unwrap();
    assert_eq!(
        dependents.get(&a.id).cloned().map(|found| sorted(&found)),
        Some(sorted(&[b.id.clone(), d.id.clone()]))
    );
    assert_eq!(dependents.get(&b.id), Some(&vec![c.id.clone()]));
    assert_eq!(dependents.get(&c.id), None, "no dependents: no entry");
    assert!(
        store
            .segment_dependents(&tenant(ORG_A, "dev"), &[&a.id])
            .await
            .unwrap()
            .is_empty()
    );

    let closing = in_segment(&[&c.id]);
    let cycle = store
        .update_segment_definition(
            &t,
            &a.id,
            2_000,
            |current| {
                Ok(SegmentDefinitionSpec {
                    expression: closing.clone(),
                    ..current.spec()
                })
            },
            check_pql,
        )
        .await;
    let expected = [a.id.to_string(), c.id.to_string(), b.id.to_string(), a.id.to_string()];
    assert!(
        matches!(&cycle, Err(SegmentDefinitionWriteError::Cycle(path)) if path == &expected),
        "{cycle:?}"
    );
    assert_eq!(
        store.segment_definition(&t, &a.id).await.unwrap(),
        Some(a.clone()),
        "nothing written"
    );

    let refused = store.delete_segment_definition(&t, &a.id).await;
    assert!(
        matches!(&refused, Err(SegmentDefinitionWriteError::HasDependents { id, dependents }) if *id == a.id && sorted(dependents) == sorted(&[b.id.clone(), d.id.clone()])),
        "{refused:?}"
    );
    assert!(store.segment_definition(&t, &a.id).await.unwrap().is_some());
    for gone in [&c, &b, &d, &a] {
        store.delete_segment_definition(&t, &gone.id).await.unwrap();
    }
    assert!(
        store
            .segment_definitions_by_id(&t, &[a.id, b.id, c.id, d.id])
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn bulk_get_returns_known_ids(store: MetaStore) {
    let t = with_prod(&store).await;
    let a = create(&store, &t, segment_spec("a", US)).await.unwrap();
    let b = create(&store, &t, segment_spec("b", US)).await.unwrap();
    let asked = [b.id.clone(), SegmentDefinitionId::generate(), a.id.clone()];
    let mut found = store.segment_definitions_by_id(&t, &asked).await.unwrap();
    found.sort_by(|x, y| x.id.cmp(&y.id));
    let mut expected = vec![a, b];
    expected.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(found, expected);
    assert_eq!(store.segment_definitions_by_id(&t, &[]).await.unwrap(), []);
}
