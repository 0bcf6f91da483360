//! The document says what the register routes enforce: every pattern and
//! bound of a field is the constant its check uses, and the CSV routes
//! declare `text/csv`.

use super::csv_import::MAX_IMPORT_BYTES;
use super::dto::{
    Problems, MAX_COST_CENTS, MAX_ID, MAX_NAME, MAX_TEXT, MAX_TIMEZONE, MAX_UNIT, POINT_PATTERN,
    SITE_PATTERN, TEXT_PATTERN, TIMEZONE_PATTERN,
};
use super::parts::MAX_RECEIPT;
use crate::api::openapi::document;
use serde_json::{json, Value};

fn doc() -> Value {
    serde_json::to_value(document()).unwrap()
}

/// Every `$ref` of the document names a schema it defines.
#[test]
fn every_reference_resolves() {
    let doc = doc();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&doc["paths"], &mut refs);
    walk(&doc["components"], &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
}

#[test]
fn documented_patterns_and_bounds_are_the_checked_ones() {
    let doc = doc();
    let prop = |schema: &str, name: &str| -> Value {
        let p = doc["components"]["schemas"][schema]["properties"][name].clone();
        assert!(p.is_object(), "{schema}.{name} missing");
        p
    };
    let text = |schema: &str, name: &str, max: usize| {
        let p = prop(schema, name);
        assert_eq!(p["pattern"], TEXT_PATTERN, "{schema}.{name}");
        assert_eq!(
            (&p["minLength"], &p["maxLength"]),
            (&json!(1), &json!(max)),
            "{schema}.{name}"
        );
    };
    assert_eq!(prop("CreateSite", "id")["pattern"], SITE_PATTERN);
    text("CreateSite", "name", MAX_NAME);
    text("PatchSite", "name", MAX_NAME);
    for schema in ["CreateSite", "PatchSite"] {
        let tz = prop(schema, "timezone");
        assert_eq!(tz["pattern"], TIMEZONE_PATTERN);
        assert_eq!(tz["maxLength"], json!(MAX_TIMEZONE));
    }
    assert_eq!(prop("CreateAsset", "site")["pattern"], SITE_PATTERN);
    for name in ["id", "parent", "kind"] {
        text("CreateAsset", name, MAX_ID);
    }
    for name in ["parent", "kind"] {
        text("PatchAsset", name, MAX_ID);
    }
    text("CreateAsset", "name", MAX_NAME);
    text("PatchAsset", "name", MAX_NAME);
    for name in ["manufacturer", "model", "serial", "location"] {
        text("CreateAsset", name, MAX_TEXT);
        text("PatchAsset", name, MAX_TEXT);
    }
    assert_eq!(
        doc["components"]["schemas"]["PointName"]["pattern"],
        POINT_PATTERN
    );
    text("CreatePart", "part", MAX_ID);
    text("CreatePart", "name", MAX_NAME);
    text("PatchPart", "name", MAX_NAME);
    text("CreatePart", "unit", MAX_UNIT);
    text("Adjust", "reason", MAX_TEXT);
    for schema in ["CreatePart", "PatchPart"] {
        let c = prop(schema, "unit_cost_cents");
        assert_eq!(
            (&c["minimum"], &c["maximum"]),
            (&json!(0), &json!(MAX_COST_CENTS))
        );
    }
    // Whole counts are u32: the document must not bound them at int32.
    for (schema, name) in [
        ("CreatePart", "on_hand"),
        ("CreatePart", "reorder_level"),
        ("PatchPart", "reorder_level"),
        ("Adjust", "counted"),
        ("PartView", "on_hand"),
        ("PartView", "available"),
    ] {
        let p = prop(schema, name);
        assert_eq!(
            (&p["format"], &p["maximum"]),
            (&json!("int64"), &json!(u32::MAX)),
            "{schema}.{name}"
        );
    }
    let qty = prop("Receive", "qty");
    assert_eq!(
        (&qty["minimum"], &qty["maximum"]),
        (&json!(1), &json!(MAX_RECEIPT))
    );

    let params = |method: &str, path: &str| -> Vec<Value> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .clone()
    };
    for (method, path, name, pattern) in [
        ("get", "/api/v1/sites/{id}", "id", SITE_PATTERN),
        ("get", "/api/v1/sites/{site}/parts", "site", SITE_PATTERN),
        (
            "get",
            "/api/v1/sites/{site}/parts/{part}",
            "part",
            TEXT_PATTERN,
        ),
        ("get", "/api/v1/assets", "site", SITE_PATTERN),
        ("get", "/api/v1/assets", "point", POINT_PATTERN),
        ("get", "/api/v1/costs", "site", SITE_PATTERN),
        ("get", "/api/v1/export/{kind}", "site", SITE_PATTERN),
    ] {
        let p = params(method, path);
        let p = p.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["schema"]["pattern"], pattern, "{method} {path} {name}");
    }
    for path in [
        "/api/v1/sites",
        "/api/v1/assets",
        "/api/v1/sites/{site}/parts",
    ] {
        let p = params("get", path);
        let limit = p.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&json!(1), &json!(crate::api::page::MAX_LIMIT)),
            "{path}"
        );
    }
}

#[test]
fn csv_routes_declare_text_csv_and_the_report() {
    let doc = doc();
    let import = &doc["paths"]["/api/v1/import/{kind}"]["post"];
    assert_eq!(
        import["requestBody"]["content"]["text/csv"]["schema"]["type"],
        "string"
    );
    assert!(import["requestBody"]["content"]
        .get("application/json")
        .is_none());
    for status in ["403", "413", "415", "422"] {
        assert!(import["responses"][status].is_object(), "import {status}");
    }
    assert!(import["responses"]["413"]["description"]
        .as_str()
        .unwrap()
        .contains(&format!("{} MiB", MAX_IMPORT_BYTES >> 20)));
    let export = &doc["paths"]["/api/v1/export/{kind}"]["get"];
    assert_eq!(
        export["responses"]["200"]["content"]["text/csv"]["schema"]["type"],
        "string"
    );
    for (op, method) in [(import, "import"), (export, "export")] {
        let kind = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "kind")
            .unwrap();
        assert_eq!(
            kind["schema"]["enum"],
            json!(["sites", "assets", "points", "parts"]),
            "{method}: {kind}"
        );
    }
    let report = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["report"];
    assert!(
        report
            .to_string()
            .contains("#/components/schemas/FileReport"),
        "{report}"
    );
    let row = &doc["components"]["schemas"]["FileRowError"];
    assert_eq!(row["required"], json!(["row", "code", "message"]));
    assert_eq!(
        row["properties"]["column"]["type"],
        json!(["string", "null"])
    );
}

/// The text check is [`TEXT_PATTERN`]: no control character anywhere, no
/// Unicode white space at either end, at least one character.
#[test]
fn text_check_follows_its_pattern() {
    let ok = |v: &str| {
        let mut p = Problems::default();
        p.text("f", v, 10);
        p.0.is_empty()
    };
    for good in ["a", "a b", "Weidmüller", "a\u{a0}b", "\u{feff}a", "x,y\"z"] {
        assert!(ok(good), "{good:?}");
    }
    for bad in [
        "",
        " a",
        "a ",
        "\ta",
        "a\n",
        "a\tb",
        "\u{a0}a",
        "a\u{3000}",
        "\u{2028}a",
        "a\u{85}",
        "a\u{7f}b",
        "\u{1680}a",
        "12345678901",
    ] {
        assert!(!ok(bad), "{bad:?}");
    }
}
