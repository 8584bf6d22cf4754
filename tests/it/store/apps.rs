//! Apps and the signing keys their tokens are signed with (instance-wide: no organization).

use roster::core::events::EventKind;
use roster::core::keys::SigningKeyRecord;
use roster::core::model::Actor;
use roster::core::sessions::App;
use roster::core::store::prelude::*;
use serde_json::json;

use super::Fx;
use crate::store_tests;

fn app(id: &str) -> App {
    App {
        id: id.into(),
        name: format!("App \"{id}\""),
        secret_hash: format!("hash-{id}"),
        redirect_uris: vec!["https://app.test/cb".into(), "http://127.0.0.1:9/cb".into()],
        created_at: roster::core::now(),
        revoked: false,
    }
}

fn key(kid: &str, created_at: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        private_enc: format!("sealed-{kid}"),
        public_jwk: json!({"kty": "EC", "kid": kid}),
        created_at: created_at.into(),
        retired_at: None,
    }
}

async fn an_app_round_trips(fx: &Fx) {
    let s = fx.store();
    let a = app("app-1");
    fx.changes(
        None,
        &[EventKind::AppCreated],
        s.insert_app(&a, &Actor::Cli),
    )
    .await;
    let read = s.app("app-1").await.unwrap().expect("app");
    assert_eq!(
        (read.name.as_str(), read.secret_hash.as_str()),
        (a.name.as_str(), "hash-app-1")
    );
    assert_eq!(read.redirect_uris, a.redirect_uris);
    assert!(!read.revoked);
    assert!(s.app("app-2").await.unwrap().is_none());
    // A taken id fails whole.
    let mut again = app("app-1");
    again.name = "Other".into();
    assert!(
        fx.appends_nothing(s.insert_app(&again, &Actor::Cli))
            .await
            .is_err()
    );
    let apps = s.list_apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, a.name);
}

async fn a_new_signing_key_retires_the_others_in_one_transaction(fx: &Fx) {
    let s = fx.store();
    fx.changes(
        None,
        &[EventKind::SigningKeyRotated],
        s.insert_signing_key(&key("k1", "2026-01-01T00:00:00.000000Z")),
    )
    .await;
    fx.changes(
        None,
        &[EventKind::SigningKeyRotated],
        s.insert_signing_key(&key("k2", "2026-02-01T00:00:00.000000Z")),
    )
    .await;
    let keys = s.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k2", "k1"], "newest first");
    assert!(keys[0].retired_at.is_none());
    assert_eq!(
        keys[1].retired_at.as_deref(),
        Some("2026-02-01T00:00:00.000000Z")
    );
    assert_eq!(keys[0].public_jwk, json!({"kty": "EC", "kid": "k2"}));
    // A key whose insert fails retires nothing: the current key stays current.
    let dup = fx
        .appends_nothing(s.insert_signing_key(&key("k2", "2026-03-01T00:00:00.000000Z")))
        .await;
    assert!(dup.is_err());
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].retired_at.is_none(),
        "the failed rotation left k2 current"
    );
}

store_tests!(
    an_app_round_trips,
    a_new_signing_key_retires_the_others_in_one_transaction
);
