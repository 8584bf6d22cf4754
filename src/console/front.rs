//! The front door, `GET /`: what this server is and where each of its audiences goes
//! (operators to the console, apps to OpenID discovery, IdPs to SCIM, scripts to the admin
//! API's OpenAPI document), and the icon every page names. Anonymous: it shows only what
//! discovery documents already publish.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use maud::html;

use super::html::page;

/// The icon: a small inline SVG, served for `/favicon.ico` too (browsers ask for it unasked).
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#1f4e79\"/>\
<path d=\"M10 24V8h7a5 5 0 0 1 0 10h-7m7 0 5 6\" fill=\"none\" stroke=\"#fff\" \
stroke-width=\"3\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>";

/// `/`, `/favicon.ico` and `/favicon.svg`, for the server whose public URL is `public_url`.
pub fn router(public_url: &str) -> Router {
    let public_url: Arc<str> = Arc::from(public_url.trim_end_matches('/'));
    Router::new()
        .route("/", get(front_door))
        .route("/favicon.ico", get(icon))
        .route("/favicon.svg", get(icon))
        .with_state(public_url)
}

async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        ICON,
    )
}

async fn front_door(State(base): State<Arc<str>>) -> impl IntoResponse {
    let b: &str = &base;
    let body = html! {
        p {
            "Roster keeps each organization's users, groups and roles in step with its \
             identity provider (SCIM 2.0 and SSO with just-in-time provisioning) and signs \
             them in to your app as an OpenID provider."
        }
        dl class="front" {
            dt { a href="/console" { "Console" } }
            dd {
                "For operators: organizations, connections, domains, directories, webhooks. \
                 Sign in with an admin key ("
                code { "roster admin-key create" }
                ")."
            }
            dt { a href="/.well-known/openid-configuration" { "OpenID discovery" } }
            dd {
                "For apps: the issuer is " code { (b) } "; register an app with "
                code { "roster app create" } ". Keys: " a href="/oauth/jwks" { "/oauth/jwks" } "."
            }
            dt { "SCIM 2.0" }
            dd {
                "For identity providers: " code { (b) "/scim/v2" } ", with a directory's bearer \
                 token (" code { "roster directory create" } ")."
            }
            dt { a href="/api/v1/openapi.json" { "Admin API" } }
            dd { "For scripts: " code { (b) "/api/v1" } ", described by its OpenAPI document." }
            dt { a href="/healthz" { "Health" } }
            dd { "Liveness at " code { "/healthz" } ", readiness at " code { "/readyz" } "." }
        }
        p class="hint" {
            "Documentation: " code { "README.md" } " and " code { "docs/" } " in Roster's \
             source (step-by-step guides per identity provider in " code { "docs/idp/" } ")."
        }
    };
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(page("Start here", None, body)),
    )
}
