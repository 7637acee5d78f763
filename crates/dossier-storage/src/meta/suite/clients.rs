//! API clients and the token signing key: a secret authenticates only its own client until the
//! client is revoked; every caller sees one signing key.

use super::fixtures::{ORG_A, ORG_B, org, sandbox, tenant};
use crate::StorageError;
use crate::meta::MetaStore;

pub(crate) async fn a_client_authenticates_with_its_secret_only(store: MetaStore) {
    let first = store.create_client(&org(ORG_A), None).await.unwrap();
    let second = store.create_client(&org(ORG_B), None).await.unwrap();
    assert!(first.secret.starts_with("dsk-"), "{}", first.secret);
    assert_ne!(first.secret, second.secret);
    assert_ne!(first.client.client_id, second.client.client_id);
    assert_eq!(
        (first.client.org.as_str(), &first.client.sandboxes, first.client.revoked),
        (ORG_A, &None, None)
    );
    assert!(
        store.sandbox_exists(&tenant(ORG_A, "prod")).await.unwrap(),
        "creating a client creates its org's prod"
    );

    let id = first.client.client_id.as_str();
    assert_eq!(
        store.authenticate_client(id, &first.secret).await.unwrap(),
        Some(first.client.clone())
    );
    assert_eq!(store.authenticate_client(id, "dsk-wrong").await.unwrap(), None);
    assert_eq!(store.authenticate_client(id, &second.secret).await.unwrap(), None);
    assert_eq!(
        store
            .authenticate_client("no-such-client", &first.secret)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_client(id).await.unwrap(), Some(first.client.clone()));
    assert_eq!(store.get_client("no-such-client").await.unwrap(), None);

    // Oldest first; clients created in the same millisecond go by id.
    let mut both = vec![first.client.clone(), second.client.clone()];
    both.sort_by(|x, y| (x.created, &x.client_id).cmp(&(y.created, &y.client_id)));
    assert_eq!(store.list_clients(None).await.unwrap(), both);
    assert_eq!(store.list_clients(Some(&org(ORG_B))).await.unwrap(), [second.client]);
}

pub(crate) async fn revoking_stops_the_secret_and_is_idempotent(store: MetaStore) {
    let revoked = store.create_client(&org(ORG_A), None).await.unwrap();
    let kept = store.create_client(&org(ORG_A), None).await.unwrap();
    let id = revoked.client.client_id.as_str();

    let after = store.revoke_client(id).await.unwrap();
    let when = after.revoked.expect("revoke sets the time");
    assert_eq!(after.client_id, revoked.client.client_id);
    assert_eq!(store.authenticate_client(id, &revoked.secret).await.unwrap(), None);
    assert_eq!(store.get_client(id).await.unwrap().and_then(|c| c.revoked), Some(when));

    let again = store.revoke_client(id).await.unwrap();
    assert_eq!(again.revoked, Some(when), "a second revoke keeps the first time");
    let unknown = store.revoke_client("no-such-client").await;
    assert!(
        matches!(&unknown, Err(StorageError::UnknownClient(i)) if i == "no-such-client"),
        "{unknown:?}"
    );

    let other = kept.client.client_id.as_str();
    assert_eq!(
        store.authenticate_client(other, &kept.secret).await.unwrap(),
        Some(kept.client)
    );
}

pub(crate) async fn clients_are_limited_to_existing_sandboxes(store: MetaStore) {
    store.create_sandbox(&org(ORG_A), &sandbox("dev")).await.unwrap();
    let limited = store
        .create_client(&org(ORG_A), Some(vec![sandbox("dev")]))
        .await
        .unwrap();
    assert_eq!(limited.client.sandboxes, Some(vec![sandbox("dev")]));
    assert!(limited.client.may_use(&sandbox("dev")));
    assert!(!limited.client.may_use(&sandbox("prod")));
    let stored = store
        .authenticate_client(limited.client.client_id.as_str(), &limited.secret)
        .await
        .unwrap();
    assert_eq!(stored, Some(limited.client.clone()), "the sandbox list round-trips");

    let unknown = store.create_client(&org(ORG_A), Some(vec![sandbox("staging")])).await;
    assert!(
        matches!(&unknown, Err(StorageError::UnknownSandbox { org: o, sandbox: s }) if o.as_str() == ORG_A && s.as_str() == "staging"),
        "{unknown:?}"
    );
    // Another org's sandbox of the same name does not count.
    let elsewhere = store.create_client(&org(ORG_B), Some(vec![sandbox("dev")])).await;
    assert!(
        matches!(elsewhere, Err(StorageError::UnknownSandbox { .. })),
        "{elsewhere:?}"
    );
    assert_eq!(
        store.list_clients(None).await.unwrap(),
        [limited.client],
        "refused clients are not stored"
    );
}

pub(crate) async fn the_signing_key_is_made_once(store: MetaStore) {
    // Racing first calls (several servers starting on one store) must agree on one key.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.token_signing_key().await.unwrap() })
        })
        .collect();
    let mut keys = Vec::new();
    for call in calls {
        keys.push(call.await.unwrap());
    }
    let key = keys[0].clone();
    assert_eq!(key.len(), 32);
    assert!(key.iter().any(|b| *b != 0), "a random key");
    assert!(keys.iter().all(|k| *k == key), "every caller sees the same key");
    assert_eq!(store.token_signing_key().await.unwrap(), key, "stable across calls");
}
