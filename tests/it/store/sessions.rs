//! Logins in flight, sessions and OAuth tokens: revocation is immediate and scoped.

use roster::core::events::EventKind;
use roster::core::model::{Actor, OrgId, Scope};
use roster::core::now_plus_secs as at;
use roster::core::sessions::{
    Consumed, LoginData, LoginPurpose, LoginRequest, NewSession, TokenKind, TokenRow,
};
use roster::core::store::SetupLink;
use roster::core::store::prelude::*;
use serde_json::json;
use sqlx::Row;

use super::Fx;
use crate::store_tests;

fn session(id: &str, user: &str, expires: i64) -> NewSession {
    NewSession {
        id: id.into(),
        user_id: user.into(),
        connection_id: "conn".into(),
        app_id: "app".into(),
        expires_at: at(expires),
    }
}

fn token(
    org: &OrgId,
    user: &str,
    hash: &str,
    session: &str,
    kind: TokenKind,
    expires: i64,
) -> TokenRow {
    TokenRow {
        hash: hash.into(),
        kind,
        session_id: session.into(),
        app_id: "app".into(),
        org_id: org.clone(),
        user_id: user.into(),
        data: json!({}),
        created_at: at(-7200),
        expires_at: at(expires),
        consumed_at: None,
        revoked_at: None,
    }
}

async fn start(fx: &Fx, scope: &Scope, id: &str, user: &str) -> bool {
    let code = token(
        &scope.org,
        user,
        &format!("code-{id}"),
        id,
        TokenKind::Code,
        600,
    );
    fx.store()
        .start_session(scope, &session(id, user, 3600), &code)
        .await
        .unwrap()
}

async fn a_session_lives_until_revoked(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let ada = fx.user(&scope, "ada").await;
    let code = token(&scope.org, &ada, "code-1", "s1", TokenKind::Code, 600);
    assert!(
        fx.changes(
            Some(&scope.org),
            &[EventKind::SessionCreated],
            s.start_session(&scope, &session("s1", &ada, 3600), &code),
        )
        .await
    );
    assert_eq!(s.live_sessions(&scope, &ada).await.unwrap(), 1);
    let state = s.token_state("code-1").await.unwrap().expect("the code");
    assert!(state.is_live(&roster::core::now()));
    assert_eq!(
        (state.row.session_id.as_str(), state.row.kind),
        ("s1", TokenKind::Code)
    );
    // The code is spent once; its successors are stored with it.
    let access = token(&scope.org, &ada, "access-1", "s1", TokenKind::Access, 600);
    let refresh = token(
        &scope.org,
        &ada,
        "refresh-1",
        "s1",
        TokenKind::Refresh,
        7200,
    );
    let now = roster::core::now();
    assert_eq!(
        s.consume_token(&state.row, &now, &[&access, &refresh])
            .await
            .unwrap(),
        Consumed::Done
    );
    assert_eq!(
        s.consume_token(&state.row, &now, &[]).await.unwrap(),
        Consumed::AlreadyUsed
    );
    assert!(
        s.token_state("refresh-1")
            .await
            .unwrap()
            .unwrap()
            .is_live(&now)
    );
    // Revoking one token leaves the session.
    s.revoke_oauth_token("access-1").await.unwrap();
    assert!(
        !s.token_state("access-1")
            .await
            .unwrap()
            .unwrap()
            .is_live(&now)
    );
    assert_eq!(s.live_sessions(&scope, &ada).await.unwrap(), 1);
    fx.changes(
        Some(&scope.org),
        &[EventKind::SessionRevoked],
        s.revoke_session(&scope.org, "s1", &Actor::Cli, "test"),
    )
    .await;
    assert_eq!(s.live_sessions(&scope, &ada).await.unwrap(), 0);
    let refresh = s.token_state("refresh-1").await.unwrap().unwrap();
    assert!(
        !refresh.is_live(&now) && refresh.row.revoked_at.is_some(),
        "its tokens go with it"
    );
    assert_eq!(
        s.consume_token(&refresh.row, &now, &[]).await.unwrap(),
        Consumed::NotLive
    );
    // Revoked already: no second event.
    fx.appends_nothing(s.revoke_session(&scope.org, "s1", &Actor::Cli, "again"))
        .await
        .unwrap();
}

async fn deprovisioning_ends_sessions_in_its_transaction(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let ada = fx.user(&scope, "ada").await;
    assert!(start(fx, &scope, "s1", &ada).await);
    assert!(start(fx, &scope, "s2", &ada).await);
    fx.changes(
        Some(&scope.org),
        &[
            EventKind::UserUpdated,
            EventKind::UserDeactivated,
            EventKind::SessionRevoked,
            EventKind::SessionRevoked,
        ],
        roster::core::resources::set_active(s, &scope, &ada, false),
    )
    .await;
    assert_eq!(s.live_sessions(&scope, &ada).await.unwrap(), 0);
    let code = s.token_state("code-s1").await.unwrap().unwrap();
    assert!(code.row.revoked_at.is_some() && !code.user_active);
    // An inactive user gets no session, and nothing is appended.
    let code = token(&scope.org, &ada, "code-s3", "s3", TokenKind::Code, 600);
    assert!(
        !fx.appends_nothing(s.start_session(&scope, &session("s3", &ada, 3600), &code))
            .await
            .unwrap()
    );
    assert!(s.token_state("code-s3").await.unwrap().is_none());
}

async fn sessions_are_isolated(fx: &Fx) {
    let s = fx.store();
    let (_, acme) = fx.scope("acme").await;
    let (_, globex) = fx.scope("globex").await;
    let ada = fx.user(&acme, "ada").await;
    // A session for a user of another organization is refused.
    assert!(!fx.appends_nothing(start(fx, &globex, "sx", &ada)).await);
    assert!(start(fx, &acme, "s1", &ada).await);
    assert_eq!(s.live_sessions(&globex, &ada).await.unwrap(), 0);
    fx.appends_nothing(s.revoke_session(&globex.org, "s1", &Actor::Cli, "test"))
        .await
        .unwrap();
    assert_eq!(s.live_sessions(&acme, &ada).await.unwrap(), 1);
}

async fn logins_and_assertions_are_spent_once(fx: &Fx) {
    let s = fx.store();
    let acme = fx.org("acme").await;
    let login = |id: &str, expires: i64| LoginRequest {
        id: id.into(),
        org_id: acme.id.clone(),
        connection_id: "conn".into(),
        browser_hash: "browser".into(),
        data: LoginData::new(LoginPurpose::SetupTest),
        expires_at: at(expires),
    };
    fx.appends_nothing(s.insert_login(&login("l1", 600)))
        .await
        .unwrap();
    s.insert_login(&login("l-old", -1)).await.unwrap();
    let taken = s.take_login("l1").await.unwrap().expect("taken once");
    assert_eq!(
        (taken.org_id, taken.browser_hash.as_str()),
        (acme.id.clone(), "browser")
    );
    assert!(matches!(taken.data.purpose, LoginPurpose::SetupTest));
    assert!(
        s.take_login("l1").await.unwrap().is_none(),
        "a login is taken once"
    );
    assert!(s.take_login("l-old").await.unwrap().is_none(), "expired");
    assert!(s.remember_assertion("conn", "a-1", &at(600)).await.unwrap());
    assert!(
        !s.remember_assertion("conn", "a-1", &at(600)).await.unwrap(),
        "a replay"
    );
    assert!(
        s.remember_assertion("conn-2", "a-1", &at(600))
            .await
            .unwrap(),
        "per connection"
    );
}

/// The sweep deletes what ended before its cutoff and nothing a live session still needs:
/// an expired code of a live session stays (its replay must still be recognized), a
/// session stays while a token of it is unexpired, and live setup links stay.
async fn sweep_takes_only_what_ended(fx: &Fx) {
    let s = fx.store();
    let (_, scope) = fx.scope("acme").await;
    let user = fx.user(&scope, "swept").await;
    // (session, its expiry, its code's expiry, revoked?)
    let sessions = [
        ("expired", -60, -60, false),
        ("live", 7200, -60, false),
        ("revoked", 7200, -60, true),
        ("expired-with-live-refresh", -60, -60, false),
    ];
    for (id, expires, code_expires, revoked) in sessions {
        let code = token(
            &scope.org,
            &user,
            &format!("code-{id}"),
            id,
            TokenKind::Code,
            code_expires,
        );
        assert!(
            s.start_session(&scope, &session(id, &user, expires), &code)
                .await
                .unwrap()
        );
        if revoked {
            s.revoke_session(&scope.org, id, &Actor::Cli, "test")
                .await
                .unwrap();
        }
    }
    // A refresh token outliving its session's expiry, as a session extended by refresh
    // would leave it.
    let pool = crate::lifecycle::raw(&fx.db.location()).await;
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, kind, session_id, app_id, org_id, user_id, data, \
         created_at, expires_at) VALUES ('refresh-live', 'refresh', 'expired-with-live-refresh', \
         'app', $1, $2, '{}', $3, $4)",
    )
    .bind(scope.org.as_str())
    .bind(&user)
    .bind(at(-7200))
    .bind(at(7200))
    .execute(&pool)
    .await
    .unwrap();
    for (id, expires) in [("old-link", -60), ("live-link", 7200)] {
        let link = SetupLink {
            id: id.into(),
            org_id: scope.org.clone(),
            created_at: at(-7200),
            expires_at: at(expires),
            opened_at: None,
            directory_id: None,
            connection_id: format!("conn-{id}"),
        };
        s.insert_setup_link(&link, &format!("hash-{id}"), &Actor::Cli)
            .await
            .unwrap();
    }
    let ids = async |sql: &str| -> Vec<String> {
        let mut v: Vec<String> = sqlx::query(sql)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        v.sort();
        v
    };
    // Nothing has ended a day before now.
    assert_eq!(s.sweep_ended(&at(-86_400), 100).await.unwrap(), 0);
    // In batches of one row of each kind.
    let mut swept = 0;
    loop {
        let n = s.sweep_ended(&at(0), 1).await.unwrap();
        swept += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        ids("SELECT id FROM sessions").await,
        ["expired-with-live-refresh", "live"]
    );
    assert_eq!(
        ids("SELECT token_hash FROM oauth_tokens").await,
        ["code-live", "refresh-live"]
    );
    assert_eq!(ids("SELECT id FROM setup_links").await, ["live-link"]);
    // Three codes, two sessions, one link.
    assert_eq!(swept, 3 + 2 + 1);
    pool.close().await;
}

store_tests!(
    a_session_lives_until_revoked,
    deprovisioning_ends_sessions_in_its_transaction,
    sessions_are_isolated,
    logins_and_assertions_are_spent_once,
    sweep_takes_only_what_ended
);
