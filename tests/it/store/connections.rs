//! SSO connections and the identities their logins link.

use roster::core::events::EventKind;
use roster::core::model::{Actor, OrgId};
use roster::core::sso::{Connection, ConnectionConfig, IdpKind, Protocol};
use roster::core::store::prelude::*;

use super::Fx;
use crate::store_tests;

fn connection(id: &str, org: &OrgId) -> Connection {
    Connection {
        id: id.to_owned(),
        org_id: org.clone(),
        protocol: Protocol::Oidc,
        name: format!("Okta \"{id}\""),
        idp: IdpKind::Okta,
        config: ConnectionConfig {
            oidc_issuer: Some("https://idp.example.test".into()),
            oidc_client_id: Some("client-1".into()),
            domains: vec!["acme.test".into()],
            ..ConnectionConfig::default()
        },
        secret_enc: Some("sealed-secret".into()),
        created_at: roster::core::now(),
        disabled: false,
    }
}

async fn a_connection_round_trips(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let c = connection("conn-a", &acme.id);
    fx.changes(
        Some(&acme.id),
        &[EventKind::ConnectionCreated],
        s.insert_connection(&c, &Actor::Cli),
    )
    .await;
    let read = s.connection("conn-a").await.unwrap().expect("connection");
    assert_eq!(
        (read.org_id.clone(), read.protocol, read.idp),
        (acme.id.clone(), Protocol::Oidc, IdpKind::Okta)
    );
    assert_eq!(read.name, c.name);
    assert_eq!(read.secret_enc.as_deref(), Some("sealed-secret"));
    assert_eq!(read.config.oidc_issuer, c.config.oidc_issuer);
    assert_eq!(read.config.domains, ["acme.test"]);
    assert!(!read.config.private_networks && !read.disabled);
    // A taken id is refused whole.
    assert!(
        fx.appends_nothing(s.insert_connection(&c, &Actor::Cli))
            .await
            .is_err()
    );
    assert!(
        fx.changes(
            Some(&acme.id),
            &[EventKind::ConnectionUpdated],
            s.set_connection_private_networks("conn-a", true, &Actor::Cli),
        )
        .await
    );
    assert!(
        s.connection("conn-a")
            .await
            .unwrap()
            .unwrap()
            .config
            .private_networks
    );
    assert!(
        !fx.appends_nothing(s.set_connection_private_networks("conn-none", true, &Actor::Cli))
            .await
            .unwrap()
    );
}

async fn logins_link_identities_within_one_organization(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let (globex, g) = fx.scope("globex").await;
    s.insert_connection(&connection("conn-a", &acme.id), &Actor::Cli)
        .await
        .unwrap();
    s.insert_connection(&connection("conn-g", &globex.id), &Actor::Cli)
        .await
        .unwrap();
    let list = |o: &OrgId| {
        let o = o.clone();
        async move {
            s.list_connections(Some(&o))
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(&acme.id).await, ["conn-a"]);
    assert_eq!(list(&globex.id).await, ["conn-g"]);
    let ada = fx.user(&a, "ada").await;
    let groups = vec!["Engineering".to_owned(), "Everyone".to_owned()];
    fx.appends_nothing(s.record_login(&a, &ada, "conn-a", "sub-1", &groups, Some("ada@acme.test")))
        .await
        .unwrap();
    let linked = s
        .identity_user(&a, "conn-a", "sub-1")
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(linked.id, ada);
    assert!(linked.last_login_at.is_some());
    assert_eq!(s.idp_groups(&a, &ada).await.unwrap(), groups);
    let ids = s.identities_of(&a, &ada).await.unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        (ids[0].connection_id.as_str(), ids[0].subject.as_str()),
        ("conn-a", "sub-1")
    );
    assert_eq!(ids[0].verified_email.as_deref(), Some("ada@acme.test"));
    // A later login that vouches for no email keeps the one vouched for before.
    s.record_login(&a, &ada, "conn-a", "sub-1", &[], None)
        .await
        .unwrap();
    assert_eq!(
        s.identities_of(&a, &ada).await.unwrap()[0]
            .verified_email
            .as_deref(),
        Some("ada@acme.test")
    );
    assert!(s.idp_groups(&a, &ada).await.unwrap().is_empty());
    // The link never moves to another user while its user exists.
    let eve = fx.user(&a, "eve").await;
    s.record_login(&a, &eve, "conn-a", "sub-1", &[], None)
        .await
        .unwrap();
    assert_eq!(
        s.identity_user(&a, "conn-a", "sub-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ada.clone())
    );
    // Nothing of it is visible from another organization.
    assert!(
        s.identity_user(&g, "conn-a", "sub-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.identities_of(&g, &ada).await.unwrap().is_empty());
    assert!(s.idp_groups(&g, &ada).await.unwrap().is_empty());
    // Once its user is gone, the subject may link anew.
    roster::core::resources::delete_user(s, &a, &ada, None)
        .await
        .unwrap();
    s.record_login(&a, &eve, "conn-a", "sub-1", &[], None)
        .await
        .unwrap();
    assert_eq!(
        s.identity_user(&a, "conn-a", "sub-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(eve)
    );
}

store_tests!(
    a_connection_round_trips,
    logins_link_identities_within_one_organization
);
