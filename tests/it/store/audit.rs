//! The audit log: one hash chain per organization and one for the deployment.

use roster::core::audit::{DEPLOYMENT_CHAIN, verify_chain};
use roster::core::model::Actor;
use roster::core::now_plus_secs as at;
use roster::core::store::prelude::*;

use super::Fx;
use crate::store_tests;

async fn every_change_is_chained_in_its_organization(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let (globex, g) = fx.scope("globex").await;
    let ada = fx.user(&a, "ada").await;
    fx.user(&g, "gus").await;
    roster::core::resources::set_active(s, &a, &ada, false)
        .await
        .unwrap();
    s.set_setting("theme", Some("dark"), &Actor::Cli)
        .await
        .unwrap();
    let chains = s.audit_chains().await.unwrap();
    let names: Vec<&str> = chains.iter().map(|(c, _)| c.as_str()).collect();
    for c in [acme.id.as_str(), globex.id.as_str(), DEPLOYMENT_CHAIN] {
        assert!(names.contains(&c), "{c} in {names:?}");
    }
    for (chain, anchor) in &chains {
        let entries = s.audit_entries(chain, None).await.unwrap();
        assert!(anchor.is_none());
        verify_chain(chain, None, entries).expect("intact");
    }
    let of = |chain: &str| {
        let chain = chain.to_owned();
        async move { s.audit_entries(&chain, None).await.unwrap() }
    };
    let acme_log = of(acme.id.as_str()).await;
    assert!(
        acme_log
            .iter()
            .all(|e| !e.body.contains(globex.id.as_str()) && !e.body.contains("gus"))
    );
    assert!(acme_log.iter().any(|e| e.body.contains("ada")));
    assert!(
        of(DEPLOYMENT_CHAIN)
            .await
            .iter()
            .any(|e| e.body.contains("theme"))
    );
    // Pages walk the chain in order.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s
            .audit_page(acme.id.as_str(), None, after, 1)
            .await
            .unwrap();
        let Some(e) = page.last() else { break };
        after = e.seq;
        paged.extend(page.into_iter().map(|e| e.seq));
    }
    assert_eq!(paged, acme_log.iter().map(|e| e.seq).collect::<Vec<_>>());
}

/// The anchor of `chain` as `audit_chains` lists it (the chain must be listed).
async fn anchor_of(fx: &Fx, chain: &str) -> Option<roster::core::audit::Anchor> {
    fx.store()
        .audit_chains()
        .await
        .unwrap()
        .into_iter()
        .find(|(c, _)| c == chain)
        .expect("the chain is listed")
        .1
}

async fn pruning_anchors_the_chain(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    for i in 0..4 {
        fx.user(&a, &format!("u{i}")).await;
    }
    let chain = acme.id.as_str();
    let all = s.audit_entries(chain, None).await.unwrap();
    assert_eq!(s.prune_audit(chain, &at(-3600)).await.unwrap(), 0);
    // Everything so far is older than a second from now.
    let cutoff = at(1);
    let pruned = s.prune_audit(chain, &cutoff).await.unwrap();
    assert_eq!(pruned as usize, all.len());
    fx.user(&a, "after").await;
    let anchor = anchor_of(fx, chain)
        .await
        .expect("anchored at the last pruned entry");
    assert_eq!(anchor.seq, all.last().unwrap().seq);
    // The pruning is itself recorded, first after the anchor.
    let left = s.audit_entries(chain, None).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left[0].body.contains("audit.pruned"), "{}", left[0].body);
    verify_chain(chain, Some(&anchor), left.clone()).expect("the rest verifies from its anchor");
    assert!(
        verify_chain(chain, None, left).is_err(),
        "and not from genesis"
    );
}

/// Pruning covers what this node wrote a moment ago: on PostgreSQL an entry is linked
/// into its chain after commit, and pruning must not run ahead of that (it once read the
/// chain as it stood, so an entry written just before it was neither pruned nor anchored).
async fn pruning_covers_the_writes_just_made(fx: &Fx) {
    let s = fx.store();
    let (acme, a) = fx.scope("acme").await;
    let chain = acme.id.as_str();
    for i in 0..12 {
        fx.user(&a, &format!("p{i}")).await;
        let pruned = s.prune_audit(chain, &at(1)).await.unwrap();
        let anchor = anchor_of(fx, chain).await.expect("anchored");
        assert_eq!(anchor.seq, pruned as i64, "round {i}");
        // What is left: this round's `audit.pruned` entry, nothing older.
        let left = s.audit_entries(chain, None).await.unwrap();
        assert_eq!(left.len(), 1, "round {i}: {left:?}");
        assert!(left[0].body.contains("audit.pruned"), "{}", left[0].body);
        verify_chain(chain, Some(&anchor), left).expect("intact");
    }
}

/// Writes of many organizations at once (on SQLite they share commands, which link each
/// chain after its head, read for all of a run's chains at once): every chain verifies,
/// from genesis or from its anchor, one entry per write.
async fn concurrent_writes_of_many_organizations_chain(fx: &Fx) {
    let s = fx.store();
    let mut scopes = Vec::new();
    for i in 0..8 {
        scopes.push(fx.scope(&format!("org{i}")).await);
    }
    // One chain anchored: its head comes from the anchor.
    fx.user(&scopes[0].1, "before").await;
    s.prune_audit(scopes[0].0.id.as_str(), &at(1))
        .await
        .unwrap();
    let mut before = Vec::new();
    for (org, _) in &scopes {
        before.push(s.audit_entries(org.id.as_str(), None).await.unwrap().len());
    }
    let mut tasks = Vec::new();
    for round in 0..4 {
        for (_, scope) in &scopes {
            let s = s.clone();
            let scope = scope.clone();
            tasks.push(tokio::spawn(async move {
                let attrs = serde_json::json!({"userName": format!("w{round}@example.com")});
                roster::core::resources::create_user(
                    &s,
                    &scope,
                    attrs.as_object().unwrap(),
                    roster::core::model::Provenance::Admin,
                )
                .await
                .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.seal_round().await.unwrap();
    let chains = s.audit_chains().await.unwrap();
    for (i, (org, _)) in scopes.iter().enumerate() {
        let (chain, anchor) = chains
            .iter()
            .find(|(c, _)| c == org.id.as_str())
            .expect("a chain per organization");
        let entries = s.audit_entries(chain, None).await.unwrap();
        assert_eq!(entries.len(), before[i] + 4, "{chain}");
        assert_eq!(anchor.is_some(), i == 0);
        verify_chain(chain, anchor.as_ref(), entries).expect("intact");
    }
}

store_tests!(
    every_change_is_chained_in_its_organization,
    pruning_anchors_the_chain,
    pruning_covers_the_writes_just_made,
    concurrent_writes_of_many_organizations_chain
);
