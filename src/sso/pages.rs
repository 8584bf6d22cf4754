//! What the browser sees when a login cannot go on: a plain page that says why (refusals,
//! expired or foreign logins, misconfiguration), or a redirect that hands the app an OAuth
//! error (the IdP said no).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};

use crate::core::error::CoreError;
use crate::core::jit::Refusal;
use crate::core::sessions::AppRequest;
use crate::sso::oidc_rp::RpError;

#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    /// The policy refuses this person (deactivated, not provisioned, domain...).
    #[error("{0}")]
    Refused(Refusal),
    /// The IdP answered with an error (the user cancelled, or the IdP refused).
    #[error("the identity provider did not sign you in: {0}")]
    IdpError(String),
    /// The IdP's answer failed verification (shown: what we found wrong with what the
    /// browser brought).
    #[error("the sign-in response was rejected: {0}")]
    Rejected(String),
    /// The ID token Roster fetched from the IdP failed verification: the reason is logged,
    /// not shown (it may quote the IdP's answer).
    #[error("the identity provider's ID token was rejected: {0}")]
    TokenRejected(String),
    /// A request to the IdP failed, or was refused by the outbound rule: the reason (status,
    /// content type, addresses) is logged, never shown to an anonymous browser, which could
    /// otherwise probe what answers where.
    #[error("the identity provider cannot be reached: {0}")]
    Upstream(String),
    #[error("single sign-on is not set up correctly: {0}")]
    Config(String),
    #[error("internal error")]
    Internal(String),
}

impl From<RpError> for LoginFailure {
    fn from(e: RpError) -> Self {
        match e {
            RpError::Config(m) => LoginFailure::Config(m),
            RpError::Upstream(m) => LoginFailure::Upstream(m),
            RpError::Token(m) => LoginFailure::TokenRejected(m),
        }
    }
}

/// The request id a page shows, so that a person can hand it to whoever reads the logs.
fn reference() -> String {
    crate::core::context::current()
        .request_id
        .map(|id| format!(" Reference: {id}."))
        .unwrap_or_default()
}

impl LoginFailure {
    pub fn internal(e: CoreError) -> Self {
        LoginFailure::Internal(e.to_string())
    }

    /// The IdP's own refusals go back to the app as `access_denied`; everything else is a
    /// page here (the app cannot act on it, the person or an administrator can).
    pub fn respond(self, app: &AppRequest) -> Response {
        match &self {
            LoginFailure::IdpError(m) => {
                redirect_to_app(app, &[("error", "access_denied"), ("error_description", m)])
            }
            _ => self.into_response(),
        }
    }

    /// As [`respond`](Self::respond), for a login Roster started for itself: the IdP's
    /// refusal goes back to `uri`.
    pub fn respond_at(self, uri: &str) -> Response {
        self.respond(&AppRequest {
            redirect_uri: uri.to_owned(),
            ..Default::default()
        })
    }
}

impl IntoResponse for LoginFailure {
    fn into_response(self) -> Response {
        match self {
            LoginFailure::Refused(r) => error_page(
                StatusCode::FORBIDDEN,
                &format!("You cannot sign in: {r}. Contact your administrator."),
            ),
            LoginFailure::Internal(m) => {
                tracing::error!(error = %m, "login failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in failed because of an internal error.",
                )
            }
            LoginFailure::Rejected(m) => {
                tracing::warn!(reason = %m, "IdP response rejected");
                error_page(
                    StatusCode::BAD_REQUEST,
                    &format!("The sign-in response was rejected: {m}."),
                )
            }
            LoginFailure::TokenRejected(m) => {
                let request_id = crate::core::context::current().request_id;
                tracing::warn!(reason = %m, request_id = request_id.as_deref(), "IdP ID token rejected");
                error_page(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "The sign-in response was rejected: the identity provider's ID token was rejected.{}",
                        reference()
                    ),
                )
            }
            LoginFailure::Upstream(m) => {
                let request_id = crate::core::context::current().request_id;
                tracing::warn!(reason = %m, request_id = request_id.as_deref(), "IdP request failed");
                error_page(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "Sign-in failed: the identity provider could not be reached or answered \
                         unexpectedly. Try again later, or contact your administrator.{}",
                        reference()
                    ),
                )
            }
            other => error_page(
                StatusCode::BAD_GATEWAY,
                &format!("Sign-in failed: {other}."),
            ),
        }
    }
}

/// The page a browser sees when a login cannot go on; `message` is shown escaped.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign-in problem" }
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
            }
            body { main { h1 { "Sign-in problem" } p id="message" { (message) } } }
        }
    }
    .into_string();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Redirects to the app's registered redirect URI with `params` and the app's `state`.
pub fn redirect_to_app(app: &AppRequest, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(&app.redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The application's redirect URI is invalid.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = &app.state {
            q.append_pair("state", s);
        }
    }
    let mut r = Redirect::to(url.as_str()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
