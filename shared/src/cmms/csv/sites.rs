//! `sites.csv`: the sites of the fleet.
//!
//! | column     | required | value |
//! |------------|----------|-------|
//! | `id`       | yes      | the site's name in telemetry: 1-64 characters from `A-Z a-z 0-9 - _ .` |
//! | `name`     | yes      | display name, up to 200 characters |
//! | `timezone` | yes      | IANA time zone name (`Europe/Berlin`, `America/Argentina/Salta`, `UTC`) |
//!
//! The time zone is checked for its shape only (letters, digits, `/`, `_`,
//! `+`, `-`; no spaces), not against the time-zone database.
//!
//! ```text
//! id,name,timezone
//! solar-north,Solar Park North,Europe/Berlin
//! wind-07,"Wind Farm 7, Ridge",America/Argentina/Salta
//! ```
//!
//! The key is `id`. On re-import with upsert, `name` and `timezone` are
//! replaced.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::cells::{shown, Cells};
use super::report::{code, Errors, ImportReport};
use super::{finish, merge_by_key, table, ImportContext, ImportMode, Merge};
use crate::cmms::asset::MAX_NAME;
use crate::cmms::SiteId;

/// The columns of `sites.csv`, in export order.
pub const SITE_COLUMNS: [&str; 3] = ["id", "name", "timezone"];
const ID: usize = 0;
const NAME: usize = 1;
const TIMEZONE: usize = 2;

/// Longest time-zone name accepted, in characters.
const MAX_TIMEZONE: usize = 64;

/// One site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: SiteId,
    pub name: String,
    /// IANA time-zone name.
    pub timezone: String,
}

/// Whether `tz` looks like an IANA time-zone name.
fn timezone_shape_ok(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= MAX_TIMEZONE
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'))
        && !tz.starts_with('/')
        && !tz.ends_with('/')
        && !tz.contains("//")
}

/// Checks a `sites.csv` file; the sites in file order, or every problem.
pub fn parse_sites(
    input: &[u8],
    ctx: &ImportContext<'_, SiteRecord>,
) -> Result<Vec<SiteRecord>, ImportReport> {
    let mut errors = Errors::default();
    let table = table::read(input, "sites.csv", &SITE_COLUMNS, &ctx.options, &mut errors);
    let existing: BTreeMap<&str, &SiteRecord> =
        ctx.existing.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::with_capacity(table.rows.len());

    for row in &table.rows {
        let mut c = Cells::new(row, &SITE_COLUMNS, &mut errors);
        let id = c.site(ID);
        let name = c.text(NAME, MAX_NAME);
        let timezone = match c.required(TIMEZONE) {
            Some(tz) if timezone_shape_ok(tz) => tz.to_owned(),
            Some(tz) => {
                c.fail(
                    TIMEZONE,
                    code::INVALID_TIMEZONE,
                    format!(
                        "timezone {} is not an IANA time-zone name like Europe/Berlin or UTC",
                        shown(tz)
                    ),
                );
                String::new()
            }
            None => String::new(),
        };
        if !id.is_empty() {
            if let Some(first) = first_line.get(&id) {
                c.fail(
                    ID,
                    code::DUPLICATE,
                    format!("site {id} already appears on line {first}"),
                );
            } else {
                first_line.insert(id.clone(), c.line());
                if ctx.options.mode == ImportMode::CreateOnly && existing.contains_key(id.as_str())
                {
                    c.fail(
                        ID,
                        code::ALREADY_EXISTS,
                        format!("site {id} already exists (import with upsert to update it)"),
                    );
                }
            }
        }
        if c.ok() {
            records.push(SiteRecord {
                id: SiteId(id),
                name,
                timezone,
            });
        }
    }
    finish(errors, table.count, &ctx.options, records)
}

/// Writes `sites.csv`, in the order given.
pub fn export_sites(sites: &[SiteRecord]) -> String {
    let mut out = String::new();
    table::write_record(&mut out, SITE_COLUMNS);
    for s in sites {
        table::write_record(&mut out, [s.id.as_str(), &s.name, &s.timezone]);
    }
    out
}

/// Splits parsed sites into created, updated and unchanged.
pub fn merge_sites(existing: &[SiteRecord], imported: Vec<SiteRecord>) -> Merge<SiteRecord> {
    let existing = existing.iter().map(|s| (s.id.clone(), s)).collect();
    merge_by_key(
        existing,
        imported,
        |s| s.id.clone(),
        |old, new| (*old != new).then_some(new),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmms::csv::{ImportOptions, MergeSummary};

    fn site(id: &str, name: &str, tz: &str) -> SiteRecord {
        SiteRecord {
            id: id.into(),
            name: name.into(),
            timezone: tz.into(),
        }
    }

    fn errors_of(
        input: &str,
        existing: &[SiteRecord],
        mode: ImportMode,
    ) -> Vec<(usize, String, String)> {
        let ctx = ImportContext::new(existing).with_mode(mode);
        parse_sites(input.as_bytes(), &ctx)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.row, e.column.unwrap_or_default(), e.code))
            .collect()
    }

    #[test]
    fn the_documented_example_parses() {
        let input = "id,name,timezone\n\
                     solar-north,Solar Park North,Europe/Berlin\n\
                     wind-07,\"Wind Farm 7, Ridge\",America/Argentina/Salta\n";
        let sites = parse_sites(input.as_bytes(), &ImportContext::new(&[])).unwrap();
        assert_eq!(
            sites,
            [
                site("solar-north", "Solar Park North", "Europe/Berlin"),
                site("wind-07", "Wind Farm 7, Ridge", "America/Argentina/Salta")
            ]
        );
        assert_eq!(export_sites(&sites), input);
    }

    #[test]
    fn every_row_error_is_reported_with_its_line_and_column() {
        let input = "timezone,ID,Name\n\
                     Europe/Berlin,s1,One\n\
                     Europe Berlin,s 2,\n\
                     UTC,s1,Again\n\
                     /x,s3,Three\n";
        let got = errors_of(input, &[], ImportMode::CreateOnly);
        let want = [
            (3, "id", code::INVALID_ID),
            (3, "name", code::REQUIRED),
            (3, "timezone", code::INVALID_TIMEZONE),
            (4, "id", code::DUPLICATE),
            (5, "timezone", code::INVALID_TIMEZONE),
        ];
        let got: Vec<(usize, &str, &str)> = got
            .iter()
            .map(|(r, c, k)| (*r, c.as_str(), k.as_str()))
            .collect();
        assert_eq!(got, want);

        let ctx = ImportContext::new(&[]);
        let report = parse_sites(input.as_bytes(), &ctx).unwrap_err();
        assert_eq!(report.rows, 4);
        let dup = report
            .errors
            .iter()
            .find(|e| e.code == code::DUPLICATE)
            .unwrap();
        assert_eq!(dup.message, "site s1 already appears on line 2");
        let tz = report
            .errors
            .iter()
            .find(|e| e.code == code::INVALID_TIMEZONE)
            .unwrap();
        assert_eq!(
            tz.message,
            "timezone \"Europe Berlin\" is not an IANA time-zone name like Europe/Berlin or UTC"
        );
    }

    #[test]
    fn create_only_refuses_existing_sites_upsert_updates_them() {
        let stored = [site("s1", "One", "UTC"), site("s2", "Two", "UTC")];
        let input = "id,name,timezone\ns1,One,UTC\ns2,Two renamed,Europe/Paris\ns3,Three,UTC\n";
        assert_eq!(
            errors_of(input, &stored, ImportMode::CreateOnly),
            [
                (2, "id".to_owned(), code::ALREADY_EXISTS.to_owned()),
                (3, "id".to_owned(), code::ALREADY_EXISTS.to_owned())
            ]
        );
        let ctx = ImportContext::new(&stored).with_mode(ImportMode::Upsert);
        let parsed = parse_sites(input.as_bytes(), &ctx).unwrap();
        let merge = merge_sites(&stored, parsed);
        assert_eq!(
            merge.summary(),
            MergeSummary {
                created: 1,
                updated: 1,
                unchanged: 1
            }
        );
        assert_eq!(merge.created, [site("s3", "Three", "UTC")]);
        assert_eq!(merge.updated, [site("s2", "Two renamed", "Europe/Paris")]);
    }

    #[test]
    fn timezone_shapes() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
        ] {
            assert!(timezone_shape_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "Europe Berlin",
            "Europe//Berlin",
            "/UTC",
            "UTC/",
            "Zürich",
            "UTC;",
        ] {
            assert!(!timezone_shape_ok(bad), "{bad}");
        }
    }

    #[test]
    fn header_only_file_is_empty_not_an_error() {
        let ctx = ImportContext::new(&[]).with_options(ImportOptions::default());
        assert_eq!(parse_sites(b"id,name,timezone\r\n", &ctx).unwrap(), []);
    }
}
