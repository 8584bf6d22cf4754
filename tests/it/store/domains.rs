//! Email domains: claims per organization, one verified holder per domain.

use roster::core::domains::DomainState;
use roster::core::events::{EventDraft, EventKind};
use roster::core::model::Actor;
use roster::core::store::prelude::*;
use serde_json::json;

use super::{Fx, is_uniqueness};
use crate::store_tests;

fn verified(domain: &str) -> EventDraft {
    EventDraft::new(
        EventKind::DomainVerified,
        domain,
        json!({"domain": domain, "verified_by": "operator"}),
    )
}

fn removed(domain: &str) -> EventDraft {
    EventDraft::new(EventKind::DomainRemoved, domain, json!({"domain": domain}))
}

async fn a_claim_round_trips_through_its_states(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    fx.changes(
        Some(&acme.id),
        &[EventKind::DomainAdded],
        s.add_domain(&acme, "acme.test", "c0ffee", &Actor::Cli),
    )
    .await;
    let claims = s.list_domains(Some(&acme.id)).await.unwrap();
    assert_eq!(claims.len(), 1);
    let d = &claims[0];
    assert_eq!(
        (d.domain.as_str(), d.challenge.as_str(), d.org_slug.as_str()),
        ("acme.test", "c0ffee", "acme")
    );
    assert_eq!(d.state, DomainState::Pending);
    assert!(
        s.org_by_domain("acme.test").await.unwrap().is_none(),
        "pending routes nothing"
    );
    assert!(s.verified_domains(&acme.id).await.unwrap().is_empty());
    // A failed check is recorded, not an event.
    fx.appends_nothing(s.record_domain_check(&acme, "acme.test", Some("no TXT record")))
        .await
        .unwrap();
    assert!(
        s.list_domains(Some(&acme.id)).await.unwrap()[0]
            .checked_at
            .is_some()
    );
    is_uniqueness(
        fx.appends_nothing(s.add_domain(&acme, "acme.test", "other", &Actor::Cli))
            .await,
    );
    fx.changes(
        Some(&acme.id),
        &[EventKind::DomainVerified],
        s.mark_domain_verified(
            &acme,
            "acme.test",
            "operator",
            &Actor::Cli,
            verified("acme.test"),
        ),
    )
    .await;
    let d = s.list_domains(Some(&acme.id)).await.unwrap().remove(0);
    assert_eq!(d.state, DomainState::Verified);
    assert_eq!(d.verified_by.as_deref(), Some("operator"));
    assert_eq!(
        s.org_by_domain("acme.test").await.unwrap().map(|o| o.id),
        Some(acme.id.clone())
    );
    assert_eq!(s.verified_domains(&acme.id).await.unwrap(), ["acme.test"]);
    assert!(
        fx.changes(
            Some(&acme.id),
            &[EventKind::DomainRemoved],
            s.remove_domain(&acme, "acme.test", &Actor::Cli, removed("acme.test")),
        )
        .await
    );
    assert!(s.org_by_domain("acme.test").await.unwrap().is_none());
    assert!(
        !fx.appends_nothing(s.remove_domain(&acme, "acme.test", &Actor::Cli, removed("acme.test")))
            .await
            .unwrap()
    );
}

async fn one_organization_holds_a_domain_verified(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let globex = fx.org("globex").await;
    // Both may claim it; the first to verify holds it.
    s.add_domain(&acme, "shared.test", "a", &Actor::Cli)
        .await
        .unwrap();
    s.add_domain(&globex, "shared.test", "g", &Actor::Cli)
        .await
        .unwrap();
    s.mark_domain_verified(
        &acme,
        "shared.test",
        "dns",
        &Actor::Cli,
        verified("shared.test"),
    )
    .await
    .unwrap();
    is_uniqueness(
        fx.appends_nothing(s.mark_domain_verified(
            &globex,
            "shared.test",
            "dns",
            &Actor::Cli,
            verified("shared.test"),
        ))
        .await,
    );
    assert_eq!(
        s.org_by_domain("shared.test").await.unwrap().map(|o| o.id),
        Some(acme.id.clone())
    );
    assert!(s.verified_domains(&globex.id).await.unwrap().is_empty());
    assert_eq!(
        s.list_domains(Some(&globex.id)).await.unwrap()[0].state,
        DomainState::Pending
    );
    // Another organization cannot remove this one's claim.
    s.add_domain(&acme, "other.test", "a2", &Actor::Cli)
        .await
        .unwrap();
    assert!(
        !fx.appends_nothing(s.remove_domain(
            &globex,
            "other.test",
            &Actor::Cli,
            removed("other.test")
        ))
        .await
        .unwrap()
    );
    assert_eq!(s.list_domains(Some(&acme.id)).await.unwrap().len(), 2);
    assert_eq!(s.list_domains(None).await.unwrap().len(), 3);
    // Removed by its holder, the domain is free to verify elsewhere.
    s.remove_domain(&acme, "shared.test", &Actor::Cli, removed("shared.test"))
        .await
        .unwrap();
    s.mark_domain_verified(
        &globex,
        "shared.test",
        "dns",
        &Actor::Cli,
        verified("shared.test"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.org_by_domain("shared.test").await.unwrap().map(|o| o.id),
        Some(globex.id)
    );
}

store_tests!(
    a_claim_round_trips_through_its_states,
    one_organization_holds_a_domain_verified
);
