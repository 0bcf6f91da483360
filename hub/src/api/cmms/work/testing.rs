//! A small fleet for the work-order and PM route tests: sites `north` and
//! `south` with assets, a stocked part, and users with roles, all made
//! straight in the store (no audit entries), each user logged in.

use crate::api::testing::{Resp, TestApi};
use crate::store::cmms::parts::{self, NewPart};
use crate::store::cmms::{assets, sites};
use crate::store::UserUpdate;
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::{Asset, AssetKind, Criticality, Money, Role, UserId};
use serde_json::{json, Value};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The test fleet.
pub(super) struct Fleet {
    pub api: TestApi,
    tokens: HashMap<&'static str, String>,
    ids: HashMap<&'static str, UserId>,
}

/// Users and their grants: `root` (fleet admin), `sup` (supervisor of
/// north, 60.00/h), `tech` and `tech2` (technicians of north, 45.00/h),
/// `viewer` (viewer of north), `southie` (technician of south only), `con`
/// (contractor, supervisor of south only).
/// Username, kind, fleet administrator, site roles, hourly rate (cents).
type TestUser = (
    &'static str,
    UserKind,
    bool,
    &'static [(&'static str, Role)],
    i64,
);

const USERS: &[TestUser] = &[
    ("root", UserKind::Staff, true, &[], 0),
    (
        "sup",
        UserKind::Staff,
        false,
        &[("north", Role::Supervisor)],
        6000,
    ),
    (
        "tech",
        UserKind::Staff,
        false,
        &[("north", Role::Technician)],
        4500,
    ),
    (
        "tech2",
        UserKind::Staff,
        false,
        &[("north", Role::Technician)],
        4500,
    ),
    (
        "viewer",
        UserKind::Staff,
        false,
        &[("north", Role::Viewer)],
        0,
    ),
    (
        "southie",
        UserKind::Staff,
        false,
        &[("south", Role::Technician)],
        0,
    ),
    (
        "con",
        UserKind::Contractor,
        false,
        &[("south", Role::Supervisor)],
        0,
    ),
];

fn asset(id: &str, site: &str) -> Asset {
    Asset {
        id: id.into(),
        site: site.into(),
        parent: None,
        name: format!("Asset {id}"),
        kind: AssetKind::Inverter,
        manufacturer: None,
        model: None,
        serial: None,
        installed_on: None,
        criticality: Criticality::Medium,
        location: None,
        points: Vec::new(),
    }
}

impl Fleet {
    pub async fn new(api: TestApi) -> Fleet {
        let at = OffsetDateTime::now_utc();
        let mut tx = api.store.transaction().await.unwrap();
        for s in ["north", "south"] {
            sites::create(
                &mut tx,
                sites::NewSite {
                    id: s.into(),
                    name: format!("Site {s}"),
                    timezone: "Europe/Madrid".into(),
                },
                at,
            )
            .await
            .unwrap();
        }
        for (a, s) in [("inv-1", "north"), ("inv-2", "north"), ("wtg-1", "south")] {
            assets::create(&mut tx, asset(a, s), at).await.unwrap();
        }
        parts::create(
            &mut tx,
            NewPart {
                site: "north".into(),
                part: "fuse-10a".into(),
                name: "Fuse 10 A".into(),
                unit: "pcs".into(),
                unit_cost: Money::from_minor(450),
                reorder_level: None,
            },
            at,
        )
        .await
        .unwrap();
        parts::receive(&mut tx, &"north".into(), &"fuse-10a".into(), 10, at)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tokens = HashMap::new();
        let mut ids = HashMap::new();
        for (name, kind, admin, sites, rate) in USERS {
            let id = api.add_user(name, *kind, *admin, sites).await;
            if *rate > 0 {
                let mut tx = api.store.transaction().await.unwrap();
                let change = UserUpdate {
                    hourly_rate_cents: Some(*rate),
                    ..Default::default()
                };
                tx.update_user(&id, &change, 1).await.unwrap();
                tx.commit().await.unwrap();
            }
            tokens.insert(*name, api.login(name).await);
            ids.insert(*name, id);
        }
        Fleet { api, tokens, ids }
    }

    pub fn token(&self, user: &str) -> &str {
        &self.tokens[user]
    }

    pub fn id(&self, user: &str) -> String {
        self.ids[user].to_string()
    }

    pub async fn get(&self, user: &str, uri: &str) -> Resp {
        self.api.get(uri, self.token(user)).await
    }

    pub async fn send(&self, user: &str, method: Method, uri: &str, body: Value) -> Resp {
        self.api
            .send(method, uri, Some(self.token(user)), Some(body))
            .await
    }

    pub async fn post(&self, user: &str, uri: &str, body: Value) -> Resp {
        self.send(user, Method::POST, uri, body).await
    }

    /// Creates a work order on `inv-1` at north as `user`; 201 expected.
    pub async fn create(&self, user: &str, extra: Value) -> Value {
        let mut body = json!({
            "site": "north",
            "asset": "inv-1",
            "title": "Inverter trips on overtemperature",
            "checklist": [
                { "key": "fan", "label": "Fan runs", "kind": "check", "required": true },
                { "key": "volts", "label": "DC voltage",
                  "kind": { "reading": { "unit": "V", "min": 600.0, "max": 900.0 } } },
            ],
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.post(user, "/api/v1/work-orders", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json
    }

    /// Takes a transition as `user`.
    pub async fn act(&self, user: &str, id: &str, body: Value) -> Resp {
        self.post(user, &format!("/api/v1/work-orders/{id}/transitions"), body)
            .await
    }

    /// Takes a transition as `user`; 200 expected; returns the work order.
    pub async fn act_ok(&self, user: &str, id: &str, body: Value) -> Value {
        let r = self.act(user, id, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
        r.json
    }

    /// Applies an edit as `user`.
    pub async fn edit(&self, user: &str, id: &str, edit: Value) -> Resp {
        self.post(
            user,
            &format!("/api/v1/work-orders/{id}/edits"),
            json!({ "edit": edit }),
        )
        .await
    }
}

/// A 409 naming `rule`.
pub(super) fn assert_rule(r: &Resp, rule: &str) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{rule}: {}", r.text);
    assert_eq!(r.json["error"]["code"], "conflict", "{}", r.text);
    assert_eq!(r.json["error"]["rule"], rule, "{}", r.text);
}

/// A 422 naming exactly `fields` (in any order).
pub(super) fn assert_fields(r: &Resp, fields: &[&str]) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut got: Vec<&str> = r.json["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {}", r.text))
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = fields.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{}", r.text);
}
