//! `assets::create_many`: a batch of new assets written in one go, with
//! the same refusals as one-by-one creation and nothing written on any.

use super::{asset, code, count, on_both, setup, T0};
use crate::store::cmms::assets;
use crate::store::Store;
use dcmms_shared::cmms::{Asset, AssetId, SiteScope};

/// Blocks under the stored `top`, inverters under blocks, strings under
/// inverters: children before their parents, as a file may list them.
fn tree() -> Vec<Asset> {
    let mut batch = Vec::new();
    for b in 0..3 {
        for i in 0..4 {
            for k in 0..5 {
                batch.push(asset(
                    &format!("b{b}-i{i}-s{k}"),
                    "s1",
                    Some(&format!("b{b}-i{i}")),
                ));
            }
            batch.push(asset(&format!("b{b}-i{i}"), "s1", Some(&format!("b{b}"))));
        }
        batch.push(asset(&format!("b{b}"), "s1", Some("top")));
    }
    batch[0].points = vec!["s1/dev/p2".into(), "s1/dev/p1".into()];
    batch
}

async fn create_many_writes_a_batch(store: Store) {
    setup(&store, &["s1", "s2"], &[("top", "s1"), ("s2-root", "s2")]).await;
    let mut tx = store.transaction().await.unwrap();
    assert_eq!(
        assets::create_many(&mut tx, Vec::new(), T0).await.unwrap(),
        []
    );
    let batch = tree();
    let created = assets::create_many(&mut tx, batch.clone(), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created, batch, "returned as given");
    assert_eq!(count(&store, "assets").await, 2 + 3 * (1 + 4 * (1 + 5)));
    for a in &batch {
        assert_eq!(&assets::get(&store, &a.id).await.unwrap(), a);
    }
    // Points keep their order.
    assert_eq!(
        assets::get(&store, &"b0-i0-s0".into())
            .await
            .unwrap()
            .points,
        ["s1/dev/p2", "s1/dev/p1"]
    );
    assert_eq!(
        assets::linked_to_point(&store, "s1/dev/p1")
            .await
            .unwrap()
            .len(),
        1
    );
    let children: Vec<AssetId> = assets::children(&store, &"b1-i2".into())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(children.len(), 5);
    // A second batch builds on the first: level 6 is the deepest.
    let mut tx = store.transaction().await.unwrap();
    assets::create_many(&mut tx, vec![asset("deep", "s1", Some("b0-i0-s0"))], T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

on_both!(create_many_writes_a_batch);

async fn create_many_refusals_write_nothing(store: Store) {
    setup(&store, &["s1", "s2"], &[("top", "s1"), ("s2-root", "s2")]).await;
    let mut tx = store.transaction().await.unwrap();
    assets::create_many(&mut tx, tree(), T0).await.unwrap();
    tx.commit().await.unwrap();
    let rows = count(&store, "assets").await;
    let points = count(&store, "asset_points").await;
    let snapshot = assets::list(&store, &SiteScope::All, None, 1000)
        .await
        .unwrap();

    let named = |id: &str, name: &str| Asset {
        name: name.into(),
        ..asset(id, "s1", None)
    };
    let pointed = |point: &str| Asset {
        points: vec![point.into()],
        ..asset("p", "s1", None)
    };
    let fine = || asset("fine", "s1", Some("top"));
    let cases: Vec<(Vec<Asset>, &str)> = vec![
        (
            vec![fine(), asset("n1", "s1", None), asset("n1", "s1", None)],
            "duplicate",
        ),
        (vec![fine(), asset("top", "s1", None)], "duplicate"),
        (vec![fine(), asset("b2", "s2", None)], "duplicate"),
        (vec![fine(), asset("n2", "nowhere", None)], "not_found"),
        (
            vec![fine(), asset("n3", "s1", Some("s2-root"))],
            "parent_in_other_site",
        ),
        (
            vec![fine(), asset("n4", "s1", Some("ghost"))],
            "unknown_parent",
        ),
        (
            vec![
                fine(),
                asset("d6", "s1", Some("b0-i0-s0")),
                asset("d7", "s1", Some("d6")),
            ],
            "hierarchy_too_deep",
        ),
        (
            vec![
                fine(),
                asset("c1", "s1", Some("c2")),
                asset("c2", "s1", Some("c1")),
            ],
            "hierarchy_cycle",
        ),
        (vec![fine(), named("blank", " ")], "asset_name_required"),
        (vec![fine(), pointed("s2/dev/p")], "point_at_other_site"),
    ];
    let mut tx = store.transaction().await.unwrap();
    for (batch, expected) in cases {
        let ids: Vec<String> = batch.iter().map(|a| a.id.to_string()).collect();
        let r = assets::create_many(&mut tx, batch, T0).await;
        assert_eq!(code(r), expected, "{ids:?}");
    }
    // Refused inside the transaction: the caller may even commit it.
    tx.commit().await.unwrap();
    assert_eq!(count(&store, "assets").await, rows);
    assert_eq!(count(&store, "asset_points").await, points);
    assert_eq!(
        assets::list(&store, &SiteScope::All, None, 1000)
            .await
            .unwrap(),
        snapshot
    );
}

on_both!(create_many_refusals_write_nothing);
