//! SCIM directories, their tokens, and their traffic.

use roster::core::events::EventKind;
use roster::core::model::Actor;
use roster::core::store::prelude::*;
use roster::core::store::{RecentRequest, TrafficCount};

use super::Fx;
use crate::store_tests;

async fn directories_and_tokens_round_trip(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let dir = fx
        .changes(
            Some(&acme.id),
            &[EventKind::DirectoryCreated],
            s.create_directory(&acme, "Okta \"prod\"", &Actor::Cli),
        )
        .await;
    let read = s.directory(&dir.id).await.unwrap().expect("directory");
    assert_eq!(read.org_id, acme.id);
    assert_eq!(read.org_slug, "acme");
    assert_eq!(read.name, "Okta \"prod\"");
    assert!(s.org_has_directory(&acme.id).await.unwrap());
    let rw = fx
        .changes(
            Some(&acme.id),
            &[EventKind::DirectoryTokenCreated],
            s.add_token(&dir, "hash-rw", false, &Actor::Cli),
        )
        .await;
    let ro = fx
        .changes(
            Some(&acme.id),
            &[EventKind::DirectoryTokenCreated],
            s.add_token(&dir, "hash-ro", true, &Actor::Cli),
        )
        .await;
    let grant = s.token_grant("hash-rw").await.unwrap().expect("grant");
    assert_eq!(
        (
            grant.token_id.as_str(),
            grant.directory_id.as_str(),
            &grant.org,
            grant.read_only
        ),
        (rw.id.as_str(), dir.id.as_str(), &acme.id, false)
    );
    assert!(s.token_grant("hash-ro").await.unwrap().unwrap().read_only);
    assert!(s.token_grant("hash-unknown").await.unwrap().is_none());
    let ids: Vec<String> = s
        .list_tokens(&dir.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [rw.id.clone(), ro.id.clone()]);
    // Revoked: no grant, listed as revoked; revoking again changes nothing.
    assert!(
        fx.changes(
            Some(&acme.id),
            &[EventKind::DirectoryTokenRevoked],
            s.revoke_scim_token(&dir, &rw.id, &Actor::Cli),
        )
        .await
    );
    assert!(s.token_grant("hash-rw").await.unwrap().is_none());
    assert!(s.token_grant("hash-ro").await.unwrap().is_some());
    let listed = s.list_tokens(&dir.id).await.unwrap();
    assert!(listed[0].revoked_at.is_some() && listed[1].revoked_at.is_none());
    assert!(
        !fx.appends_nothing(s.revoke_scim_token(&dir, &rw.id, &Actor::Cli))
            .await
            .unwrap()
    );
}

async fn directories_are_isolated(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let globex = fx.org("globex").await;
    let a = s.create_directory(&acme, "a", &Actor::Cli).await.unwrap();
    let g = s.create_directory(&globex, "g", &Actor::Cli).await.unwrap();
    let token = s.add_token(&a, "hash-a", false, &Actor::Cli).await.unwrap();
    let of = |dirs: Vec<roster::core::model::Directory>| -> Vec<String> {
        dirs.into_iter().map(|d| d.id).collect()
    };
    assert_eq!(
        of(s.list_directories(Some(&acme.id)).await.unwrap()),
        [a.id.as_str()]
    );
    assert_eq!(
        of(s.list_directories(Some(&globex.id)).await.unwrap()),
        [g.id.as_str()]
    );
    assert_eq!(s.list_directories(None).await.unwrap().len(), 2);
    // Another organization's directory cannot revoke this one's token.
    assert!(
        !fx.appends_nothing(s.revoke_scim_token(&g, &token.id, &Actor::Cli))
            .await
            .unwrap()
    );
    assert_eq!(s.token_grant("hash-a").await.unwrap().unwrap().org, acme.id);
    assert!(s.list_tokens(&g.id).await.unwrap().is_empty());
    let none = fx.org("initech").await;
    assert!(!s.org_has_directory(&none.id).await.unwrap());
}

async fn traffic_is_counted_per_directory(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let a = s.create_directory(&acme, "a", &Actor::Cli).await.unwrap();
    let b = s.create_directory(&acme, "b", &Actor::Cli).await.unwrap();
    let req = |dir: &str, i: i64| RecentRequest {
        directory_id: dir.to_owned(),
        at: format!("2026-01-01T00:00:{i:02}.000000Z"),
        method: "GET".into(),
        path: format!("/Users/{i}"),
        status: 200,
        latency_us: i,
        user_agent: "Okta SCIM Client 1.0.0".into(),
        request_id: Some(format!("r{i}")),
    };
    let reqs: Vec<RecentRequest> = (0..5)
        .map(|i| req(&a.id, i))
        .chain([req(&b.id, 9)])
        .collect();
    let events = fx.events().await.len();
    s.add_recent_requests(&reqs, 3).await.unwrap();
    let recent = s.recent_requests(&a.id, 10).await.unwrap();
    let paths: Vec<&str> = recent.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/Users/4", "/Users/3", "/Users/2"],
        "the newest three, newest first"
    );
    assert_eq!(recent[0].request_id.as_deref(), Some("r4"));
    assert_eq!(s.recent_requests(&b.id, 10).await.unwrap().len(), 1);
    let count = TrafficCount {
        directory_id: a.id.clone(),
        minute: "2026-01-01T00:00".into(),
        user_agent: "Okta SCIM Client 1.0.0".into(),
        requests: 4,
        errors: 1,
        last_request_at: "2026-01-01T00:00:30.000000Z".into(),
    };
    s.add_traffic(std::slice::from_ref(&count)).await.unwrap();
    s.add_traffic(&[count]).await.unwrap();
    let stats = s.org_stats(&acme.id).await.unwrap();
    assert_eq!(
        stats.last_scim_request_at.as_deref(),
        Some("2026-01-01T00:00:30.000000Z")
    );
    assert_eq!(fx.events().await.len(), events, "traffic is not an event");
}

store_tests!(
    directories_and_tokens_round_trip,
    directories_are_isolated,
    traffic_is_counted_per_directory
);
