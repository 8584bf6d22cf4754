//! Apps and their signing keys.

use crate::core::error::CoreResult;
use crate::core::keys::SigningKeyRecord;
use crate::core::model::*;
use crate::core::sessions::App;

/// The apps Roster signs in to, and the keys it signs their tokens with.
pub trait AppStore: Send + Sync + 'static {
    async fn insert_app(&self, app: &App, actor: &Actor) -> CoreResult<()>;
    async fn app(&self, id: &str) -> CoreResult<Option<App>>;
    async fn list_apps(&self) -> CoreResult<Vec<App>>;
    /// Stores a new signing key and retires the others, in one transaction.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> CoreResult<()>;
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> CoreResult<Vec<SigningKeyRecord>>;
}
