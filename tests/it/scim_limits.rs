//! What a SCIM write may cost and carry: values of the wrong JSON type are refused, a user's
//! multi-valued attributes are bounded, and no request body, however shaped, costs more than
//! a few milliseconds per kilobyte (adversarial bodies from a small deterministic generator).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backend_tests;
use crate::common::{TestApp, patch_op};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The most values a user's multi-valued attribute may hold (`docs/idp/README.md`).
const MAX_VALUES: usize = 1000;

#[track_caller]
fn invalid_value(r: &crate::common::Resp, attr: &str) {
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert_eq!(r.body["scimType"], "invalidValue", "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(attr), "the detail names {attr}: {detail}");
}

async fn wrong_types_are_refused(app: &TestApp) {
    let user = |extra: Value| {
        let mut b = json!({"schemas": [USER], "userName": "typed@example.com"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, attr) in [
        (json!({"emails": [{"value": 5}]}), "emails.value"),
        (json!({"emails": [5, 6]}), "emails"),
        (json!({"emails": [true]}), "emails"),
        (
            json!({"emails": [{"value": "a@x.com", "type": 7}]}),
            "emails.type",
        ),
        (json!({"emails": [{"value": ["a@x.com"]}]}), "emails.value"),
        (
            json!({"phoneNumbers": [{"value": 15550100}]}),
            "phoneNumbers.value",
        ),
        (json!({"title": 42}), "title"),
        (json!({"displayName": false}), "displayName"),
        (json!({"name": {"givenName": 1}}), "name.givenName"),
        (
            json!({"emails": [{"value": "a@x.com", "primary": "maybe"}]}),
            "emails.primary",
        ),
        (json!({"active": 1}), "active"),
    ] {
        let r = app.post("/Users", &user(body.clone())).await;
        invalid_value(&r, attr);
    }
    // The IdP tolerances stay: Entra's string booleans, bare email strings.
    let id = app
        .post(
            "/Users",
            &user(json!({"active": "False", "emails": ["typed@example.com"],
                         "phoneNumbers": [{"value": "+1 555 0100", "primary": "True"}]})),
        )
        .await
        .expect(201)
        .id();
    let path = format!("/Users/{id}");
    let u = app.get(&path).await.expect(200).body;
    assert_eq!(u["active"], false);
    assert_eq!(u["emails"], json!([{"value": "typed@example.com"}]));
    assert_eq!(u["phoneNumbers"][0]["primary"], true);
    // PATCH values are typed the same way, whichever path shape carries them.
    for (ops, attr) in [
        (
            json!([{"op": "add", "path": "emails", "value": [{"value": 5}]}]),
            "emails.value",
        ),
        (
            json!([{"op": "add", "path": "emails", "value": 5}]),
            "emails",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": 5}]),
            "emails.value",
        ),
        (
            json!([{"op": "add", "path": "emails.display", "value": 5}]),
            "emails.display",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": 5}]),
            "title",
        ),
        (
            json!([{"op": "replace", "value": {"nickName": 5}}]),
            "nickName",
        ),
        (
            json!([{"op": "replace", "path": "name.familyName", "value": 5}]),
            "name.familyName",
        ),
    ] {
        let r = app.patch(&path, &patch_op(ops.clone())).await;
        invalid_value(&r, attr);
    }
    let u2 = app.get(&path).await.expect(200).body;
    assert_eq!(
        u2["meta"]["version"], u["meta"]["version"],
        "refused PATCHes change nothing"
    );
}

async fn multi_valued_attributes_are_bounded(app: &TestApp) {
    let emails = |n: usize, tag: &str| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"value": format!("{tag}{i}@example.com")}))
            .collect()
    };
    let r = app
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "many@example.com",
                    "emails": emails(MAX_VALUES + 1, "e")}),
        )
        .await;
    invalid_value(&r, "emails");
    let r = app
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "many@example.com",
                    "entitlements": (0..=MAX_VALUES).map(|i| json!(format!("ent{i}"))).collect::<Vec<_>>()}),
        )
        .await;
    invalid_value(&r, "entitlements");
    // Duplicates (in SCIM's comparison: emails ignore case) are stored once.
    let mut list = emails(3, "e");
    list.push(json!({"value": "E0@EXAMPLE.COM"}));
    list.push(json!({"value": "e1@example.com", "type": "work"}));
    let r = app
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "dups@example.com", "emails": list}),
        )
        .await
        .expect(201);
    assert_eq!(
        r.body["emails"],
        json!([{"value": "e0@example.com"}, {"value": "e1@example.com"}, {"value": "e2@example.com"},
               {"type": "work", "value": "e1@example.com"}])
    );
    // Exactly the bound is accepted.
    let id = app
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "many@example.com", "emails": emails(MAX_VALUES, "e")}),
        )
        .await
        .expect(201)
        .id();
    let path = format!("/Users/{id}");
    let u = app.get(&path).await.expect(200).body;
    assert_eq!(u["emails"].as_array().unwrap().len(), MAX_VALUES);
    // A PATCH adding already present values is no change; one more value is refused.
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "path": "emails", "value": [{"value": "E5@example.COM"}, {"value": "e6@example.com"}]}])),
        )
        .await
        .expect(200);
    assert_eq!(r.body["emails"], u["emails"]);
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "path": "emails", "value": [{"value": "one.more@example.com"}]}])),
        )
        .await;
    invalid_value(&r, "emails");
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "home@example.com"}])),
        )
        .await;
    invalid_value(&r, "emails");
    // Entra's remove-by-value takes away exactly the listed values (compared as SCIM
    // compares them).
    let r = app
        .patch(
            &path,
            &patch_op(json!([{"op": "remove", "path": "emails", "value": [{"value": "E0@Example.com"}, {"value": "e1@example.com"}]}])),
        )
        .await
        .expect(200);
    let left = r.body["emails"].as_array().unwrap();
    assert_eq!(left.len(), MAX_VALUES - 2);
    assert_eq!(left[0]["value"], "e2@example.com");
    // The bound is told where RFC 7643 leaves room: the attribute's description.
    let schema = app
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .expect(200)
        .body;
    let attr = |name: &str| {
        schema["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["description"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        attr("emails").ends_with("At most 1000 values."),
        "{}",
        attr("emails")
    );
    assert!(!attr("groups").contains("At most"));
    // Groups are not users: a group's members are not bounded by this.
    let ops: Vec<Value> = (0..MAX_VALUES)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("m{i}"),
                        "data": {"userName": format!("member{i}@example.com")}})
        })
        .collect();
    let r = app
        .post("/Bulk", &json!({"Operations": ops}))
        .await
        .expect(200);
    let mut members: Vec<Value> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let loc = o["location"].as_str().unwrap();
            json!({"value": loc.rsplit('/').next().unwrap()})
        })
        .collect();
    members.push(json!({"value": id}));
    let gid = app
        .post(
            "/Groups",
            &json!({"displayName": "Large", "members": members}),
        )
        .await
        .expect(201)
        .id();
    let g = app.get(&format!("/Groups/{gid}")).await.expect(200).body;
    assert_eq!(g["members"].as_array().unwrap().len(), MAX_VALUES + 1);
}

/// A small deterministic generator (xorshift64*): the same bodies on every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A near-duplicate of `base`: the same text with one letter's case flipped and a short
    /// suffix, so comparisons run the whole common prefix.
    fn near(&mut self, base: &str) -> String {
        let mut s: Vec<char> = base.chars().collect();
        let i = self.below(s.len() as u64) as usize;
        s[i] = if s[i].is_ascii_lowercase() {
            s[i].to_ascii_uppercase()
        } else {
            s[i].to_ascii_lowercase()
        };
        let mut out: String = s.into_iter().collect();
        out.push_str(&format!("{}", self.below(1_000_000)));
        out
    }
}

/// Fills a list with `item(i)` until its JSON text reaches `bytes`.
fn fill(bytes: usize, mut item: impl FnMut(usize) -> Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut len = 2;
    let mut i = 0;
    while len < bytes {
        let v = item(i);
        len += v.to_string().len() + 1;
        out.push(v);
        i += 1;
    }
    out
}

/// `depth` nested arrays around a string.
fn deep(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// Adversarial request bodies of about `bytes` each: (label, method, path, body).
fn bodies(
    g: &mut Gen,
    bytes: usize,
    user: &str,
    group: &str,
    members: &[String],
) -> Vec<(String, &'static str, String, Value)> {
    let upath = format!("/Users/{user}");
    let gpath = format!("/Groups/{group}");
    let prefix = "someone.with.a.rather.long.address.for.comparisons@example.com";
    let mut out = Vec::new();
    let mut push = |label: &str, method: &'static str, path: &str, body: Value| {
        out.push((
            format!("{label} ({} KB)", bytes / 1024),
            method,
            path.to_owned(),
            body,
        ));
    };
    let mut n = 0;
    let mut new_user = |extra: (&str, Value)| {
        n += 1;
        let mut b = json!({"schemas": [USER], "userName": format!("gen{n}.{bytes}@example.com")});
        b[extra.0] = extra.1;
        b
    };
    // POST: many near-duplicate emails, many bare short values, many exact duplicates.
    let near = fill(bytes, |_| json!({"value": g.near(prefix), "type": "work"}));
    push(
        "POST near-duplicate emails",
        "POST",
        "/Users",
        new_user(("emails", json!(near))),
    );
    let bare = fill(bytes, |i| json!(format!("{i}")));
    push(
        "POST bare short emails",
        "POST",
        "/Users",
        new_user(("emails", json!(bare))),
    );
    let same = fill(bytes, |_| json!({"value": "same@example.com"}));
    push(
        "POST duplicate roles",
        "POST",
        "/Users",
        new_user(("roles", json!(same))),
    );
    let ents = fill(
        bytes,
        |i| json!({"value": format!("e{}", i % 900), "primary": i % 2 == 0}),
    );
    push(
        "POST entitlements",
        "POST",
        "/Users",
        new_user(("entitlements", json!(ents))),
    );
    // Deep values, in a known and in an unknown attribute (JSON nesting stops at 128).
    push(
        "POST deep values",
        "POST",
        "/Users",
        new_user(("x-unknown", json!(fill(bytes, |_| deep(100))))),
    );
    push(
        "POST deep known value",
        "POST",
        "/Users",
        new_user((
            "addresses",
            json!(fill(bytes, |_| json!({"formatted": deep(100)}))),
        )),
    );
    // PATCH: one op with many values, then many ops.
    let near = fill(bytes, |_| json!({"value": g.near(prefix)}));
    push(
        "PATCH add near-duplicate emails",
        "PATCH",
        &upath,
        patch_op(json!([{"op": "add", "path": "emails", "value": near}])),
    );
    let ops = fill(
        bytes,
        |i| json!({"op": "add", "path": "emails", "value": [{"value": format!("op{i}@x.com")}]}),
    );
    push("PATCH many add ops", "PATCH", &upath, patch_op(json!(ops)));
    let ops = fill(
        bytes,
        |i| json!({"op": "add", "path": format!("emails[type eq \"t{}\"].value", i % 1500), "value": "v@x.com"}),
    );
    push(
        "PATCH many filtered ops",
        "PATCH",
        &upath,
        patch_op(json!(ops)),
    );
    let ops = fill(
        bytes,
        |i| json!({"op": "remove", "path": format!("emails[value eq \"{i}\"]")}),
    );
    push(
        "PATCH many filtered removes",
        "PATCH",
        &upath,
        patch_op(json!(ops)),
    );
    let vals = fill(bytes, |_| json!({"value": g.near(prefix)}));
    push(
        "PATCH remove many values",
        "PATCH",
        &upath,
        patch_op(json!([{"op": "remove", "path": "emails", "value": vals}])),
    );
    let ops = fill(
        bytes,
        |i| json!({"op": "replace", "value": {"title": format!("t{i}"), "emails": [{"value": format!("r{}@x.com", i % 7)}]}}),
    );
    push(
        "PATCH many no-path replaces",
        "PATCH",
        &upath,
        patch_op(json!(ops)),
    );
    // Groups: many duplicate members, many member ops.
    let mut m = 0;
    let mut next_member = || {
        m += 1;
        json!({"value": members[m % members.len()]})
    };
    let dup = fill(bytes, |_| next_member());
    push(
        "POST group duplicate members",
        "POST",
        "/Groups",
        json!({"displayName": format!("g{bytes}"), "members": dup}),
    );
    let dup = fill(bytes, |_| next_member());
    push(
        "PATCH add duplicate members",
        "PATCH",
        &gpath,
        patch_op(json!([{"op": "add", "path": "members", "value": dup}])),
    );
    let dup = fill(bytes, |_| next_member());
    push(
        "PATCH remove duplicate members",
        "PATCH",
        &gpath,
        patch_op(json!([{"op": "remove", "path": "members", "value": dup}])),
    );
    let ops = fill(
        bytes,
        |_| json!({"op": "add", "path": "members", "value": [next_member()]}),
    );
    push(
        "PATCH many member ops",
        "PATCH",
        &gpath,
        patch_op(json!(ops)),
    );
    let ops = fill(
        bytes,
        |_| json!({"op": "replace", "path": "members", "value": [next_member(), next_member()]}),
    );
    push(
        "PATCH many member replaces",
        "PATCH",
        &gpath,
        patch_op(json!(ops)),
    );
    out
}

/// Allowed time for a body of `kb` kilobytes. The tests run unoptimized on a 2-core machine
/// shared with other builds: the fixed part absorbs a slow commit, and 10 ms per KB is
/// several times what a debug build needs (`docs/idp/README.md` has the release figures).
fn budget(kb: f64) -> Duration {
    Duration::from_millis(500) + Duration::from_secs_f64(kb * 0.010)
}

async fn request_cost_is_linear(app: &TestApp) {
    let members: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(app.user(&format!("gm{i}@example.com")).await);
        }
        v
    };
    let group = app
        .post("/Groups", &json!({"displayName": "Target"}))
        .await
        .expect(201)
        .id();
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut worst_ms = (0.0, String::new());
    let mut worst_per_kb = (0.0, String::new());
    for bytes in [16 * 1024, 128 * 1024, 1000 * 1024] {
        // A user with half the emails allowed, so PATCH filters have work to do and adds
        // have room.
        let user = app
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": format!("target{bytes}@example.com"),
                        "emails": (0..MAX_VALUES / 2).map(|i| json!({"value": format!("{i}"), "type": "work"})).collect::<Vec<_>>()}),
            )
            .await
            .expect(201)
            .id();
        for (label, method, path, body) in bodies(&mut g, bytes, &user, &group, &members) {
            let text = body.to_string();
            let kb = text.len() as f64 / 1024.0;
            let allowed = budget(kb);
            let started = Instant::now();
            let sent = app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", app.scim))
                .bearer_auth(&app.token)
                .header("content-type", "application/scim+json")
                .timeout(allowed * 2)
                .body(text)
                .send()
                .await;
            let status = match sent {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(e) => panic!("{label}: no answer within {allowed:?}: {e}"),
            };
            let took = started.elapsed();
            let ms = took.as_secs_f64() * 1000.0;
            eprintln!("{label}: {status} in {ms:.1} ms ({:.3} ms/KB)", ms / kb);
            assert!(status < 500, "{label}: {status}");
            assert!(
                took <= allowed,
                "{label}: {ms:.0} ms for {kb:.0} KB (allowed {allowed:?})"
            );
            if ms / kb > worst_per_kb.0 {
                worst_per_kb = (ms / kb, label.clone());
            }
            if ms > worst_ms.0 {
                worst_ms = (ms, label);
            }
        }
    }
    eprintln!(
        "slowest request: {} in {:.1} ms; most per KB: {} at {:.3} ms/KB",
        worst_ms.1, worst_ms.0, worst_per_kb.1, worst_per_kb.0
    );
}

/// One HTTP/1.1 response read off `stream`: its status, its headers (lower-cased names) and
/// its body (by Content-Length). `None` if the connection ended or failed first.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
) -> Option<(u16, Vec<(String, String)>, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// A connection to `addr` with small socket buffers: as over a real network, a client
/// writing a large body is still writing when the server stops reading (on loopback the
/// kernel's buffers would otherwise take megabytes the server never reads).
async fn connect(addr: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_send_buffer_size(32 * 1024).expect("SO_SNDBUF");
    sock.set_recv_buffer_size(32 * 1024).expect("SO_RCVBUF");
    sock.connect(addr.parse().expect("address"))
        .await
        .expect("connect")
}

/// [`read_response`], waited for at most 10 s.
async fn answer(s: &mut tokio::net::TcpStream) -> Option<(u16, Vec<(String, String)>, String)> {
    tokio::time::timeout(Duration::from_secs(10), read_response(s))
        .await
        .expect("an answer in time")
}

#[track_caller]
fn scim_413(status: u16, body: &str) {
    assert_eq!(status, 413, "{body}");
    let b: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert_eq!(b["status"], "413", "{body}");
    assert_eq!(
        b["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
}

/// A body over the 1 MiB limit is answered 413, and ordinary clients read that answer: the
/// server discards the rest of the body (up to a bound) instead of resetting a connection
/// the client is still writing to. Past the bound the connection is closed anyway, and a
/// declared Content-Length over the limit is answered before any of the body is read.
async fn oversized_bodies_get_their_413(app: &TestApp) {
    use tokio::io::AsyncWriteExt;
    const MIB: usize = 1 << 20;
    let big = format!("{{\"userName\":\"{}\"}}", "x".repeat(3 * MIB));
    // reqwest, writing the whole body (Content-Length), a few times over.
    for _ in 0..3 {
        let r = app
            .client
            .post(format!("{}/Users", app.scim))
            .bearer_auth(&app.token)
            .header("content-type", "application/scim+json")
            .body(big.clone())
            .send()
            .await
            .expect("the client gets an answer, not a reset");
        let status = r.status().as_u16();
        scim_413(status, &r.text().await.unwrap_or_default());
    }
    // Nor does a request refused before its body is read (a bad token) reset it.
    let r = app
        .client
        .post(format!("{}/Users", app.scim))
        .bearer_auth("not-a-token")
        .header("content-type", "application/scim+json")
        .body(big.clone())
        .send()
        .await
        .expect("the client gets an answer, not a reset");
    assert_eq!(r.status().as_u16(), 401);

    let addr = app.base().trim_start_matches("http://").to_owned();
    let head = |framing: &str| {
        format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/scim+json\r\n{framing}\r\n",
            app.token
        )
    };
    // A raw client that writes all of a declared 3 MiB, then reads: the 413, and the
    // connection stays usable.
    let mut s = connect(&addr).await;
    s.write_all(head(&format!("Content-Length: {}\r\n", big.len())).as_bytes())
        .await
        .unwrap();
    s.write_all(big.as_bytes())
        .await
        .expect("the whole body is taken");
    let (status, _, body) = answer(&mut s).await.expect("a response");
    scim_413(status, &body);
    s.write_all(
        format!(
            "GET /scim/v2/Users?count=0 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
            app.token
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (status, _, _) = answer(&mut s).await.expect("the next request is served");
    assert_eq!(status, 200);

    // The same, chunked (no length declared): the server reads up to the limit, answers,
    // and discards the rest.
    let mut s = connect(&addr).await;
    s.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    for part in big.as_bytes().chunks(64 * 1024) {
        s.write_all(format!("{:x}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(part).await.expect("the whole body is taken");
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, _, body) = answer(&mut s).await.expect("a response");
    scim_413(status, &body);

    // A declared length over the limit is answered before any of the body is sent; one
    // far over what the server would discard closes the connection after the answer.
    let mut s = connect(&addr).await;
    s.write_all(head(&format!("Content-Length: {}\r\n", 64 * MIB)).as_bytes())
        .await
        .unwrap();
    let (status, _, body) = answer(&mut s).await.expect("an answer without the body");
    scim_413(status, &body);
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        s.read(&mut rest).await
    })
    .await
    .expect("closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)), "then the connection ends");

    // What the server discards is bounded: an endless chunked body is cut off.
    let mut s = connect(&addr).await;
    s.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    let part = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let r = async {
                s.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                    .await?;
                s.write_all(&part).await?;
                s.write_all(b"\r\n").await
            };
            if r.await.is_err() {
                return true;
            }
            sent += part.len();
            if sent > 256 * MIB {
                return false;
            }
        }
    })
    .await
    .expect("cut off in time");
    assert!(cut, "the server stopped taking an endless body");
    assert!(sent < 64 * MIB, "after {sent} bytes");
}

backend_tests!(
    wrong_types_are_refused,
    multi_valued_attributes_are_bounded,
    request_cost_is_linear,
    oversized_bodies_get_their_413
);
