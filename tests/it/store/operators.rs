//! Admin keys, console sessions and setup links: grants end the moment they are revoked.

use roster::core::events::EventKind;
use roster::core::model::{Actor, OrgId};
use roster::core::now_plus_secs as at;
use roster::core::store::prelude::*;
use roster::core::store::{AdminKeyInfo, ConsoleIdentity, SetupLink};

use super::Fx;
use crate::store_tests;

fn key(id: &str, org: Option<&OrgId>, read_only: bool) -> AdminKeyInfo {
    AdminKeyInfo {
        id: id.into(),
        org_id: org.map(|o| o.as_str().to_owned()),
        name: format!("key {id}"),
        read_only,
        created_at: roster::core::now(),
        revoked_at: None,
    }
}

async fn admin_keys_grant_until_revoked(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    fx.changes(
        None,
        &[EventKind::AdminKeyCreated],
        s.insert_admin_key(&key("k-all", None, false), "hash-all", &Actor::Cli),
    )
    .await;
    fx.changes(
        Some(&acme.id),
        &[EventKind::AdminKeyCreated],
        s.insert_admin_key(
            &key("k-acme", Some(&acme.id), true),
            "hash-acme",
            &Actor::Cli,
        ),
    )
    .await;
    let all = s.admin_key_grant("hash-all").await.unwrap().expect("grant");
    assert_eq!(
        (all.key_id.as_str(), all.org.as_ref(), all.read_only),
        ("k-all", None, false)
    );
    let scoped = s
        .admin_key_grant("hash-acme")
        .await
        .unwrap()
        .expect("grant");
    assert_eq!(
        (scoped.org.as_ref(), scoped.read_only),
        (Some(&acme.id), true)
    );
    assert!(s.admin_key_grant("hash-none").await.unwrap().is_none());
    // A taken hash is refused whole.
    assert!(
        fx.appends_nothing(s.insert_admin_key(&key("k-dup", None, false), "hash-all", &Actor::Cli))
            .await
            .is_err()
    );
    assert_eq!(s.list_admin_keys().await.unwrap().len(), 2);
    // A console session of a key lives exactly as long as the key.
    s.insert_console_session(
        "console-1",
        &ConsoleIdentity::AdminKey("k-acme".into()),
        &at(3600),
    )
    .await
    .unwrap();
    let now = roster::core::now();
    let grant = s
        .console_session("console-1", &now)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(
        (grant.who.clone(), grant.org.as_ref(), grant.read_only),
        (
            ConsoleIdentity::AdminKey("k-acme".into()),
            Some(&acme.id),
            true
        )
    );
    assert!(
        s.console_session("console-1", &at(7200))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        fx.changes(
            Some(&acme.id),
            &[EventKind::AdminKeyRevoked],
            s.revoke_admin_key("k-acme", &Actor::Cli)
        )
        .await
    );
    assert!(s.admin_key_grant("hash-acme").await.unwrap().is_none());
    assert!(
        s.console_session("console-1", &now)
            .await
            .unwrap()
            .is_none(),
        "gone with its key"
    );
    assert!(
        !fx.appends_nothing(s.revoke_admin_key("k-acme", &Actor::Cli))
            .await
            .unwrap()
    );
    let listed = s.list_admin_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .find(|k| k.id == "k-acme")
            .unwrap()
            .revoked_at
            .is_some()
    );
    // A signed-out session is gone.
    s.insert_console_session(
        "console-2",
        &ConsoleIdentity::AdminKey("k-all".into()),
        &at(3600),
    )
    .await
    .unwrap();
    assert!(
        s.console_session("console-2", &now)
            .await
            .unwrap()
            .is_some()
    );
    s.delete_console_session("console-2").await.unwrap();
    assert!(
        s.console_session("console-2", &now)
            .await
            .unwrap()
            .is_none()
    );
    // A user's console session needs a console role: a plain user has none.
    let (_, scope) = fx.scope("ops").await;
    let ada = fx.user(&scope, "ada").await;
    s.insert_console_session("console-3", &ConsoleIdentity::User(ada), &at(3600))
        .await
        .unwrap();
    assert!(
        s.console_session("console-3", &now)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_setup_link_opens_once_for_one_session(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let globex = fx.org("globex").await;
    let link = |id: &str, org: &OrgId, expires: i64| SetupLink {
        id: id.into(),
        org_id: org.clone(),
        created_at: roster::core::now(),
        expires_at: at(expires),
        opened_at: None,
        directory_id: None,
        connection_id: format!("conn-{id}"),
    };
    let audit = fx.audit_len().await;
    s.insert_setup_link(&link("l1", &acme.id, 3600), "token-1", &Actor::Cli)
        .await
        .unwrap();
    s.insert_setup_link(&link("l-old", &globex.id, -1), "token-old", &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(fx.audit_len().await, audit + 2, "issuing a link is audited");
    let now = roster::core::now();
    let opened = s
        .open_setup_link("token-1", "session-1", &now)
        .await
        .unwrap()
        .expect("opens");
    assert_eq!(
        (
            opened.id.as_str(),
            &opened.org_id,
            opened.connection_id.as_str()
        ),
        ("l1", &acme.id, "conn-l1")
    );
    assert!(
        s.open_setup_link("token-1", "session-2", &now)
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    assert!(
        s.open_setup_link("token-old", "session-3", &now)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        s.open_setup_link("token-none", "session-4", &now)
            .await
            .unwrap()
            .is_none()
    );
    let bound = s
        .setup_session("session-1", &now)
        .await
        .unwrap()
        .expect("bound");
    assert_eq!(bound.id, "l1");
    assert!(bound.opened_at.is_some());
    assert!(s.setup_session("session-2", &now).await.unwrap().is_none());
    assert!(
        s.setup_session("session-1", &at(7200))
            .await
            .unwrap()
            .is_none(),
        "ends with the link"
    );
    let dir = s
        .create_directory(&acme, "from setup", &Actor::Cli)
        .await
        .unwrap();
    s.set_setup_directory("l1", &dir.id).await.unwrap();
    assert_eq!(
        s.setup_session("session-1", &now)
            .await
            .unwrap()
            .unwrap()
            .directory_id,
        Some(dir.id)
    );
}

store_tests!(
    admin_keys_grant_until_revoked,
    a_setup_link_opens_once_for_one_session
);
