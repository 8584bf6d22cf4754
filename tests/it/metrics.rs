//! `/metrics`: every label from a known set, whatever clients send.

use reqwest::Method;

use crate::backend_tests;
use crate::common::TestApp;

/// The value of label `name` on an exposition line, if it has one.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

async fn metric_labels_are_bounded(app: &TestApp) {
    let base = app.base();
    let c = &app.client;
    // Unauthenticated requests with invented methods and paths made of route words.
    for (method, path) in [
        ("FOOBAR", "/x"),
        ("BREW", "/scim/v2/Users"),
        ("PROPFIND", "/metrics"),
        ("GET", "/no/such/path/made/up"),
        ("GET", "/scim/scim/oauth/token/v2/Users"),
        ("POST", "/api/v1/orgs/orgs/orgs/orgs"),
        ("GET", "/scim/v2/Users/x/y/z"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        c.request(m, format!("{base}{path}")).send().await.unwrap();
    }
    // Known routes keep their labels.
    app.get("/Users").await.expect(200);
    let id = app.user("labels@example.com").await;
    app.get(&format!("/Users/{id}")).await.expect(200);
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(m) = label(line, "method") {
            assert!(methods.contains(&m), "method label {m}: {line}");
        }
        if let Some(s) = label(line, "status") {
            let known = s.len() == 3
                && (s.ends_with("xx") || s.parse::<u16>().is_ok_and(|n| (100..600).contains(&n)));
            assert!(known, "status label {s}: {line}");
        }
        if let Some(r) = label(line, "route") {
            assert!(
                r == "other" || r == "/" || r.starts_with('/'),
                "route label {r}: {line}"
            );
            for bad in ["/scim/scim", "orgs/orgs", "/no/", "/x", "made"] {
                assert!(!r.contains(bad), "route label {r}: {line}");
            }
        }
    }
    for invented in ["FOOBAR", "BREW", "PROPFIND"] {
        assert!(!text.contains(invented), "{invented} in\n{text}");
    }
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="other""#), "{text}");
    assert!(
        text.contains(
            r#"roster_http_requests_total{method="GET",route="/scim/v2/Users",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"method="GET",route="/scim/v2/Users/{id}",status="200"}"#),
        "{text}"
    );
}

backend_tests!(metric_labels_are_bounded);
