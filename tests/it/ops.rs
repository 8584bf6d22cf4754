//! Operations: readiness.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::common::TestApp;
use crate::lifecycle::raw;

/// `/readyz` answers 200 only while the database has every migration this binary expects.
async fn readyz_checks_migrations(app: &TestApp) {
    let ready = || async {
        app.client
            .get(format!("{}/readyz", app.base()))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, StatusCode::OK);
    let pool = raw(&app.db.location()).await;
    // As if a node with an older binary ran the migrations: the newest is missing.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    pool.close().await;
}

backend_tests!(readyz_checks_migrations);
