//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations
//! (utoipa): what `/api/v1/openapi.json` serves and CI checks the running server against.

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{lifecycle, people, setup};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roster admin API",
        description = "Organizations, their IdP connections and SCIM directories, users, groups, \
            role mappings, webhooks, the event feed and the audit log. Authenticate with an \
            admin API key (`roster admin-key create`) as a bearer token.",
    ),
    servers((url = "/api/v1")),
    paths(
        setup::list_orgs, setup::create_org, setup::get_org,
        setup::list_domains, setup::add_domain, setup::verify_domain, setup::remove_domain,
        setup::list_connections, setup::create_conn, setup::get_connection,
        setup::list_directories, setup::create_directory, setup::get_directory,
        setup::list_tokens, setup::create_token, setup::revoke_token, setup::recent_requests,
        setup::list_apps, setup::create_app,
        people::list_users, people::create_user, people::get_user, people::delete_user, people::user_events, people::user_roles,
        people::deactivate, people::reactivate,
        people::list_groups, people::get_group, people::list_members,
        lifecycle::events, lifecycle::drift,
        lifecycle::list_mappings, lifecycle::create_mapping, lifecycle::delete_mapping,
        lifecycle::audit_log,
        lifecycle::list_webhooks, lifecycle::create_webhook, lifecycle::get_webhook,
        lifecycle::disable_webhook, lifecycle::list_deliveries, lifecycle::list_attempts,
        lifecycle::resend,
    ),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin API key (`rak_…`)"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON (built once).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null))
        .clone()
}
