//! The claims Roster states about a user (ID tokens and userinfo): identity, profile, and
//! the organization, roles and groups the app authorizes with.

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, ClientId, EndUserEmail, EndUserFamilyName,
    EndUserGivenName, EndUserName, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl,
    LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::core::error::{CoreError, CoreResult};
use crate::core::keys;
use crate::core::model::{Actor, Scope, User};
use crate::core::sessions::{App, Grant, TokenRow};
use crate::core::store::prelude::*;
use crate::core::trust::{self, EmailClaim};
use crate::sso::SsoState;

/// How long an ID token is valid.
const ID_TOKEN_TTL_SECS: i64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RosterClaims {
    pub org: String,
    pub org_id: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub sid: String,
}
impl AdditionalClaims for RosterClaims {}

pub fn unix_time(t: &str) -> Option<i64> {
    OffsetDateTime::parse(t, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Everything the claims are made from.
struct Subject {
    user: User,
    org_slug: String,
    roles: Vec<String>,
    groups: Vec<String>,
    /// With the `email` scope: the email and whether Roster vouches for it
    /// (`core::trust::email_claim`).
    email: Option<EmailClaim>,
}

async fn subject(st: &SsoState, row: &TokenRow) -> CoreResult<Option<Subject>> {
    let scope = Scope {
        org: row.org_id.clone(),
        actor: Actor::App {
            app_id: row.app_id.clone(),
        },
    };
    let Some(user) = st.store.get_user(&scope, &row.user_id).await? else {
        return Ok(None);
    };
    let org = st
        .store
        .org_by_id(row.org_id.as_str())
        .await?
        .ok_or_else(|| CoreError::NotFound("organization".into()))?;
    // Directory groups, then the IdP's group claims of the latest login.
    let mut groups: Vec<String> = user.groups.iter().map(|g| g.display.clone()).collect();
    for g in st.store.idp_groups(&scope, &user.id).await? {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    // The directory's own `roles` values, then the roles group mappings grant.
    let mut roles: Vec<String> = user
        .attrs
        .get("roles")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|r| r.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for r in &user.roles {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    let email = if scopes(row).iter().any(|x| x == "email") {
        trust::email_claim(&st.store, &scope, &user).await?
    } else {
        None
    };
    Ok(Some(Subject {
        user,
        org_slug: org.slug,
        roles,
        groups,
        email,
    }))
}

fn name_part(user: &User, key: &str) -> Option<String> {
    user.attrs
        .get("name")
        .and_then(|n| n.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn display_name(user: &User) -> Option<String> {
    user.attrs
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| name_part(user, "formatted"))
}

fn scopes(row: &TokenRow) -> Vec<String> {
    row.data
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Userinfo: `None` when the user no longer exists.
pub async fn user_claims(st: &SsoState, row: &TokenRow) -> CoreResult<Option<Map<String, Value>>> {
    let Some(s) = subject(st, row).await? else {
        return Ok(None);
    };
    let scopes = scopes(row);
    let mut m = Map::new();
    m.insert("sub".into(), json!(s.user.id));
    if let Some(e) = &s.email {
        m.insert("email".into(), json!(e.email));
        m.insert("email_verified".into(), json!(e.verified));
    }
    if scopes.iter().any(|x| x == "profile") {
        m.insert("preferred_username".into(), json!(s.user.user_name()));
        if let Some(n) = display_name(&s.user) {
            m.insert("name".into(), json!(n));
        }
        if let Some(n) = name_part(&s.user, "givenName") {
            m.insert("given_name".into(), json!(n));
        }
        if let Some(n) = name_part(&s.user, "familyName") {
            m.insert("family_name".into(), json!(n));
        }
    }
    m.insert("org".into(), json!(s.org_slug));
    m.insert("org_id".into(), json!(row.org_id.as_str()));
    m.insert("roles".into(), json!(s.roles));
    m.insert("groups".into(), json!(s.groups));
    Ok(Some(m))
}

/// A signed ID token for a grant (RS256 with the current signing key).
pub async fn id_token(st: &SsoState, app: &App, grant: &Grant) -> CoreResult<String> {
    let row = &grant.basis;
    let s = subject(st, row)
        .await?
        .ok_or_else(|| CoreError::NotFound("user".into()))?;
    let now = Utc::now();
    let exp = now + chrono::Duration::seconds(ID_TOKEN_TTL_SECS);
    let issuer = IssuerUrl::new(st.public_url.clone())
        .map_err(|e| CoreError::Internal(format!("public URL is not an issuer URL: {e}")))?;
    let scopes = scopes(row);
    let mut std_claims =
        StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new(s.user.id.clone()));
    if let Some(e) = s.email.clone() {
        std_claims = std_claims
            .set_email(Some(EndUserEmail::new(e.email)))
            .set_email_verified(Some(e.verified));
    }
    if scopes.iter().any(|x| x == "profile") {
        std_claims = std_claims
            .set_preferred_username(Some(EndUserUsername::new(s.user.user_name().to_owned())));
        if let Some(n) = display_name(&s.user) {
            std_claims = std_claims.set_name(Some(LocalizedClaim::from(EndUserName::new(n))));
        }
        if let Some(n) = name_part(&s.user, "givenName") {
            std_claims =
                std_claims.set_given_name(Some(LocalizedClaim::from(EndUserGivenName::new(n))));
        }
        if let Some(n) = name_part(&s.user, "familyName") {
            std_claims =
                std_claims.set_family_name(Some(LocalizedClaim::from(EndUserFamilyName::new(n))));
        }
    }
    let auth_time = row
        .data
        .get("auth_time")
        .and_then(Value::as_i64)
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
    let claims = IdTokenClaims::new(
        issuer,
        vec![Audience::new(app.id.clone())],
        exp,
        now,
        std_claims,
        RosterClaims {
            org: s.org_slug,
            org_id: row.org_id.as_str().to_owned(),
            roles: s.roles,
            groups: s.groups,
            sid: row.session_id.clone(),
        },
    )
    .set_nonce(
        row.data
            .get("nonce")
            .and_then(Value::as_str)
            .map(|n| Nonce::new(n.to_owned())),
    )
    .set_auth_time(auth_time)
    .set_authorized_party(Some(ClientId::new(app.id.clone())));
    let (_, signer) = keys::current(&st.store, &st.master).await?;
    let token: IdToken<
        RosterClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > = IdToken::new(
        claims,
        &signer,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&AccessToken::new(grant.access.value.clone())),
        None,
    )
    .map_err(|e| CoreError::Internal(format!("cannot sign the ID token: {e}")))?;
    Ok(token.to_string())
}
