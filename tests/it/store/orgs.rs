//! Organizations and instance settings.

use roster::core::events::EventKind;
use roster::core::model::Actor;
use roster::core::store::prelude::*;

use super::{Fx, is_uniqueness};
use crate::store_tests;

async fn an_organization_round_trips(fx: &Fx) {
    let s = fx.store();
    let before = fx.events().await.len();
    let acme = s
        .create_org("acme", "Acme \"Corp\" €", &Actor::Cli)
        .await
        .unwrap();
    let events = fx.events().await;
    assert_eq!(events.len(), before + 1);
    let ev = &events[before];
    assert_eq!(ev.kind, EventKind::OrganizationCreated.as_str());
    // An organization's creation is its own event: of the organization it creates.
    assert_eq!(ev.org_id.as_deref(), Some(acme.id.as_str()));
    assert_eq!(ev.resource_id, acme.id.as_str());
    assert_eq!(ev.data["slug"], "acme");
    let by_slug = s.org_by_slug("acme").await.unwrap().expect("by slug");
    let by_id = s.org_by_id(acme.id.as_str()).await.unwrap().expect("by id");
    for o in [&by_slug, &by_id] {
        assert_eq!(o.id, acme.id);
        assert_eq!(o.name, "Acme \"Corp\" €");
        assert_eq!(o.created_at, acme.created_at);
    }
    assert!(
        s.org_by_slug("ACME").await.unwrap().is_none(),
        "slugs are exact"
    );
    assert!(s.org_by_id("no-such-id").await.unwrap().is_none());
}

async fn a_taken_slug_appends_nothing(fx: &Fx) {
    let s = fx.store();
    fx.org("acme").await;
    is_uniqueness(
        fx.appends_nothing(s.create_org("acme", "Another", &Actor::Cli))
            .await,
    );
    assert_eq!(s.list_orgs().await.unwrap().len(), 1);
    assert_eq!(
        s.org_by_slug("acme").await.unwrap().unwrap().name,
        "acme Inc."
    );
}

async fn organizations_page_in_slug_order(fx: &Fx) {
    let s = fx.store();
    for slug in ["delta", "alpha", "charlie", "bravo", "echo"] {
        fx.org(slug).await;
    }
    let all: Vec<String> = s
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.slug)
        .collect();
    assert_eq!(all, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.org_page(after.as_deref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|o| o.slug.clone());
        seen.extend(page.into_iter().map(|o| o.slug));
    }
    assert_eq!(seen, all);
}

async fn statistics_count_one_organization(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let (globex, g) = fx.scope("globex").await;
    let u1 = fx.user(&a, "one").await;
    fx.user(&a, "two").await;
    fx.user(&g, "three").await;
    fx.group(&a, "staff", &[&u1]).await;
    s.create_directory(&acme, "okta", &Actor::Cli)
        .await
        .unwrap();
    let sa = s.org_stats(&acme.id).await.unwrap();
    assert_eq!(
        (sa.users, sa.active_users, sa.groups, sa.directories),
        (2, 2, 1, 1)
    );
    let sg = s.org_stats(&globex.id).await.unwrap();
    assert_eq!(
        (sg.users, sg.active_users, sg.groups, sg.directories),
        (1, 1, 0, 0)
    );
}

async fn settings_round_trip(fx: &Fx) {
    let s = fx.store();
    assert_eq!(s.setting("theme").await.unwrap(), None);
    let audit = fx.audit_len().await;
    s.set_setting("theme", Some("dark"), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(s.setting("theme").await.unwrap().as_deref(), Some("dark"));
    s.set_setting("theme", Some("light"), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(s.setting("theme").await.unwrap().as_deref(), Some("light"));
    s.set_setting("theme", None, &Actor::Cli).await.unwrap();
    assert_eq!(s.setting("theme").await.unwrap(), None);
    assert_eq!(fx.audit_len().await, audit + 3, "each change is audited");
    // The first value stored wins; later ones read it back.
    assert_eq!(s.ensure_setting("node", "a").await.unwrap(), "a");
    assert_eq!(s.ensure_setting("node", "b").await.unwrap(), "a");
    assert_eq!(s.setting("node").await.unwrap().as_deref(), Some("a"));
}

store_tests!(
    an_organization_round_trips,
    a_taken_slug_appends_nothing,
    organizations_page_in_slug_order,
    statistics_count_one_organization,
    settings_round_trip
);
