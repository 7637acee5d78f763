//! Tenant schemas, identity descriptors and union schemas: a schema is found by `$id` or
//! `meta:altId` with its identities, a field has one identity and a schema one primary, and a
//! class's union is the built-in class plus the schemas of profile-enabled datasets, refusing an
//! enablement that conflicts (even when two race).

use serde_json::json;

use dossier_model::catalog::DatasetPatch;
use dossier_model::xdm::{IdentityDescriptor, RegisteredSchema, XdmType};

use super::fixtures::{ORG_A, client, dataset_on, profile_enabled_tags, profile_schema, tenant, with_prod};
use crate::meta::MetaStore;

fn loyalty_points(kind: &str) -> serde_json::Value {
    json!({"loyalty": {"type": "object", "properties": {"points": {"type": kind}}}})
}

fn descriptor(registered: &RegisteredSchema, path: &str, primary: bool, created: i64) -> IdentityDescriptor {
    IdentityDescriptor {
        id: IdentityDescriptor::generate_id(),
        org: registered.org.clone(),
        sandbox: registered.sandbox.clone(),
        schema_id: registered.schema.id.clone(),
        path: path.into(),
        namespace: "Email".into(),
        primary,
        created,
        created_client: client(),
    }
}

pub(crate) async fn schemas_round_trip_by_id_and_alt_id(store: MetaStore) {
    let t = with_prod(&store).await;
    let registered = profile_schema(&t, "Loyalty", loyalty_points("integer"));
    store.insert_schema(&registered).await.unwrap();
    assert_eq!(
        store.get_schema(&t, &registered.schema.id).await.unwrap(),
        Some(registered.clone())
    );
    assert_eq!(
        store.get_schema(&t, &registered.schema.alt_id).await.unwrap(),
        Some(registered.clone())
    );
    assert_eq!(
        store
            .get_schema(&t, "https://ns.adobe.com/nobody/schemas/none")
            .await
            .unwrap(),
        None
    );
    let fetched = store.get_schema(&t, &registered.schema.id).await.unwrap().unwrap();
    assert_eq!(fetched.schema.resolve_path("loyalty.points"), Some(&XdmType::Integer));
}

pub(crate) async fn identity_descriptors_one_per_field_and_one_primary(store: MetaStore) {
    let t = with_prod(&store).await;
    let person = profile_schema(&t, "Person", json!({}));
    let other = profile_schema(&t, "Other", json!({}));
    store.insert_schema(&person).await.unwrap();
    store.insert_schema(&other).await.unwrap();

    let email = descriptor(&person, "personalEmail.address", true, 10);
    assert!(store.insert_identity_descriptor(&email).await.unwrap());
    assert_eq!(
        store.get_identity_descriptor(&t, &email.id).await.unwrap(),
        Some(email.clone())
    );
    assert_eq!(store.get_identity_descriptor(&t, "0000").await.unwrap(), None);

    let same_field = descriptor(&person, "personalEmail.address", false, 11);
    assert!(
        !store.insert_identity_descriptor(&same_field).await.unwrap(),
        "one identity per field"
    );
    let second_primary = descriptor(&person, "mobilePhone.number", true, 12);
    assert!(
        !store.insert_identity_descriptor(&second_primary).await.unwrap(),
        "one primary per schema"
    );
    let phone = descriptor(&person, "mobilePhone.number", false, 13);
    assert!(store.insert_identity_descriptor(&phone).await.unwrap());
    let other_primary = descriptor(&other, "personalEmail.address", true, 14);
    assert!(
        store.insert_identity_descriptor(&other_primary).await.unwrap(),
        "rules are per schema"
    );
    assert_eq!(store.get_identity_descriptor(&t, &same_field.id).await.unwrap(), None);

    assert_eq!(
        store.list_identity_descriptors(&t).await.unwrap(),
        [email.clone(), phone.clone(), other_primary],
        "oldest first"
    );
    let with_identities = store.get_schema(&t, &person.schema.id).await.unwrap().unwrap();
    assert_eq!(
        with_identities.schema.identities,
        [email.identity_field(), phone.identity_field()]
    );
}

pub(crate) async fn unions_grow_with_enabled_datasets_and_refuse_conflicts(store: MetaStore) {
    let t = with_prod(&store).await;
    let integer = profile_schema(&t, "Integer points", loyalty_points("integer"));
    let string = profile_schema(&t, "String points", loyalty_points("string"));
    store.insert_schema(&integer).await.unwrap();
    store.insert_schema(&string).await.unwrap();

    let union = store.profile_union(&t).await.unwrap();
    assert_eq!(
        union.resolve_path("loyalty.points"),
        None,
        "only enabled datasets add to the union"
    );
    let disabled = dataset_on(&t, "disabled", &integer.schema.id, false, 1);
    assert_eq!(store.insert_dataset_checked(&disabled).await.unwrap(), Ok(()));
    assert_eq!(
        store.profile_union(&t).await.unwrap().resolve_path("loyalty.points"),
        None
    );

    // Two conflicting enablements race: exactly one gets in.
    let racers: Vec<_> = [&integer, &string]
        .into_iter()
        .map(|schema| {
            let (store, dataset) = (store.clone(), dataset_on(&t, "racer", &schema.schema.id, true, 2));
            tokio::spawn(async move { store.insert_dataset_checked(&dataset).await.unwrap().is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for racer in racers {
        admitted += usize::from(racer.await.unwrap());
    }
    assert_eq!(admitted, 1, "a second enablement is checked against the first");

    let union = store.profile_union(&t).await.unwrap();
    let points = union
        .resolve_path("loyalty.points")
        .cloned()
        .expect("the union has the field");
    assert!(points == XdmType::Integer || points == XdmType::String, "{points:?}");
    let (winner, loser) = if points == XdmType::Integer {
        (&integer, &string)
    } else {
        (&string, &integer)
    };
    assert_eq!(
        union.extends,
        [
            "https://ns.adobe.com/xdm/context/profile".to_owned(),
            winner.schema.id.clone()
        ]
    );
    assert_eq!(store.event_union(&t).await.unwrap().resolve_path("loyalty"), None);

    // Enabling later is checked too, and a refused patch writes nothing.
    let later = dataset_on(&t, "later", &loser.schema.id, false, 3);
    assert_eq!(store.insert_dataset_checked(&later).await.unwrap(), Ok(()));
    let enable = DatasetPatch {
        tags: Some(profile_enabled_tags()),
        ..DatasetPatch::default()
    };
    let refused = store.update_dataset_checked(&t, &later.id, &enable, 4).await.unwrap();
    let conflict = refused.expect_err("conflicts with the union");
    assert_eq!(
        (conflict.path.as_str(), conflict.schema_id.as_str()),
        ("loyalty.points", loser.schema.id.as_str())
    );
    assert!(
        !store
            .get_dataset(&t, &later.id)
            .await
            .unwrap()
            .unwrap()
            .is_profile_enabled()
    );

    let enabled = store
        .update_dataset_checked(&t, &disabled.id, &enable, 5)
        .await
        .unwrap();
    if winner.schema.id == integer.schema.id {
        assert!(enabled.expect("fits the union").expect("exists").is_profile_enabled());
    } else {
        assert!(enabled.is_err(), "the integer schema conflicts with the string union");
    }
    let missing = store
        .update_dataset_checked(&t, &dossier_model::ids::DatasetId::generate(), &enable, 6)
        .await
        .unwrap();
    assert_eq!(missing.map(|d| d.is_none()), Ok(true));

    let dev = tenant(ORG_A, "dev");
    assert_eq!(store.get_schema(&dev, &integer.schema.id).await.unwrap(), None);
    assert_eq!(store.profile_union(&dev).await.unwrap().resolve_path("loyalty"), None);
}
