//! The configuration shown in README.md parses and validates as written.

use std::path::Path;

use dcmms_iec61850::point_map::{parse_points_csv, parse_points_toml};
use dcmms_iec61850::Iec61850Config;

fn blocks(lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let fence = format!("```{lang}\n");
    text.split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("```").next().map(str::to_owned))
        .collect()
}

#[derive(serde::Deserialize)]
struct GatewayConfig {
    iec61850: Vec<Iec61850Config>,
}

#[test]
fn readme_config_validates() {
    let toml_blocks = blocks("toml");
    assert_eq!(toml_blocks.len(), 2, "a device config and a point map");
    let cfg: GatewayConfig = toml::from_str(&toml_blocks[0]).expect("device example parses");
    let device = &cfg.iec61850[0];
    let plan = device
        .validate(Path::new("."))
        .expect("device example validates");
    assert_eq!(plan.points.len(), 7);
    assert_eq!(plan.reports.len(), 1);
    assert_eq!(plan.reports[0].reference, "IED1LD0/LLN0$BR$brcb01");
    assert_eq!(plan.address, "192.168.1.30:102");

    let points =
        parse_points_toml(&toml_blocks[1], Path::new("README.md")).expect("TOML map parses");
    let csv = blocks("");
    let csv = csv
        .iter()
        .find(|b| b.starts_with("name,reference"))
        .expect("CSV map in README");
    let csv_points =
        parse_points_csv(csv.as_bytes(), Path::new("README.md")).expect("CSV map parses");
    let mut d = Iec61850Config::new("d", "h");
    d.ied_name = "IED1".into();
    d.points = points.into_iter().chain(csv_points).collect();
    d.validate(Path::new("."))
        .expect("README point maps validate");
}
