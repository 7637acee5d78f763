//! Paging: every listing reads `limit` items after `start` in a total order (ties broken the
//! same way on every page, so walking the pages visits each item once), listings that report a
//! total count every match whatever the page, and the largest offset the API accepts
//! ([`MAX_OFFSET`]) reads an empty page rather than failing.

use std::collections::HashMap;

use serde_json::json;

use dossier_model::catalog::{BatchStatus, Dataset};
use dossier_model::ids::{DatasetId, SegmentDefinitionId};
use dossier_model::listing::{Direction, ListQuery, MAX_OFFSET};
use dossier_model::merge_policy::{MergePolicyDefinition, MergePolicyListQuery, SEEDED_MERGE_POLICY_NAME};
use dossier_model::segment_definition::SegmentDefinitionListQuery;
use dossier_model::tenancy::Tenant;
use dossier_model::xdm::{SchemaListQuery, SchemaOrder};

use super::catalog::by_created;
use super::fixtures::{
    batch, created_export_job, new_export_job, profile_schema, segment_spec, stored_dataset, with_prod,
};
use super::merge_policies::{create as create_policy, definition};
use crate::meta::{BatchFilter, DatasetFilter, ExportJobListing, MetaStore};

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Every page of `limit` datasets in `order`, concatenated.
async fn walk_datasets(store: &MetaStore, t: &Tenant, order: (&str, Direction), limit: u32) -> Vec<DatasetId> {
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let query = ListQuery {
            limit,
            start,
            order_by: (order.0.into(), order.1),
            properties: None,
        };
        let page = store.list_datasets(t, &query, &DatasetFilter::default()).await.unwrap();
        assert!(page.len() <= limit as usize);
        if page.is_empty() {
            return seen;
        }
        start += page.len() as u64;
        seen.extend(page.into_iter().map(|d| d.id));
    }
}

pub(crate) async fn datasets_and_batches_page_in_order(store: MetaStore) {
    let t = with_prod(&store).await;
    let mut inserted: Vec<Dataset> = Vec::new();
    for (name, created) in [("e", 5), ("d", 1), ("c", 3), ("b", 3), ("a", 2)] {
        inserted.push(stored_dataset(&store, &t, name, created).await);
    }
    let id = |name: &str| inserted.iter().find(|d| d.name == name).unwrap().id.clone();
    let by_created_asc: Vec<DatasetId> = ["d", "a", "c", "b", "e"].map(id).to_vec();
    assert_eq!(
        walk_datasets(&store, &t, ("created", Direction::Asc), 2).await,
        by_created_asc
    );
    let mut by_created_desc = by_created_asc.clone();
    by_created_desc.reverse();
    assert_eq!(
        walk_datasets(&store, &t, ("created", Direction::Desc), 2).await,
        by_created_desc,
        "ties reverse too"
    );
    assert_eq!(
        walk_datasets(&store, &t, ("name", Direction::Asc), 3).await,
        ["a", "b", "c", "d", "e"].map(id)
    );
    let one = store
        .list_datasets(&t, &by_created(1, 4), &DatasetFilter::default())
        .await
        .unwrap();
    assert_eq!(one.into_iter().map(|d| d.id).collect::<Vec<_>>(), [id("e")]);
    assert_eq!(
        store
            .list_datasets(&t, &by_created(10, 5), &DatasetFilter::default())
            .await
            .unwrap(),
        []
    );

    let target = &inserted[0];
    let mut batches = Vec::new();
    for created in [30, 10, 20, 10] {
        let b = batch(target, BatchStatus::Loading, created);
        store.insert_batch(&b).await.unwrap();
        batches.push(b.id);
    }
    let mut walked = Vec::new();
    for start in [0, 3] {
        let page = store
            .list_batches(&t, &by_created(3, start), &BatchFilter::default())
            .await
            .unwrap();
        walked.extend(page.into_iter().map(|b| b.id));
    }
    assert_eq!(
        walked,
        [&batches[1], &batches[3], &batches[2], &batches[0]].map(|b| b.clone())
    );
}

pub(crate) async fn schemas_page_in_order(store: MetaStore) {
    let t = with_prod(&store).await;
    let mut ids = Vec::new();
    for title in ["b", "a", "c"] {
        let registered = profile_schema(&t, title, json!({}));
        store.insert_schema(&registered).await.unwrap();
        ids.push(registered.schema.id);
    }
    let titles = |order, limit, start| {
        let store = store.clone();
        let t = t.clone();
        async move {
            let query = SchemaListQuery { limit, start, order };
            let page = store.list_schemas(&t, &query).await.unwrap();
            page.into_iter().map(|s| s.schema.title).collect::<Vec<_>>()
        }
    };
    assert_eq!(titles(SchemaOrder::Created, 10, 0).await, ["b", "a", "c"]);
    assert_eq!(titles(SchemaOrder::TitleAsc, 2, 0).await, ["a", "b"]);
    assert_eq!(titles(SchemaOrder::TitleAsc, 2, 2).await, ["c"]);
    assert_eq!(titles(SchemaOrder::TitleDesc, 10, 0).await, ["c", "b", "a"]);
    assert_eq!(titles(SchemaOrder::Created, 10, 3).await, Vec::<String>::new());
}

pub(crate) async fn merge_policies_page_with_totals(store: MetaStore) {
    let t = with_prod(&store).await;
    for name in ["b", "A", "c"] {
        create_policy(&store, &t, definition(name, false)).await;
    }
    let listed = |pairs: &[(&str, &str)]| {
        let query = MergePolicyListQuery::from_params(&params(pairs)).unwrap();
        let (store, t) = (store.clone(), t.clone());
        async move {
            let page = store.list_merge_policies(&t, &query).await.unwrap();
            (page.items.into_iter().map(|p| p.name).collect::<Vec<_>>(), page.total)
        }
    };
    let seeded = SEEDED_MERGE_POLICY_NAME.to_owned();
    let s = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        listed(&[("limit", "2")]).await,
        (s(&["A", "b"]), 4),
        "by name, any case"
    );
    assert_eq!(
        listed(&[("limit", "2"), ("start", "2")]).await,
        (vec!["c".into(), seeded.clone()], 4)
    );
    assert_eq!(
        listed(&[("orderBy", "-name"), ("limit", "1")]).await,
        (vec![seeded.clone()], 4)
    );
    assert_eq!(listed(&[("default", "true")]).await, (vec![seeded.clone()], 1));
    assert_eq!(
        listed(&[("default", "false"), ("limit", "1"), ("start", "1")]).await,
        (s(&["b"]), 3)
    );

    // A new version replaces its policy in the listing; it is not a second item.
    let a = store
        .list_merge_policies(
            &t,
            &MergePolicyListQuery::from_params(&params(&[("limit", "1")])).unwrap(),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    store
        .update_merge_policy(&t, &a.id, 5_000, |current| {
            Ok(MergePolicyDefinition {
                name: "z".into(),
                ..current.definition()
            })
        })
        .await
        .unwrap();
    assert_eq!(listed(&[]).await, (s(&["b", "c", SEEDED_MERGE_POLICY_NAME, "z"]), 4));
    assert_eq!(
        listed(&[("start", "4")]).await,
        (Vec::new(), 4),
        "past the end: empty, total kept"
    );
}

pub(crate) async fn segment_definitions_page_with_totals(store: MetaStore) {
    let t = with_prod(&store).await;
    let mut ids: Vec<SegmentDefinitionId> = Vec::new();
    for (index, name) in ["b", "c", "a"].iter().enumerate() {
        let mut spec = segment_spec(name, "homeAddress.countryCode = \"US\"");
        spec.batch_enabled = index != 1;
        let created = store
            .create_segment_definition(
                &t,
                SegmentDefinitionId::generate(),
                spec,
                1_000 + index as i64,
                super::fixtures::check_pql,
            )
            .await
            .unwrap();
        ids.push(created.id);
    }
    let listed = |pairs: &[(&str, &str)]| {
        let query = SegmentDefinitionListQuery::from_params(&params(pairs)).unwrap();
        let (store, t) = (store.clone(), t.clone());
        async move {
            let page = store.list_segment_definitions(&t, &query).await.unwrap();
            (page.items.into_iter().map(|d| d.name).collect::<Vec<_>>(), page.total)
        }
    };
    let s = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        listed(&[("limit", "2")]).await,
        (s(&["a", "c"]), 3),
        "newest first by default"
    );
    assert_eq!(listed(&[("limit", "2"), ("start", "2")]).await, (s(&["b"]), 3));
    assert_eq!(listed(&[("limit", "2"), ("page", "2")]).await, (s(&["b"]), 3));
    assert_eq!(listed(&[("sort", "name:asc")]).await, (s(&["a", "b", "c"]), 3));
    assert_eq!(
        listed(&[("sort", "creationTime:asc"), ("limit", "1")]).await,
        (s(&["b"]), 3)
    );
    assert_eq!(
        listed(&[("sort", "name:desc"), ("evaluationInfo.batch.enabled", "true")]).await,
        (s(&["b", "a"]), 2)
    );
    assert_eq!(
        listed(&[("evaluationInfo.batch.enabled", "false")]).await,
        (s(&["c"]), 1)
    );
    assert_eq!(
        listed(&[("evaluationInfo.continuous.enabled", "true")]).await,
        (Vec::new(), 0)
    );
    assert_eq!(listed(&[("start", "3")]).await, (Vec::new(), 3));
}

pub(crate) async fn export_jobs_page_newest_first(store: MetaStore) {
    let t = with_prod(&store).await;
    let target = stored_dataset(&store, &t, "target", 1).await.id;
    for created in [10, 10, 20] {
        created_export_job(&store, &new_export_job(&t, &target, created, None)).await;
    }
    let page = |after, skip, limit| ExportJobListing {
        status: None,
        after,
        skip,
        limit,
    };
    let ids = |listing: ExportJobListing| {
        let (store, t) = (store.clone(), t.clone());
        async move {
            let jobs = store.list_export_jobs(&t, &listing).await.unwrap();
            jobs.iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(page(None, 0, 10)).await,
        [3, 2, 1],
        "by (created, id), newest first"
    );
    assert_eq!(ids(page(None, 1, 10)).await, [2, 1]);
    assert_eq!(ids(page(None, 0, 2)).await, [3, 2]);
    assert_eq!(ids(page(Some((10, 2)), 0, 10)).await, [1], "strictly after the cursor");
    assert_eq!(ids(page(Some((20, 3)), 0, 1)).await, [2]);
    assert_eq!(ids(page(Some((20, 3)), 1, 10)).await, [1]);
    assert_eq!(ids(page(Some((10, 1)), 0, 10)).await, Vec::<i64>::new());
}

pub(crate) async fn the_largest_offset_reads_an_empty_page(store: MetaStore) {
    let t = with_prod(&store).await;
    let dataset = stored_dataset(&store, &t, "crm", 1).await;
    store
        .insert_batch(&batch(&dataset, BatchStatus::Loading, 2))
        .await
        .unwrap();
    store.insert_schema(&profile_schema(&t, "s", json!({}))).await.unwrap();
    store
        .create_segment_definition(
            &t,
            SegmentDefinitionId::generate(),
            segment_spec("a", "homeAddress.countryCode = \"US\""),
            1,
            super::fixtures::check_pql,
        )
        .await
        .unwrap();
    created_export_job(&store, &new_export_job(&t, &dataset.id, 3, None)).await;

    let far = by_created(100, MAX_OFFSET);
    assert_eq!(
        store.list_datasets(&t, &far, &DatasetFilter::default()).await.unwrap(),
        []
    );
    assert_eq!(store.list_batches(&t, &far, &BatchFilter::default()).await.unwrap(), []);
    let schemas = SchemaListQuery {
        limit: 100,
        start: MAX_OFFSET,
        order: SchemaOrder::TitleAsc,
    };
    assert_eq!(store.list_schemas(&t, &schemas).await.unwrap(), []);
    let start = MAX_OFFSET.to_string();
    let policies = MergePolicyListQuery::from_params(&params(&[("start", &start)])).unwrap();
    let page = store.list_merge_policies(&t, &policies).await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 1));
    let segments = SegmentDefinitionListQuery::from_params(&params(&[("start", &start)])).unwrap();
    let page = store.list_segment_definitions(&t, &segments).await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 1));
    let jobs = ExportJobListing {
        skip: MAX_OFFSET,
        limit: 100,
        ..ExportJobListing::default()
    };
    assert_eq!(store.list_export_jobs(&t, &jobs).await.unwrap(), []);
    // The same listings from the start do find the items, so the empty pages above mean something.
    assert_eq!(
        store
            .list_datasets(&t, &by_created(100, 0), &DatasetFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // The ingestion batch and the export job's batch.
    assert_eq!(
        store
            .list_batches(&t, &by_created(100, 0), &BatchFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    let jobs_from_start = ExportJobListing {
        limit: 100,
        ..ExportJobListing::default()
    };
    assert_eq!(store.list_export_jobs(&t, &jobs_from_start).await.unwrap().len(), 1);
}
