//! Sites and assets: round trips and hierarchy refusals.

use super::super::{assets, sites};
use super::{asset, at, code, count, on_both, setup, T0};
use crate::store::Store;
use dcmms_shared::cmms::{Asset, AssetId, AssetKind, Criticality, SiteId, SiteScope};
use std::collections::BTreeSet;
use time::macros::date;

async fn site_and_asset_round_trips(store: Store) {
    let mut tx = store.transaction().await.unwrap();
    let created = sites::create(
        &mut tx,
        sites::NewSite {
            id: "solar-1".into(),
            name: "Solar One".into(),
            timezone: "Europe/Madrid".into(),
        },
        T0,
    )
    .await
    .unwrap();
    let bad = sites::NewSite {
        id: "solar 2".into(),
        name: "x".into(),
        timezone: "UTC".into(),
    };
    assert_eq!(code(sites::create(&mut tx, bad, T0).await), "bad_site_id");
    tx.commit().await.unwrap();
    assert_eq!(
        sites::get(&store, &"solar-1".into()).await.unwrap(),
        created
    );
    assert_eq!(created.created_at, T0);

    let mut tx = store.transaction().await.unwrap();
    let again = sites::NewSite {
        id: "solar-1".into(),
        name: "Again".into(),
        timezone: "UTC".into(),
    };
    assert_eq!(code(sites::create(&mut tx, again, T0).await), "duplicate");
    drop(tx);
    let mut tx = store.transaction().await.unwrap();
    sites::create(
        &mut tx,
        sites::NewSite {
            id: "wind-2".into(),
            name: "Wind Two".into(),
            timezone: "UTC".into(),
        },
        T0,
    )
    .await
    .unwrap();
    let change = sites::update(
        &mut tx,
        &"solar-1".into(),
        "Solar 1".into(),
        "Atlantic/Canary".into(),
    )
    .await
    .unwrap();
    assert_eq!(change.before, created);
    assert_eq!(change.after.timezone, "Atlantic/Canary");
    tx.commit().await.unwrap();
    let all: Vec<String> = sites::list(&store, &SiteScope::All)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.0)
        .collect();
    assert_eq!(all, ["solar-1", "wind-2"]);
    let only = SiteScope::Only(BTreeSet::from([SiteId::from("wind-2")]));
    assert_eq!(sites::list(&store, &only).await.unwrap().len(), 1);
    assert!(sites::list(&store, &SiteScope::Only(BTreeSet::new()))
        .await
        .unwrap()
        .is_empty());

    // An asset with every field set survives storage.
    let full = Asset {
        id: "inv-01".into(),
        site: "solar-1".into(),
        parent: None,
        name: "Inverter 1".into(),
        kind: AssetKind::Other("dc optimiser".into()),
        manufacturer: Some("SMA".into()),
        model: Some("SC 2500".into()),
        serial: Some("SN-1".into()),
        installed_on: Some(date!(2021 - 06 - 30)),
        criticality: Criticality::Critical,
        location: Some("Row 3".into()),
        points: vec![
            "solar-1/inv-01/ac_power".into(),
            "solar-1/inv-01/temp".into(),
        ],
    };
    let mut tx = store.transaction().await.unwrap();
    assets::create(&mut tx, asset("block-a", "solar-1", None), T0)
        .await
        .unwrap();
    assets::create(&mut tx, full.clone(), T0).await.unwrap();
    assert_eq!(
        code(assets::create(&mut tx, full.clone(), T0).await),
        "duplicate"
    );
    tx.commit().await.unwrap();
    assert_eq!(assets::get(&store, &"inv-01".into()).await.unwrap(), full);

    let moved = Asset {
        parent: Some("block-a".into()),
        kind: AssetKind::Transformer,
        manufacturer: None,
        installed_on: None,
        points: vec!["solar-1/inv-01/temp".into()],
        ..full.clone()
    };
    let mut tx = store.transaction().await.unwrap();
    let change = assets::update(&mut tx, moved.clone(), at(1)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((change.before, change.after.clone()), (full, moved.clone()));
    assert_eq!(assets::get(&store, &"inv-01".into()).await.unwrap(), moved);
    let children = assets::children(&store, &"block-a".into()).await.unwrap();
    assert_eq!(children, std::slice::from_ref(&moved));
    let linked = assets::linked_to_point(&store, "solar-1/inv-01/temp")
        .await
        .unwrap();
    assert_eq!(linked, [moved]);
    assert!(assets::linked_to_point(&store, "solar-1/inv-01/ac_power")
        .await
        .unwrap()
        .is_empty());

    let page = assets::list(&store, &SiteScope::All, None, 1)
        .await
        .unwrap();
    assert_eq!(page[0].id, AssetId::from("block-a"));
    let page = assets::list(&store, &SiteScope::All, Some(&page[0].id), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, AssetId::from("inv-01"));
    let other = SiteScope::Only(BTreeSet::from([SiteId::from("wind-2")]));
    assert!(assets::list(&store, &other, None, 10)
        .await
        .unwrap()
        .is_empty());

    // Asset field rules come from the domain.
    let mut tx = store.transaction().await.unwrap();
    let mut bad = asset("inv-02", "solar-1", None);
    bad.points = vec!["wind-2/x/y".into()];
    assert_eq!(
        code(assets::create(&mut tx, bad, T0).await),
        "point_at_other_site"
    );
    assert_eq!(
        code(assets::create(&mut tx, asset("inv-03", "nowhere", None), T0).await),
        "not_found"
    );
}

on_both!(site_and_asset_round_trips);

async fn hierarchy_refusals_write_nothing(store: Store) {
    setup(&store, &["s1", "s2"], &[("s2-root", "s2")]).await;
    let mut tx = store.transaction().await.unwrap();
    // Levels 2 to 6: a > b > c > d > e.
    let chain = [
        ("a", None),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("c")),
        ("e", Some("d")),
    ];
    for (id, parent) in chain {
        assets::create(&mut tx, asset(id, "s1", parent), T0)
            .await
            .unwrap();
    }
    assets::create(&mut tx, asset("x", "s1", None), T0)
        .await
        .unwrap();
    assets::create(&mut tx, asset("x-child", "s1", Some("x")), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows = count(&store, "assets").await;
    let snapshot = assets::list(&store, &SiteScope::All, None, 100)
        .await
        .unwrap();

    let mut tx = store.transaction().await.unwrap();
    let err = assets::create(&mut tx, asset("f", "s1", Some("e")), T0).await;
    assert_eq!(code(err), "hierarchy_too_deep");
    // Refused inside the transaction: the caller may even commit it.
    assert_eq!(code(assets::get(&mut tx, &"f".into()).await), "not_found");
    let err = assets::move_to(&mut tx, &"a".into(), Some("e".into()), T0).await;
    assert_eq!(code(err), "hierarchy_cycle");
    let err = assets::move_to(&mut tx, &"x".into(), Some("d".into()), T0).await;
    assert_eq!(
        code(err),
        "hierarchy_too_deep",
        "x-child would be at level 7"
    );
    let err = assets::create(&mut tx, asset("g", "s1", Some("ghost")), T0).await;
    assert_eq!(code(err), "unknown_parent");
    let err = assets::create(&mut tx, asset("h", "s1", Some("s2-root")), T0).await;
    assert_eq!(code(err), "parent_in_other_site");
    let err = assets::move_to(&mut tx, &"a".into(), Some("a".into()), T0).await;
    assert_eq!(code(err), "hierarchy_cycle");
    // Moving a parent to another site would strand its children.
    let mut away = assets::get(&mut tx, &"x".into()).await.unwrap();
    away.site = "s2".into();
    assert_eq!(
        code(assets::update(&mut tx, away, T0).await),
        "parent_in_other_site"
    );
    tx.commit().await.unwrap();
    assert_eq!(count(&store, "assets").await, rows);
    assert_eq!(
        assets::list(&store, &SiteScope::All, None, 100)
            .await
            .unwrap(),
        snapshot
    );

    // A legal move goes through.
    let mut tx = store.transaction().await.unwrap();
    let change = assets::move_to(&mut tx, &"x".into(), Some("c".into()), at(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(change.before.parent, None);
    assert_eq!(
        assets::get(&store, &"x".into()).await.unwrap().parent,
        Some(AssetId::from("c"))
    );
}

on_both!(hierarchy_refusals_write_nothing);
