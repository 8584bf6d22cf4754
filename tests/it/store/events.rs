//! The event feed: commit order, per organization, pruned only behind every endpoint.

use roster::core::events::EventKind;
use roster::core::model::Actor;
use roster::core::now_plus_secs as at;
use roster::core::resources;
use roster::core::store::prelude::*;
use roster::core::webhooks::new_endpoint;

use super::Fx;
use crate::store_tests;

async fn the_feed_is_ordered_and_per_organization(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let (globex, g) = fx.scope("globex").await;
    let start = s.last_event_cursor().await.unwrap();
    let ada = fx.user(&a, "ada").await;
    fx.user(&g, "gus").await;
    resources::set_active(s, &a, &ada, false).await.unwrap();
    let all = s.events_after(start, None, 100).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "cursor order"
    );
    assert_eq!(
        s.last_event_cursor().await.unwrap(),
        all.last().unwrap().cursor
    );
    let kinds = |evs: &[roster::core::webhooks::EventRecord]| -> Vec<String> {
        evs.iter().map(|e| e.kind.clone()).collect()
    };
    let of_acme = s.events_after(start, Some(&acme.id), 100).await.unwrap();
    assert_eq!(
        kinds(&of_acme),
        ["user.created", "user.updated", "user.deactivated"]
    );
    assert!(
        of_acme
            .iter()
            .all(|e| e.org_id.as_deref() == Some(acme.id.as_str()))
    );
    let of_globex = s.events_after(start, Some(&globex.id), 100).await.unwrap();
    assert_eq!(kinds(&of_globex), ["user.created"]);
    // Paged by cursor, nothing skipped or repeated.
    let mut paged = Vec::new();
    let mut after = start;
    loop {
        let page = s.events_after(after, None, 1).await.unwrap();
        let Some(e) = page.last() else { break };
        after = e.cursor;
        paged.extend(page);
    }
    assert_eq!(
        paged.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        all.iter().map(|e| e.cursor).collect::<Vec<_>>()
    );
    // A resource's history, newest first, only in its organization.
    let history = s.resource_events(&acme.id, &ada, None, 10).await.unwrap();
    assert_eq!(
        kinds(&history),
        ["user.deactivated", "user.updated", "user.created"]
    );
    let older = s
        .resource_events(&acme.id, &ada, Some(history[0].cursor), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    assert!(
        s.resource_events(&globex.id, &ada, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let created = &of_acme[0];
    assert_eq!(
        (created.resource_type.as_str(), created.resource_id.as_str()),
        ("User", ada.as_str())
    );
    assert_eq!(created.actor["type"], "cli", "{}", created.actor);
    assert_eq!(
        created.kind.parse::<EventKind>().unwrap(),
        EventKind::UserCreated
    );
}

async fn pruning_keeps_what_an_endpoint_has_not_settled(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    fx.user(&a, "one").await;
    let (ep, _) = new_endpoint(
        &fx.db.master_key(),
        Some(&acme.id),
        "https://hooks.acme.test/",
        "*",
        false,
    )
    .unwrap();
    s.insert_webhook(&ep, &Actor::Cli).await.unwrap();
    let cursor = s.list_webhooks(None).await.unwrap()[0].cursor;
    fx.user(&a, "two").await;
    let total = fx.events().await.len() as u64;
    // Nothing was created before an hour ago.
    assert_eq!(s.prune_events(&at(-3600), 100).await.unwrap(), 0);
    let pruned = s.prune_events(&at(1), 100).await.unwrap();
    let left = fx.events().await;
    assert_eq!(pruned + left.len() as u64, total);
    assert!(pruned > 0);
    assert!(
        left.iter().all(|e| e.cursor > cursor),
        "what the endpoint settled went"
    );
    assert_eq!(
        left.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["webhook.created", "user.created"]
    );
}

store_tests!(
    the_feed_is_ordered_and_per_organization,
    pruning_keeps_what_an_endpoint_has_not_settled
);
