//! The body and query extractors through a router: which refusal gets
//! which status, and that every data problem names its field.

use super::*;
use crate::api::testing::{assert_error, call_app, Resp};
use axum::body::Body;
use axum::http::{Method, Request};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Staff,
    Contractor,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    role: Kind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body1 {
    name: String,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    grants: Vec<Grant>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Edit {
    Rename { to: String },
    Count(u32),
    Pair(u8, u8),
    Clear,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    edit: Edit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    point: String,
    limit: Option<u32>,
    kind: Option<Kind>,
}

fn router() -> Router {
    Router::new()
        .route(
            "/body",
            post(|ApiJson(b): ApiJson<Body1>| async move {
                format!(
                    "{} {:?} {:?} {}",
                    b.name,
                    b.kind,
                    b.count,
                    b.grants.iter().map(|g| format!("{:?}", g.role)).count()
                )
            }),
        )
        .route(
            "/edit",
            post(|ApiJson(b): ApiJson<EditBody>| async move {
                match b.edit {
                    Edit::Rename { to } => format!("rename {to}"),
                    Edit::Count(n) => format!("count {n}"),
                    Edit::Pair(a, b) => format!("pair {a} {b}"),
                    Edit::Clear => "clear".to_owned(),
                }
            }),
        )
        .route(
            "/query",
            get(|ApiQuery(p): ApiQuery<Params>| async move {
                format!("{} {:?} {:?}", p.point, p.limit, p.kind)
            }),
        )
}

async fn post_body(body: &str) -> Resp {
    post_to("/body", body).await
}

async fn post_to(uri: &str, body: &str) -> Resp {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    call_app(&router(), req).await
}

async fn get_query(query: &str) -> Resp {
    let req = Request::builder()
        .uri(format!("/query?{query}"))
        .body(Body::empty())
        .unwrap();
    call_app(&router(), req).await
}

/// A 422 naming exactly `field`.
fn assert_invalid(r: &Resp, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "invalid", "{}", r.text);
    assert_eq!(
        r.json["error"]["fields"],
        json!([{ "field": field, "message": r.json["error"]["fields"][0]["message"] }]),
        "{}",
        r.text
    );
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("`{field}`")), "{}", r.text);
    assert!(
        !message.contains(" line "),
        "no parser positions: {}",
        r.text
    );
}

#[tokio::test]
async fn a_wrong_type_for_a_name_from_a_list_is_422_naming_the_field() {
    // serde_json reports these as syntax errors when it reads straight
    // into the enum; they are data errors of one field.
    for value in ["null", "5", "false", "[]", "{}", "1.5", "\"boss\""] {
        let body = format!("{{\"name\":\"x\",\"kind\":{value}}}");
        let r = post_body(&body).await;
        if value == "null" {
            // `kind` is optional: null is its absence.
            assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
            continue;
        }
        assert_invalid(&r, "kind");
    }
    for value in ["null", "5", "false", "[]", "\"boss\""] {
        let body =
            format!("{{\"name\":\"x\",\"grants\":[{{\"role\":\"staff\"}},{{\"role\":{value}}}]}}");
        assert_invalid(&post_body(&body).await, "grants[1].role");
    }
    let r = post_body(r#"{"name":"x","kind":"contractor","grants":[{"role":"staff"}]}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "x Some(Contractor) None 1");
}

#[tokio::test]
async fn every_type_and_shape_error_is_422_naming_the_field() {
    for (body, field) in [
        (r#"{"name":5}"#, "name"),
        (r#"{"name":null}"#, "name"),
        (r#"{"name":"x","count":-1}"#, "count"),
        (r#"{"name":"x","count":1.5}"#, "count"),
        (r#"{"name":"x","count":-1.0}"#, "count"),
        (r#"{"name":"x","count":4294967296.0}"#, "count"),
        (r#"{"name":"x","count":1e300}"#, "count"),
        (r#"{"name":"x","count":"7"}"#, "count"),
        (r#"{"name":"x","count":18446744073709551616}"#, "count"),
        (r#"{"name":"x","grants":{}}"#, "grants"),
        (r#"{"name":"x","grants":[5]}"#, "grants[0]"),
        (r#"{"name":"x","grants":[{}]}"#, "grants[0].role"),
        (
            r#"{"name":"x","grants":[{"role":"staff","extra":1}]}"#,
            "grants[0].extra",
        ),
        (r#"{}"#, "name"),
        (r#"{"name":"x","colour":1}"#, "colour"),
        (r#"{"name":"x","name":"y"}"#, "name"),
        (
            r#"{"name":"x","grants":[{"role":"staff","role":"staff"}]}"#,
            "grants[0].role",
        ),
        ("null", "."),
        ("[]", "."),
        // serde reads a struct from an array of its fields; the document
        // says object, and so does the hub.
        (r#"["x"]"#, "."),
        (r#"["x", null, null, []]"#, "."),
        (r#"{"name":"x","grants":[["staff"]]}"#, "grants[0]"),
        (r#"{"name":"x","kind":{"staff":1}}"#, "kind.staff"),
        (
            r#"{"name":"x","kind":{"staff":null,"contractor":null}}"#,
            "kind",
        ),
        ("\"name\"", "."),
    ] {
        let r = post_body(body).await;
        assert_invalid(&r, field);
    }
}

/// Enums as serde_json reads them: a unit variant by name, any variant as
/// an object with one key; structs inside them from objects only.
#[tokio::test]
async fn enum_variants_as_serde_json_reads_them() {
    for (body, shown) in [
        (r#"{"edit":"clear"}"#, "clear"),
        (r#"{"edit":{"clear":null}}"#, "clear"),
        (r#"{"edit":{"count":3}}"#, "count 3"),
        (r#"{"edit":{"count":3.0}}"#, "count 3"),
        (r#"{"edit":{"pair":[1,2]}}"#, "pair 1 2"),
        (r#"{"edit":{"rename":{"to":"y"}}}"#, "rename y"),
    ] {
        let r = post_to("/edit", body).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
        assert_eq!(r.text, shown, "{body}");
    }
    for (body, field) in [
        (r#"{"edit":{"rename":["y"]}}"#, "edit.rename"),
        (r#"{"edit":{"rename":{"to":"y","x":1}}}"#, "edit.rename.x"),
        (r#"{"edit":{"count":"3"}}"#, "edit.count"),
        (r#"{"edit":{"pair":[1,2,3]}}"#, "edit.pair"),
        (r#"{"edit":{"pair":{"0":1}}}"#, "edit.pair"),
        (r#"{"edit":{"clear":1}}"#, "edit.clear"),
        (r#"{"edit":"count"}"#, "edit.count"),
        (r#"{"edit":"grow"}"#, "edit"),
        (r#"{"edit":null}"#, "edit"),
        (r#"{"edit":[]}"#, "edit"),
        (r#"{"edit":{}}"#, "edit"),
    ] {
        assert_invalid(&post_to("/edit", body).await, field);
    }
}

/// JSON Schema's `integer` is a number without a fractional part, however
/// it is written.
#[tokio::test]
async fn integral_numbers_are_integers() {
    for (count, shown) in [
        ("7.0", "Some(7)"),
        ("7e0", "Some(7)"),
        ("-0.0", "Some(0)"),
        ("4294967295.0", "Some(4294967295)"),
    ] {
        let r = post_body(&format!("{{\"name\":\"x\",\"count\":{count}}}")).await;
        assert_eq!(r.status, StatusCode::OK, "{count}: {}", r.text);
        assert_eq!(r.text, format!("x None {shown} 0"), "{count}");
    }
    assert_eq!(json::integral(1.5), None);
    assert_eq!(
        json::integral(-9_223_372_036_854_775_808.0),
        Some(json!(i64::MIN))
    );
    assert_eq!(
        json::integral(9_223_372_036_854_775_808.0),
        Some(json!(1_u64 << 63))
    );
    assert_eq!(json::integral(18_446_744_073_709_551_616.0), None);
    assert_eq!(json::integral(f64::INFINITY), None);
}

#[tokio::test]
async fn bodies_that_are_not_one_json_value_are_400() {
    for body in [
        "",
        "{",
        "{\"name\": ",
        "{'name': 'x'}",
        "{\"name\":\"x\"} {}",
        "{\"name\":\"x\"}x",
        "nul",
        "{\"name\":\"x\",}",
    ] {
        let r = post_body(body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}: {}", r.text);
        assert_error(&r.json, "bad_request");
    }
    let r = post_body("{\"name\":\"x\"}\n").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "trailing white space is fine: {}",
        r.text
    );
}

#[tokio::test]
async fn query_refusals_are_400_naming_the_parameter() {
    let r = get_query("point=a&limit=5&kind=staff").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "a Some(5) Some(Staff)");
    for (query, message) in [
        ("limit=5", "`point` is required"),
        ("point=a&limit=x", "`limit`: invalid digit found in string"),
        ("point=a&limit=-1", "`limit`: invalid digit found in string"),
        (
            "point=a&limit=",
            "`limit`: cannot parse integer from empty string",
        ),
        ("point=a&kind=boss", "`kind`: unknown variant `boss`"),
        ("point=a&colour=red", "`colour`: unknown field `colour`"),
    ] {
        let r = get_query(query).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_error(&r.json, "bad_request");
        let got = r.json["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{query}: {got}");
    }
}
