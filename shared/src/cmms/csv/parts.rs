//! `parts.csv`: spare parts and their stock, per site.
//!
//! | column          | required | value |
//! |-----------------|----------|-------|
//! | `site`          | yes      | the site's id (as in `sites.csv`) |
//! | `part`          | yes      | part number, up to 128 characters |
//! | `name`          | yes      | up to 200 characters |
//! | `unit`          | yes      | stock unit (`pcs`, `m`, `ml`), up to 32 characters |
//! | `unit_cost`     | yes      | cost of one unit: `12.34`, at most two decimals, not negative, no currency sign or thousands separator |
//! | `reorder_level` | no       | whole number; reorder when the available quantity is at or below it; empty: no automatic reorder |
//! | `on_hand`       | yes      | whole number of units on the shelf |
//!
//! ```text
//! site,part,name,unit,unit_cost,reorder_level,on_hand
//! solar-north,fuse-10a,"Fuse 10 A, gPV",pcs,4.50,20,85
//! solar-north,oil-gx,Gear oil,ml,0.02,,12000
//! wind-07,brake-pad,Brake pad set,pcs,310,2,4
//! ```
//!
//! The key is the pair (`site`, `part`). On re-import with upsert, every
//! column is replaced: `on_hand` works as a stock count, and is refused
//! below the quantity reserved for open work orders (the reservations
//! themselves are kept).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cells::Cells;
use super::report::{code, Errors, ImportReport};
use super::{check_known_site, finish, merge_by_key, table, ImportContext, ImportMode, Merge};
use crate::cmms::asset::MAX_NAME;
use crate::cmms::stock::StockRecord;
use crate::cmms::{Money, PartId, SiteId, StockError, StockItem};

/// The columns of `parts.csv`, in export order.
pub const PART_COLUMNS: [&str; 7] = [
    "site",
    "part",
    "name",
    "unit",
    "unit_cost",
    "reorder_level",
    "on_hand",
];
const SITE: usize = 0;
const PART: usize = 1;
const NAME: usize = 2;
const UNIT: usize = 3;
const UNIT_COST: usize = 4;
const REORDER_LEVEL: usize = 5;
const ON_HAND: usize = 6;

/// Longest stock unit, in characters.
pub const MAX_UNIT: usize = 32;

/// One part at one site, as in `parts.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub site: SiteId,
    pub part: PartId,
    pub name: String,
    pub unit: String,
    pub unit_cost: Money,
    pub reorder_level: Option<u32>,
    pub on_hand: u32,
}

/// A stored part, with the quantity its site has reserved for work
/// orders, which an import may not count below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingPart {
    pub record: PartRecord,
    pub reserved: u32,
}

impl ExistingPart {
    pub fn from_stock(item: &StockItem, name: impl Into<String>) -> Self {
        ExistingPart {
            record: PartRecord::from_stock(item, name),
            reserved: item.reserved(),
        }
    }
}

impl PartRecord {
    /// The record of a stock item; the part's name is kept outside the
    /// stock item, so the caller supplies it.
    pub fn from_stock(item: &StockItem, name: impl Into<String>) -> Self {
        PartRecord {
            site: item.site.clone(),
            part: item.part.clone(),
            name: name.into(),
            unit: item.unit.clone(),
            unit_cost: item.unit_cost,
            reorder_level: item.reorder_level,
            on_hand: item.on_hand(),
        }
    }

    /// A new stock item with this record's fields and no reservations.
    pub fn new_stock(&self) -> Result<StockItem, StockError> {
        StockItem::from_record(StockRecord {
            site: self.site.clone(),
            part: self.part.clone(),
            unit: self.unit.clone(),
            unit_cost: self.unit_cost,
            reorder_level: self.reorder_level,
            on_hand: self.on_hand,
            reservations: Default::default(),
        })
    }

    /// Updates a stored item with this record's fields; `on_hand` is set
    /// as a stock count ([`StockItem::adjust_count`]), refused below the
    /// reserved quantity, in which case nothing changes. Returns the count
    /// correction.
    pub fn apply_to(&self, item: &mut StockItem) -> Result<i64, StockError> {
        let delta = item.adjust_count(self.on_hand)?;
        item.unit.clone_from(&self.unit);
        item.unit_cost = self.unit_cost;
        item.reorder_level = self.reorder_level;
        Ok(delta)
    }

    fn key(&self) -> (SiteId, PartId) {
        (self.site.clone(), self.part.clone())
    }
}

/// Checks a `parts.csv` file against the stored parts; the parts in file
/// order, or every problem.
pub fn parse_parts(
    input: &[u8],
    ctx: &ImportContext<'_, ExistingPart>,
) -> Result<Vec<PartRecord>, ImportReport> {
    let mut errors = Errors::default();
    let table = table::read(input, "parts.csv", &PART_COLUMNS, &ctx.options, &mut errors);
    let stored: HashMap<(SiteId, PartId), &ExistingPart> =
        ctx.existing.iter().map(|e| (e.record.key(), e)).collect();
    let mut first_line: HashMap<(SiteId, PartId), usize> = HashMap::new();
    let mut records = Vec::with_capacity(table.rows.len());

    for row in &table.rows {
        let mut c = Cells::new(row, &PART_COLUMNS, &mut errors);
        let site = SiteId(c.site(SITE));
        check_known_site(&mut c, SITE, site.as_str(), ctx.sites);
        let part = PartId(c.id(PART));
        let name = c.text(NAME, MAX_NAME);
        let unit = c.text(UNIT, MAX_UNIT);
        let unit_cost = c.money(UNIT_COST);
        let reorder_level = c.count(REORDER_LEVEL, false);
        let on_hand = c.count(ON_HAND, true);

        let key = (site, part);
        if !key.0.as_str().is_empty() && !key.1.as_str().is_empty() {
            if let Some(first) = first_line.get(&key) {
                c.fail(
                    PART,
                    code::DUPLICATE,
                    format!(
                        "part {} at site {} already appears on line {first}",
                        key.1, key.0
                    ),
                );
            } else {
                first_line.insert(key.clone(), c.line());
                match (stored.get(&key), ctx.options.mode) {
                    (Some(_), ImportMode::CreateOnly) => c.fail(
                        PART,
                        code::ALREADY_EXISTS,
                        format!(
                            "part {} at site {} already exists (import with upsert to update it)",
                            key.1, key.0
                        ),
                    ),
                    (Some(old), ImportMode::Upsert) => {
                        if let Some(counted) = on_hand.filter(|n| *n < old.reserved) {
                            let e = StockError::BelowReserved {
                                counted,
                                reserved: old.reserved,
                            };
                            c.fail(ON_HAND, e.code(), format!("on_hand: {e}"));
                        }
                    }
                    (None, _) => {}
                }
            }
        }
        let (Some(on_hand), true) = (on_hand, c.ok()) else {
            continue;
        };
        let (site, part) = key;
        records.push(PartRecord {
            site,
            part,
            name,
            unit,
            unit_cost,
            reorder_level,
            on_hand,
        });
    }
    finish(errors, table.count, &ctx.options, records)
}

/// Writes `parts.csv`, in the order given.
pub fn export_parts(parts: &[PartRecord]) -> String {
    let mut out = String::new();
    table::write_record(&mut out, PART_COLUMNS);
    for p in parts {
        let cost = p.unit_cost.to_string();
        let reorder = p.reorder_level.map(|n| n.to_string()).unwrap_or_default();
        let on_hand = p.on_hand.to_string();
        table::write_record(
            &mut out,
            [
                p.site.as_str(),
                p.part.as_str(),
                &p.name,
                &p.unit,
                &cost,
                &reorder,
                &on_hand,
            ],
        );
    }
    out
}

/// Splits parsed parts into created, updated and unchanged.
pub fn merge_parts(existing: &[ExistingPart], imported: Vec<PartRecord>) -> Merge<PartRecord> {
    let existing = existing
        .iter()
        .map(|e| (e.record.key(), &e.record))
        .collect();
    merge_by_key(existing, imported, PartRecord::key, |old, new| {
        (*old != new).then_some(new)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmms::csv::MergeSummary;
    use crate::cmms::WorkOrderId;
    use std::collections::BTreeSet;

    const EXAMPLE: &str = "site,part,name,unit,unit_cost,reorder_level,on_hand\n\
        solar-north,fuse-10a,\"Fuse 10 A, gPV\",pcs,4.50,20,85\n\
        solar-north,oil-gx,Gear oil,ml,0.02,,12000\n\
        wind-07,brake-pad,Brake pad set,pcs,310,2,4\n";

    fn record(site: &str, part: &str, cost: i64, on_hand: u32) -> PartRecord {
        PartRecord {
            site: site.into(),
            part: part.into(),
            name: format!("{part} name"),
            unit: "pcs".into(),
            unit_cost: Money::from_minor(cost),
            reorder_level: None,
            on_hand,
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let parts = parse_parts(EXAMPLE.as_bytes(), &ImportContext::new(&[])).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name, "Fuse 10 A, gPV");
        assert_eq!(parts[0].unit_cost, Money::from_minor(450));
        assert_eq!(parts[0].reorder_level, Some(20));
        assert_eq!(parts[1].unit_cost, Money::from_minor(2));
        assert_eq!(parts[1].reorder_level, None);
        assert_eq!(parts[2].unit_cost, Money::from_minor(31_000));
        // Export writes amounts with two decimals.
        assert_eq!(export_parts(&parts), EXAMPLE.replace(",310,", ",310.00,"));
    }

    #[test]
    fn value_errors_name_row_and_column() {
        let sites: BTreeSet<SiteId> = ["s1".into()].into();
        let input = "site,part,name,unit,unit_cost,reorder_level,on_hand\n\
                     s1,p1,Part,pcs,12.345,,1\n\
                     s1,p2,Part,pcs,-1,,1\n\
                     s1,p3,Part,pcs,\"1,234.00\",-2,1.5\n\
                     s9,p4,,pcs,1,,\n\
                     s1,p1,Part again,pcs,1,,1\n";
        let ctx = ImportContext::new(&[]).with_known_sites(&sites);
        let report = parse_parts(input.as_bytes(), &ctx).unwrap_err();
        let got: Vec<(usize, &str, &str)> = report
            .errors
            .iter()
            .map(|e| (e.row, e.column.as_deref().unwrap_or(""), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "unit_cost", code::INVALID_AMOUNT),
                (3, "unit_cost", code::INVALID_AMOUNT),
                (4, "unit_cost", code::INVALID_AMOUNT),
                (4, "reorder_level", code::INVALID_NUMBER),
                (4, "on_hand", code::INVALID_NUMBER),
                (5, "site", code::UNKNOWN_SITE),
                (5, "name", code::REQUIRED),
                (5, "on_hand", code::REQUIRED),
                (6, "part", code::DUPLICATE),
            ]
        );
        let msgs: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs[0], "unit_cost \"12.345\" has more than two decimals");
        assert_eq!(
            msgs[1],
            "unit_cost \"-1\" is negative; amounts must be 0 or more"
        );
        assert_eq!(
            msgs[4],
            "on_hand \"1.5\" is not a whole number from 0 to 4294967295"
        );
        assert_eq!(
            msgs[5],
            "site \"s9\" does not exist; import it in sites.csv first"
        );
        assert_eq!(msgs[8], "part p1 at site s1 already appears on line 2");
    }

    #[test]
    fn upsert_counts_stock_and_keeps_reservations() {
        let mut item = record("s1", "p1", 100, 10).new_stock().unwrap();
        item.reserve(&WorkOrderId::from("wo-1"), 6).unwrap();
        let stored = [
            ExistingPart::from_stock(&item, "p1 name"),
            ExistingPart::from_stock(&record("s1", "p2", 100, 3).new_stock().unwrap(), "p2 name"),
        ];

        let below =
            "site,part,name,unit,unit_cost,reorder_level,on_hand\ns1,p1,p1 name,pcs,1.00,,5\n";
        let ctx = ImportContext::new(&stored).with_mode(ImportMode::Upsert);
        let report = parse_parts(below.as_bytes(), &ctx).unwrap_err();
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].code, "count_below_reserved");
        assert_eq!(report.errors[0].column.as_deref(), Some("on_hand"));
        assert_eq!(
            report.errors[0].message,
            "on_hand: a count of 5 is below the 6 reserved for work orders"
        );

        let create_only = ImportContext::new(&stored);
        let report = parse_parts(below.as_bytes(), &create_only).unwrap_err();
        assert_eq!(report.errors[0].code, code::ALREADY_EXISTS);

        let input = "site,part,name,unit,unit_cost,reorder_level,on_hand\n\
                     s1,p1,p1 name,pcs,1.50,,8\n\
                     s1,p2,p2 name,pcs,1.00,,3\n\
                     s1,p3,p3 name,pcs,1.00,,0\n";
        let parsed = parse_parts(input.as_bytes(), &ctx).unwrap();
        let merge = merge_parts(&stored, parsed);
        assert_eq!(
            merge.summary(),
            MergeSummary {
                created: 1,
                updated: 1,
                unchanged: 1
            }
        );
        let delta = merge.updated[0].apply_to(&mut item).unwrap();
        assert_eq!(delta, -2);
        assert_eq!((item.on_hand(), item.reserved()), (8, 6));
        assert_eq!(item.unit_cost, Money::from_minor(150));
        assert_eq!(
            merge.created[0].new_stock().unwrap(),
            StockItem::new("s1".into(), "p3".into(), "pcs", Money::from_minor(100))
        );

        // apply_to refuses below reserved and changes nothing.
        let before = item.clone();
        let mut low = merge.updated[0].clone();
        low.on_hand = 1;
        low.unit = "box".into();
        assert!(low.apply_to(&mut item).is_err());
        assert_eq!(item, before);
    }
}
