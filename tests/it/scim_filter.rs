//! The filter grammar, evaluated in the database, on both stores.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::TestApp;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn seed(app: &TestApp) {
    let people = [
        (
            "bjensen",
            "Barbara",
            "Jensen",
            "Employee",
            "work",
            "bjensen@example.com",
            true,
            "Tour Guide",
            "701984",
            "2",
        ),
        (
            "jsmith",
            "John",
            "Smith",
            "Intern",
            "home",
            "jsmith@example.org",
            true,
            "",
            "100",
            "3",
        ),
        (
            "mo'malley",
            "Mary",
            "O'Malley",
            "Employee",
            "work",
            "mary@omalley.example.com",
            false,
            "Manager",
            "555",
            "1",
        ),
        (
            "ÜNÏCODE",
            "Zoë",
            "Ünal",
            "Contractor",
            "other",
            "zoe@example.net",
            true,
            "",
            "",
            "4",
        ),
    ];
    for (un, given, family, user_type, etype, email, active, title, emp, cc) in people {
        let mut u = json!({
            "userName": un,
            "name": {"givenName": given, "familyName": family},
            "userType": user_type,
            "active": active,
            "emails": [{"type": etype, "value": email, "primary": true}],
            ENTERPRISE: {"costCenter": cc}
        });
        if !title.is_empty() {
            u["title"] = json!(title);
        }
        if !emp.is_empty() {
            u[ENTERPRISE]["employeeNumber"] = json!(emp);
        }
        app.post("/Users", &u).await.expect(201);
    }
}

async fn users(app: &TestApp, filter: &str) -> Vec<String> {
    let r = app
        .post(
            "/Users/.search",
            &json!({"filter": filter, "sortBy": "userName"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "filter {filter}: {}", r.body);
    let mut names: Vec<String> = r.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["userName"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(r.body["totalResults"].as_u64(), Some(names.len() as u64));
    names.sort();
    names
}

async fn operators(app: &TestApp) {
    seed(app).await;
    let cases: &[(&str, &[&str])] = &[
        ("userName eq \"BJENSEN\"", &["bjensen"]),
        ("userName eq \"ünïcode\"", &["ÜNÏCODE"]),
        (
            "userName ne \"bjensen\"",
            &["jsmith", "mo'malley", "ÜNÏCODE"],
        ),
        ("userName co \"SMI\"", &["jsmith"]),
        ("userName sw \"j\"", &["jsmith"]),
        ("userName ew \"ENSEN\"", &["bjensen"]),
        ("name.familyName co \"O'Malley\"", &["mo'malley"]),
        ("name.familyName eq \"jensen\"", &["bjensen"]),
        ("title pr", &["bjensen", "mo'malley"]),
        ("not (title pr)", &["jsmith", "ÜNÏCODE"]),
        (
            "title pr and userType eq \"Employee\"",
            &["bjensen", "mo'malley"],
        ),
        (
            "title pr or userType eq \"Intern\"",
            &["bjensen", "jsmith", "mo'malley"],
        ),
        (
            "userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
            &["bjensen", "mo'malley"],
        ),
        (
            "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
            &["ÜNÏCODE"],
        ),
        (
            "userType eq \"Employee\" and (emails.type eq \"work\")",
            &["bjensen", "mo'malley"],
        ),
        (
            "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
            &["bjensen"],
        ),
        (
            "emails[type eq \"work\" and value co \"@example.com\"] or emails[type eq \"home\"]",
            &["bjensen", "jsmith"],
        ),
        (
            "emails[primary eq true and value ew \".net\"]",
            &["ÜNÏCODE"],
        ),
        ("active eq false", &["mo'malley"]),
        ("active eq true and userName sw \"b\"", &["bjensen"]),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"J\"",
            &["jsmith"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"701984\"",
            &["bjensen"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber pr",
            &["bjensen", "jsmith", "mo'malley"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter gt \"2\"",
            &["jsmith", "ÜNÏCODE"],
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter le \"2\"",
            &["bjensen", "mo'malley"],
        ),
        (
            "schemas eq \"urn:ietf:params:scim:schemas:core:2.0:User\"",
            &["bjensen", "jsmith", "mo'malley", "ÜNÏCODE"],
        ),
        (
            "meta.created gt \"2000-01-01T00:00:00Z\" and userName eq \"jsmith\"",
            &["jsmith"],
        ),
        ("meta.lastModified lt \"2000-01-01T00:00:00+01:00\"", &[]),
        (
            "(userName eq \"bjensen\" or userName eq \"jsmith\") and not (active eq false)",
            &["bjensen", "jsmith"],
        ),
        ("EMAILS.VALUE CO \"OMALLEY\"", &["mo'malley"]),
        (
            "userName eq \"bjensen\" OR userName Eq \"jsmith\"",
            &["bjensen", "jsmith"],
        ),
    ];
    for (f, want) in cases {
        assert_eq!(users(app, f).await, *want, "filter: {f}");
    }
}

async fn entra_filter_form(app: &TestApp) {
    seed(app).await;
    assert_eq!(
        users(
            app,
            "emails[type eq \"work\"].value eq \"bjensen@example.com\""
        )
        .await,
        ["bjensen"]
    );
    assert_eq!(
        users(
            app,
            "emails[type eq \"home\"].value eq \"bjensen@example.com\""
        )
        .await,
        Vec::<String>::new()
    );
    // Long flat chains (governance tools look up many users at once) are accepted.
    let mut chain: Vec<String> = (0..120)
        .map(|i| format!("userName eq \"nobody{i}\""))
        .collect();
    chain.push("userName eq \"jsmith\"".to_owned());
    assert_eq!(users(app, &chain.join(" or ")).await, ["jsmith"]);
    // Entra's test-connection probe: a random GUID → 200 with an empty list.
    let r = app
        .get("/Users?filter=userName%20eq%20%22c3c1b2f7-2e6b-4b61-9b3f-7d6a0d9f0c3e%22")
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], Value::Null);
    let r = app
        .get("/Groups?filter=displayName%20eq%20%22c3c1b2f7%22")
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
}

async fn invalid_filters(app: &TestApp) {
    for f in [
        "nosuch eq \"x\"",
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "userName eq \"a\" and",
        "emails[type eq \"work\"",
        "active gt true",
        "active eq \"perhaps\"",
        "name eq \"x\"",
        "emails[nosub eq \"x\"]",
        "urn:nope:Thing:attr eq \"x\"",
        "meta.created gt \"yesterday\"",
        "userName eq unquoted",
    ] {
        let r = app.post("/Users/.search", &json!({"filter": f})).await;
        assert_eq!(r.status.as_u16(), 400, "filter {f}: {}", r.body);
        assert_eq!(r.body["scimType"], "invalidFilter", "filter {f}");
    }
    let deep = format!("{}userName eq \"a\"{}", "(".repeat(500), ")".repeat(500));
    let r = app
        .post("/Users/.search", &json!({"filter": deep}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidFilter");
    let long = format!("userName eq \"{}\"", "a".repeat(20_000));
    let r = app
        .post("/Users/.search", &json!({"filter": long}))
        .await
        .expect(400);
    assert_eq!(r.body["scimType"], "invalidFilter");
    // Values are bound, never spliced into SQL.
    let r = app
        .get("/Users?filter=userName%20eq%20%22x'%20OR%201=1%20--%22")
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
}

/// Equality on a unique key (`userName`, `id`) is read like a resource by id; it must page,
/// count and render exactly like the same match found by the general filter path.
async fn unique_key_filters(app: &TestApp) {
    seed(app).await;
    let general = "userName%20eq%20%22jsmith%22%20and%20userName%20pr";
    let r = app
        .get(&format!("/Users?filter={general}"))
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 1);
    let id = r.body["Resources"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for f in [
        "userName%20eq%20%22JSmith%22".to_owned(),
        format!("id%20eq%20%22{id}%22"),
    ] {
        for params in ["", "&startIndex=2", "&count=0", "&attributes=userName"] {
            let want = app
                .get(&format!("/Users?filter={general}{params}"))
                .await
                .expect(200);
            let got = app
                .get(&format!("/Users?filter={f}{params}"))
                .await
                .expect(200);
            assert_eq!(got.body, want.body, "filter {f}{params}");
            assert_eq!(got.body["totalResults"], 1, "filter {f}{params}");
        }
    }
    let r = app
        .get(&format!(
            "/Users?filter=id%20eq%20%22{id}%22&attributes=userName"
        ))
        .await
        .expect(200);
    assert_eq!(
        r.body["Resources"][0],
        json!({"id": id, "userName": "jsmith", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})
    );
    // A group's id finds the group, never a user with that id, and the other way round.
    let g = app
        .post("/Groups", &json!({"displayName": "Guides"}))
        .await
        .expect(201);
    let gid = g.body["id"].as_str().unwrap_or_default();
    let r = app
        .get(&format!("/Groups?filter=id%20eq%20%22{gid}%22"))
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["displayName"], "Guides");
    let r = app
        .get(&format!("/Users?filter=id%20eq%20%22{gid}%22"))
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
    let r = app
        .get(&format!("/Groups?filter=id%20eq%20%22{id}%22"))
        .await
        .expect(200);
    assert_eq!(r.body["totalResults"], 0);
}

backend_tests!(
    operators,
    entra_filter_form,
    invalid_filters,
    unique_key_filters
);
