//! SCL import (IEC 61850-6): an ICD/CID/SCD file turned into a point map.
//!
//! The IED's `AccessPoint/Server/LDevice/LN0|LN` instances are expanded
//! through `DataTypeTemplates` (`LNodeType` -> `DO`/`SDO` -> `DOType` ->
//! `DA`/`BDA` -> `DAType`) into leaf attributes; the value attributes among
//! them become points (see [`crate::discovery::is_value_attribute`]).
//! Controllable objects get the `ctlModel` the file engineers (a `DOI/DAI`
//! value on the instance, else the template's `Val`), and the `LN0`
//! `ReportControl` blocks are listed with their data sets.
//!
//! The input is untrusted: a malformed or hostile file gives an error or a
//! partial model with notes, never a panic, a loop or unbounded memory
//! (type recursion is cut at [`MAX_DEPTH`], output at [`MAX_POINTS`]).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use roxmltree::{Document, Node, ParsingOptions};

use crate::backend::ControlModel;
use crate::config::{PointConfig, ReportConfig};
use crate::discovery::{is_value_attribute, point_name, DiscoveredModel};
use crate::reference::{Fc, PointRef};

/// Deepest nesting of data object and attribute types followed.
pub const MAX_DEPTH: usize = 16;
/// Most points one import produces.
pub const MAX_POINTS: usize = 100_000;
/// Most XML nodes a file may have.
const MAX_NODES: u32 = 4_000_000;

/// Why an SCL file could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SclError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("the root element is <{0}>, not <SCL>")]
    NotScl(String),
    #[error("the file describes no IED")]
    NoIed,
    #[error("no IED named {name:?}; the file has {available:?}")]
    IedNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("the file describes several IEDs ({0:?}); say which one")]
    ManyIeds(Vec<String>),
}

/// Reads and imports an SCL file.
pub fn import_scl_file(path: &Path, ied: Option<&str>) -> Result<DiscoveredModel, SclError> {
    let text = std::fs::read_to_string(path).map_err(|e| SclError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    import_scl(&text, ied)
}

fn child<'a, 'i: 'a, 't>(
    n: Node<'a, 'i>,
    tag: &'t str,
) -> impl Iterator<Item = Node<'a, 'i>> + use<'a, 'i, 't> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == tag)
}

fn attr<'a>(n: Node<'a, '_>, name: &str) -> &'a str {
    n.attribute(name).unwrap_or("")
}

struct Templates<'a, 'i> {
    lnode: HashMap<&'a str, Node<'a, 'i>>,
    dotype: HashMap<&'a str, Node<'a, 'i>>,
    datype: HashMap<&'a str, Node<'a, 'i>>,
}

/// One leaf attribute found under a logical node.
struct Leaf {
    /// DO, SDO..., DA, BDA... names.
    path: Vec<String>,
    /// How many leading components are DO/SDO names.
    objects: usize,
    fc: Fc,
}

struct Walk<'t, 'a, 'i> {
    t: &'t Templates<'a, 'i>,
    leaves: Vec<Leaf>,
    /// DO paths with a `ctlModel` in their template, with its `Val`.
    controls: Vec<(Vec<String>, Option<String>)>,
    notes: BTreeSet<String>,
    budget: usize,
}

impl Walk<'_, '_, '_> {
    fn data_object(&mut self, type_id: &str, path: &mut Vec<String>, depth: usize) {
        if depth > MAX_DEPTH || self.budget == 0 {
            self.notes.insert(format!(
                "type nesting deeper than {MAX_DEPTH} cut at {}",
                path.join(".")
            ));
            return;
        }
        let Some(dot) = self.t.dotype.get(type_id).copied() else {
            self.notes
                .insert(format!("DOType {type_id:?} is not defined"));
            return;
        };
        let objects = path.len();
        for c in dot.children().filter(Node::is_element) {
            let name = attr(c, "name");
            if name.is_empty() {
                continue;
            }
            match c.tag_name().name() {
                "SDO" => {
                    path.push(name.to_owned());
                    self.data_object(attr(c, "type"), path, depth + 1);
                    path.pop();
                }
                "DA" => {
                    if name == "ctlModel" && attr(c, "fc") == "CF" {
                        let val = child(c, "Val")
                            .next()
                            .and_then(|v| v.text())
                            .map(str::to_owned);
                        self.controls.push((path.clone(), val));
                    }
                    let Ok(fc) = attr(c, "fc").parse::<Fc>() else {
                        continue;
                    };
                    path.push(name.to_owned());
                    self.attribute(c, fc, objects, path, depth + 1);
                    path.pop();
                }
                _ => {}
            }
        }
    }

    fn attribute(
        &mut self,
        da: Node<'_, '_>,
        fc: Fc,
        objects: usize,
        path: &mut Vec<String>,
        depth: usize,
    ) {
        if attr(da, "count").parse::<u32>().is_ok_and(|n| n > 0) {
            self.notes.insert(format!(
                "array {} left out (reference one element by hand)",
                path.join(".")
            ));
            return;
        }
        if attr(da, "bType") != "Struct" {
            if self.budget > 0 {
                self.budget -= 1;
                self.leaves.push(Leaf {
                    path: path.clone(),
                    objects,
                    fc,
                });
            }
            return;
        }
        if depth > MAX_DEPTH || self.budget == 0 {
            self.notes.insert(format!(
                "type nesting deeper than {MAX_DEPTH} cut at {}",
                path.join(".")
            ));
            return;
        }
        let type_id = attr(da, "type");
        let Some(dat) = self.t.datype.get(type_id).copied() else {
            self.notes
                .insert(format!("DAType {type_id:?} is not defined"));
            return;
        };
        for bda in child(dat, "BDA") {
            let name = attr(bda, "name");
            if name.is_empty() {
                continue;
            }
            path.push(name.to_owned());
            self.attribute(bda, fc, objects, path, depth + 1);
            path.pop();
        }
    }
}

/// The `ctlModel` an instance sets with `DOI name=".."/DAI name="ctlModel"/Val`
/// (also through `SDI` for sub objects).
fn instance_control_model(ln: Node<'_, '_>, do_path: &[String]) -> Option<String> {
    let (first, rest) = do_path.split_first()?;
    let mut node = child(ln, "DOI").find(|d| attr(*d, "name") == first)?;
    for name in rest {
        node = child(node, "SDI").find(|d| attr(*d, "name") == name)?;
    }
    let dai = child(node, "DAI").find(|d| attr(*d, "name") == "ctlModel")?;
    child(dai, "Val").next()?.text().map(str::to_owned)
}

/// Imports the IED `ied` (or the only IED in the file) from SCL text.
pub fn import_scl(xml: &str, ied: Option<&str>) -> Result<DiscoveredModel, SclError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, opts).map_err(|e| SclError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "SCL" {
        return Err(SclError::NotScl(root.tag_name().name().to_owned()));
    }
    let ieds: Vec<Node> = child(root, "IED").collect();
    let names: Vec<String> = ieds.iter().map(|n| attr(*n, "name").to_owned()).collect();
    let ied_node = match ied {
        Some(want) => *ieds
            .iter()
            .find(|n| attr(**n, "name") == want)
            .ok_or_else(|| SclError::IedNotFound {
                name: want.to_owned(),
                available: names.clone(),
            })?,
        None => match ieds.as_slice() {
            [] => return Err(SclError::NoIed),
            [one] => *one,
            _ => return Err(SclError::ManyIeds(names)),
        },
    };
    let ied_name = attr(ied_node, "name");

    let mut t = Templates {
        lnode: HashMap::new(),
        dotype: HashMap::new(),
        datype: HashMap::new(),
    };
    for dtt in child(root, "DataTypeTemplates") {
        for n in dtt.children().filter(Node::is_element) {
            let id = attr(n, "id");
            match n.tag_name().name() {
                "LNodeType" => t.lnode.insert(id, n),
                "DOType" => t.dotype.insert(id, n),
                "DAType" => t.datype.insert(id, n),
                _ => None,
            };
        }
    }

    let ldevices: Vec<Node> = child(ied_node, "AccessPoint")
        .flat_map(|ap| child(ap, "Server"))
        .flat_map(|s| child(s, "LDevice"))
        .collect();
    // With any `ldName`, references carry full logical-device names.
    let full_names = ldevices.iter().any(|ld| !attr(*ld, "ldName").is_empty());
    let mut model = DiscoveredModel {
        ied_name: if full_names {
            String::new()
        } else {
            ied_name.to_owned()
        },
        ..DiscoveredModel::default()
    };
    let mut notes = BTreeSet::new();
    let mut taken = BTreeSet::new();
    let mut budget = MAX_POINTS;
    for ld in ldevices {
        let inst = attr(ld, "inst");
        let ld_ref = match (full_names, attr(ld, "ldName")) {
            (true, "") => format!("{ied_name}{inst}"),
            (true, name) => name.to_owned(),
            (false, _) => inst.to_owned(),
        };
        if ld_ref.is_empty()
            || !ld_ref
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            notes.insert(format!(
                "logical device {ld_ref:?} skipped: not a valid name"
            ));
            continue;
        }
        let lns = ld
            .children()
            .filter(|n| n.is_element() && matches!(n.tag_name().name(), "LN0" | "LN"));
        for ln in lns {
            let ln_name = format!(
                "{}{}{}",
                attr(ln, "prefix"),
                attr(ln, "lnClass"),
                attr(ln, "inst")
            );
            if !ln_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || ln_name.is_empty()
            {
                notes.insert(format!(
                    "logical node {ln_name:?} skipped: not a valid name"
                ));
                continue;
            }
            let Some(lnt) = t.lnode.get(attr(ln, "lnType")).copied() else {
                notes.insert(format!(
                    "LNodeType {:?} of {ln_name} is not defined",
                    attr(ln, "lnType")
                ));
                continue;
            };
            let mut walk = Walk {
                t: &t,
                leaves: Vec::new(),
                controls: Vec::new(),
                notes: BTreeSet::new(),
                budget,
            };
            for d in child(lnt, "DO") {
                let name = attr(d, "name");
                if name.is_empty() {
                    continue;
                }
                let mut path = vec![name.to_owned()];
                walk.data_object(attr(d, "type"), &mut path, 1);
            }
            budget = walk.budget;
            notes.extend(walk.notes);
            let controls: Vec<(Vec<String>, ControlModel)> = walk
                .controls
                .iter()
                .filter_map(|(path, template_val)| {
                    let text = instance_control_model(ln, path).or_else(|| template_val.clone())?;
                    Some((path.clone(), ControlModel::from_scl(&text)?))
                })
                .collect();
            for leaf in walk.leaves {
                let attrs = leaf.path.get(leaf.objects..).unwrap_or(&[]);
                if !is_value_attribute(leaf.fc, attrs) {
                    continue;
                }
                let r = PointRef {
                    ld: ld_ref.clone(),
                    ln: ln_name.clone(),
                    path: leaf.path.clone(),
                    fc: leaf.fc,
                };
                let mut p = PointConfig::new(
                    point_name(&ld_ref, &ln_name, &leaf.path, &mut taken),
                    r.user_text(),
                    leaf.fc,
                );
                let do_path = leaf.path.get(..leaf.objects).unwrap_or(&[]);
                if attrs
                    .first()
                    .is_some_and(|a| matches!(a.as_str(), "stVal" | "mxVal" | "valWTr"))
                {
                    p.control = controls.iter().find(|(c, _)| c == do_path).map(|(_, m)| *m);
                }
                model.points.push(p);
            }
            if attr(ln, "lnClass") == "LLN0" {
                for rc in child(ln, "ReportControl") {
                    model.reports.push(report_config(rc, &ld_ref, &ln_name));
                }
            }
        }
    }
    if budget == 0 {
        notes.insert(format!("stopped at {MAX_POINTS} points"));
    }
    model.notes = notes.into_iter().collect();
    Ok(model)
}

/// A `ReportControl` as a report config (its first instance when the block
/// is indexed with several).
fn report_config(rc: Node<'_, '_>, ld: &str, ln: &str) -> ReportConfig {
    let buffered = attr(rc, "buffered") == "true";
    let max = child(rc, "RptEnabled")
        .next()
        .and_then(|e| attr(e, "max").parse::<u32>().ok())
        .unwrap_or(1);
    let mut name = attr(rc, "name").to_owned();
    if max > 1 && attr(rc, "indexed") != "false" {
        name.push_str("01");
    }
    let mut cfg = ReportConfig::new(format!(
        "{ld}/{ln}.{}.{name}",
        if buffered { "BR" } else { "RP" }
    ));
    let ds = attr(rc, "datSet");
    if !ds.is_empty() {
        cfg.dataset = Some(format!("{ld}/{ln}.{ds}"));
    }
    if let Some(trg) = child(rc, "TrgOps").next() {
        let on = |a: &str| attr(trg, a) == "true";
        cfg.data_change = on("dchg");
        cfg.quality_change = on("qchg");
        cfg.data_update = on("dupd");
        cfg.gi = trg.attribute("gi").is_none_or(|v| v == "true");
        if on("period") {
            cfg.integrity_period_ms = attr(rc, "intgPd").parse::<u32>().ok().filter(|p| *p > 0);
        }
    }
    if let Ok(bt) = attr(rc, "bufTime").parse::<u32>() {
        cfg.buffer_time_ms = Some(bt);
    }
    cfg
}

#[cfg(test)]
#[path = "scl_tests.rs"]
mod tests;
