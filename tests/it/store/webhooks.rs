//! Webhook endpoints and their deliveries: leases fence settlement, cursors stay per endpoint.

use roster::core::events::EventKind;
use roster::core::model::{Actor, OrgId};
use roster::core::now_plus_secs as at;
use roster::core::store::Attempt;
use roster::core::store::prelude::*;
use roster::core::webhooks::{Endpoint, new_endpoint};

use super::Fx;
use crate::store_tests;

fn endpoint(fx: &Fx, org: Option<&OrgId>, url: &str) -> Endpoint {
    new_endpoint(&fx.db.master_key(), org, url, "user.*", false)
        .expect("endpoint")
        .0
}

fn delivered(event_id: i64, org: &OrgId) -> Attempt {
    Attempt {
        event_id,
        org_id: Some(org.as_str().to_owned()),
        at: roster::core::now(),
        response_status: Some(204),
        error: None,
        duration_ms: 3,
        status: "delivered",
        next_attempt_at: None,
    }
}

async fn an_endpoint_round_trips(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let globex = fx.org("globex").await;
    let ep = endpoint(
        fx,
        Some(&acme.id),
        "https://user:secret@hooks.acme.test/in?token=t0ken",
    );
    let start = s.last_event_cursor().await.unwrap();
    fx.changes(
        Some(&acme.id),
        &[EventKind::WebhookCreated],
        s.insert_webhook(&ep, &Actor::Cli),
    )
    .await;
    let event = fx.events().await.pop().unwrap();
    assert!(
        !event.data.to_string().contains("secret") && !event.data.to_string().contains("t0ken"),
        "{}",
        event.data
    );
    let listed = s.list_webhooks(Some(&acme.id)).await.unwrap();
    assert_eq!(listed.len(), 1);
    let read = &listed[0];
    assert_eq!(
        (read.id.as_str(), read.org_id.as_ref()),
        (ep.id.as_str(), Some(&acme.id))
    );
    assert_eq!(read.url_enc, ep.url_enc, "the URL is kept sealed");
    assert!(!read.url.contains("secret") && !read.url.contains("t0ken"));
    assert_eq!(read.event_types, ["user.*"]);
    assert!(s.list_webhooks(Some(&globex.id)).await.unwrap().is_empty());
    // An endpoint starts at the feed's end: it is not sent what came before it.
    assert!(
        read.cursor >= start && read.cursor < event.cursor,
        "{start} {} {}",
        read.cursor,
        event.cursor
    );
    assert!(
        fx.changes(
            Some(&acme.id),
            &[EventKind::WebhookDisabled],
            s.disable_webhook(&ep.id, &Actor::Cli)
        )
        .await
    );
    assert!(
        s.list_webhooks(Some(&acme.id)).await.unwrap()[0]
            .disabled_at
            .is_some()
    );
    assert!(
        !fx.appends_nothing(s.disable_webhook(&ep.id, &Actor::Cli))
            .await
            .unwrap()
    );
    assert!(
        !fx.appends_nothing(s.disable_webhook("no-such", &Actor::Cli))
            .await
            .unwrap()
    );
}

async fn a_lease_fences_settlement_and_sees_only_its_organization(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let (_, g) = fx.scope("globex").await;
    let ep = endpoint(fx, Some(&acme.id), "https://hooks.acme.test/in");
    s.insert_webhook(&ep, &Actor::Cli).await.unwrap();
    let now = roster::core::now();
    // Its own creation is an acme event after its cursor: due.
    let leased = s.lease_webhooks("node-a", &now, &at(30), 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        s.lease_webhooks("node-b", &now, &at(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "one holder"
    );
    let last = s.last_event_cursor().await.unwrap();
    assert!(
        !s.settle_webhook(&ep.id, "node-b", &[], last, &now, &at(30))
            .await
            .unwrap(),
        "fenced"
    );
    assert!(
        s.settle_webhook(
            &ep.id,
            "node-a",
            &[delivered(last, &acme.id)],
            last,
            &now,
            &at(30)
        )
        .await
        .unwrap()
    );
    s.release_webhook(&ep.id, "node-a").await.unwrap();
    assert_eq!(s.delivery_attempts(&ep.id, last).await.unwrap(), 1);
    let d = s.deliveries(&ep.id, None, 10).await.unwrap();
    assert_eq!(
        (d.len(), d[0].status.as_str(), d[0].response_status),
        (1, "delivered", Some(204))
    );
    assert_eq!(
        s.delivery_attempt_log(&ep.id, last).await.unwrap()[0].node,
        "node-a"
    );
    // Another organization's changes do not make it due. (`webhooks_due` answers from
    // sealed events: on PostgreSQL the seal loop signals the dispatcher once they are.)
    fx.user(&g, "someone").await;
    all_sealed(s).await;
    let now = roster::core::now();
    assert!(!s.webhooks_due(&now).await.unwrap());
    assert!(
        s.lease_webhooks("node-a", &now, &at(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    fx.user(&a, "ada").await;
    all_sealed(s).await;
    let now = roster::core::now();
    assert!(s.webhooks_due(&now).await.unwrap());
    assert_eq!(
        s.lease_webhooks("node-b", &now, &at(30), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A node giving up its leases lets another take them at once.
    s.release_webhooks("node-b").await.unwrap();
    assert_eq!(
        s.lease_webhooks("node-a", &now, &at(30), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let stats = s.webhook_stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].0.as_str(), stats[0].1), (ep.id.as_str(), last));
}

store_tests!(
    an_endpoint_round_trips,
    a_lease_fences_settlement_and_sees_only_its_organization
);

/// Waits until every event written so far has its cursor (PostgreSQL's seal rounds; at once
/// on SQLite, whose events have theirs as they commit).
async fn all_sealed(s: &roster::store::SqlStore) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Some(b) = s.seal_backlog().await.unwrap() {
        if b.events == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events left unsealed: {b:?}"
        );
        s.seal_round().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
