//! Organizations and sandboxes: every org has `prod`, each sandbox is created once and starts
//! with its default merge policy.

use dossier_model::merge_policy::MergePolicy;
use dossier_model::schema::PROFILE_SCHEMA_NAME;
use dossier_model::tenancy::Tenant;

use super::fixtures::{ORG_A, ORG_B, org, sandbox, tenant};
use crate::StorageError;
use crate::meta::MetaStore;

fn names(listed: &[(Tenant, i64)]) -> Vec<(String, String)> {
    listed
        .iter()
        .map(|(t, _)| (t.org.to_string(), t.sandbox.to_string()))
        .collect()
}

pub(crate) async fn an_org_starts_with_prod_and_its_default_policy(store: MetaStore) {
    let prod = tenant(ORG_A, "prod");
    store.ping().await.unwrap();
    assert_eq!(store.list_sandboxes(None).await.unwrap(), Vec::new());
    assert!(!store.sandbox_exists(&prod).await.unwrap());

    store.ensure_org(&org(ORG_A)).await.unwrap();
    store.ensure_org(&org(ORG_A)).await.unwrap();
    let listed = store.list_sandboxes(Some(&org(ORG_A))).await.unwrap();
    assert_eq!(
        names(&listed),
        [(ORG_A.to_owned(), "prod".to_owned())],
        "ensure_org is idempotent"
    );
    assert!(listed[0].1 > 0, "the creation time is recorded");
    assert!(store.sandbox_exists(&prod).await.unwrap());

    let seeded = store
        .default_merge_policy(&prod, PROFILE_SCHEMA_NAME)
        .await
        .unwrap()
        .expect("prod has a default merge policy");
    assert_eq!(seeded, MergePolicy::seeded(&prod, seeded.update_epoch));
}

pub(crate) async fn sandboxes_are_created_once_and_listed_by_org(store: MetaStore) {
    // Creating a sandbox of an unknown org creates the org (its prod) too.
    store.create_sandbox(&org(ORG_B), &sandbox("dev")).await.unwrap();
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    let again = store.create_sandbox(&org(ORG_A), &sandbox("dev")).await;
    assert!(
        matches!(&again, Err(StorageError::SandboxExists { org: o, sandbox: s }) if o.as_str() == ORG_A && s.as_str() == "dev"),
        "{again:?}"
    );
    let prod_again = store.create_sandbox(&org(ORG_A), &sandbox("prod")).await;
    assert!(matches!(prod_again, Err(StorageError::SandboxExists { .. })));

    let pair = |o: &str, s: &str| (o.to_owned(), s.to_owned());
    assert_eq!(
        names(&store.list_sandboxes(None).await.unwrap()),
        [
            pair(ORG_A, "dev"),
            pair(ORG_A, "prod"),
            pair(ORG_B, "dev"),
            pair(ORG_B, "prod")
        ],
        "every org's sandboxes, by org then name"
    );
    assert_eq!(
        names(&store.list_sandboxes(Some(&org(ORG_B))).await.unwrap()),
        [pair(ORG_B, "dev"), pair(ORG_B, "prod")]
    );
    assert!(store.sandbox_exists(&tenant(ORG_B, "dev")).await.unwrap());
    assert!(!store.sandbox_exists(&tenant(ORG_A, "staging")).await.unwrap());

    let dev = tenant(ORG_A, "dev");
    let seeded = store.default_merge_policy(&dev, PROFILE_SCHEMA_NAME).await.unwrap();
    assert_eq!(
        seeded.map(|p| (p.org.to_string(), p.sandbox.to_string(), p.version)),
        Some((ORG_A.to_owned(), "dev".to_owned(), 1)),
        "a new sandbox gets its own default policy"
    );
}
