//! Discovery: what an IED exposes, turned into a point map a user edits.
//!
//! [`discover`] associates with a live IED, browses every logical device
//! (`GetNameList`), reads the `ctlModel` of controllable objects and the
//! data set of every report control block, and hands the names to the
//! sans-IO [`model_from_browse`]. [`crate::scl::import_scl`] builds the same
//! [`DiscoveredModel`] from an ICD/CID file. Either is written with
//! [`DiscoveredModel::to_toml`] or [`DiscoveredModel::to_csv`].
//!
//! Only value attributes become points (`mag`, `cVal`, `stVal`, `general`,
//! `actVal`, `mxVal`, `valWTr` under ST/MX, and `setMag`/`setVal` under SP);
//! `q`, `t`, units, descriptions and the like are left out, since the driver
//! reads `q` and `t` with each value anyway. Controllable objects get their
//! control model filled in, with `writable = false`: a person decides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::backend::{BrowsedDevice, ControlModel, MmsBackend, MmsError, VarRef};
use crate::config::{normalize_address, Iec61850Config, PointConfig, ReportConfig};
use crate::point_map::{write_points_csv, write_points_toml};
use crate::reference::Fc;
use crate::rs_backend::RsBackend;
use crate::value::MmsValue;

/// First data-attribute names that carry a process value.
pub const VALUE_ATTRIBUTES: [&str; 9] = [
    "mag", "cVal", "stVal", "general", "actVal", "mxVal", "valWTr", "setMag", "setVal",
];

/// What discovery or SCL import found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoveredModel {
    /// The IED name the references are relative to ("" when they carry
    /// full domain names).
    pub ied_name: String,
    pub points: Vec<PointConfig>,
    /// Report control blocks found, with their data sets.
    pub reports: Vec<ReportConfig>,
    /// Things a person should know (skipped devices, unreadable models).
    pub notes: Vec<String>,
}

impl DiscoveredModel {
    /// A TOML point map, with the report control blocks and notes as
    /// comments ready to be copied into the device's config.
    pub fn to_toml(&self) -> String {
        let mut header = vec![
            format!("IEC 61850 point map ({} points).", self.points.len()),
            format!(
                "Use with ied_name = {:?} in the [[iec61850]] device.",
                self.ied_name
            ),
            "Controllable points carry their control model; set writable = true to allow commands."
                .into(),
        ];
        if !self.reports.is_empty() {
            header.push(String::new());
            header.push("Report control blocks found (copy into the device to use them):".into());
            for r in &self.reports {
                header.push("[[iec61850.reports]]".into());
                header.push(format!("rcb = {:?}", r.rcb));
                if let Some(ds) = &r.dataset {
                    header.push(format!("dataset = {ds:?}"));
                }
            }
        }
        for n in &self.notes {
            header.push(format!("note: {n}"));
        }
        write_points_toml(&self.points, &header)
    }

    /// A CSV point map (reports and notes are not part of CSV).
    pub fn to_csv(&self) -> String {
        write_points_csv(&self.points)
    }

    /// Writes CSV when `path` ends in `.csv`, TOML otherwise.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        std::fs::write(
            path,
            if is_csv {
                self.to_csv()
            } else {
                self.to_toml()
            },
        )
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error("iec61850 device {device:?}: field `address`: {message}")]
    Address { device: String, message: String },
    #[error("iec61850 device {device:?} at {address}: {source}")]
    Device {
        device: String,
        address: String,
        source: MmsError,
    },
}

/// A point name from a reference: `LD0.MMXU1.TotW.mag.f`, shortened with a
/// hash when longer than 64 characters, made unique with a suffix.
pub fn point_name(ld: &str, ln: &str, path: &[String], taken: &mut BTreeSet<String>) -> String {
    let mut parts = vec![ld, ln];
    parts.extend(path.iter().map(String::as_str));
    dcmms_protocols_core::unique_point_name(&parts, taken)
}

/// Whether a data-attribute path (components after the data object) is a
/// value worth a point under `fc`.
pub fn is_value_attribute(fc: Fc, attribute_path: &[String]) -> bool {
    let Some(first) = attribute_path.first() else {
        return false;
    };
    let first = first.as_str();
    match fc {
        Fc::MX | Fc::ST => VALUE_ATTRIBUTES[..7].contains(&first),
        Fc::SP => matches!(first, "setMag" | "setVal"),
        _ => false,
    }
}

/// The LD part of references for `domain`, or `None` when the domain does
/// not belong to `ied_name`.
fn ld_of(domain: &str, ied_name: &str) -> Option<String> {
    if ied_name.is_empty() {
        return Some(domain.to_owned());
    }
    domain
        .strip_prefix(ied_name)
        .filter(|rest| !rest.is_empty())
        .map(str::to_owned)
}

/// What [`model_from_browse`] needs read from the device before it can
/// finish: `ctlModel`s and report data sets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BrowseQuestions {
    /// `(domain, LN, DO path)` of controllable objects.
    pub controls: Vec<(String, String, Vec<String>)>,
    /// `(domain, LN, FC, name)` of report control blocks.
    pub reports: Vec<(String, String, RcbKind, String)>,
}

/// A buffered (`BR`) or unbuffered (`RP`) report control block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcbKind {
    Buffered,
    Unbuffered,
}

/// Sorted names and which are leaves (no name below them).
fn leaves(names: &[String]) -> Vec<&str> {
    let set: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let sorted: Vec<&str> = set.into_iter().collect();
    sorted
        .iter()
        .enumerate()
        .filter(|(i, n)| {
            sorted.get(i + 1).is_none_or(|next| {
                !(next.starts_with(**n) && next.as_bytes().get(n.len()) == Some(&b'$'))
            })
        })
        .map(|(_, n)| *n)
        .collect()
}

/// Finds the controllable objects and report blocks among browsed names.
pub fn questions(devices: &[BrowsedDevice]) -> BrowseQuestions {
    let mut q = BrowseQuestions::default();
    for d in devices {
        let set: BTreeSet<&str> = d.variables.iter().map(String::as_str).collect();
        for v in &d.variables {
            let parts: Vec<&str> = v.split('$').collect();
            match parts.as_slice() {
                [ln, "CO", rest @ ..] if rest.last() == Some(&"Oper") && rest.len() >= 2 => {
                    let dobj: Vec<String> = rest[..rest.len() - 1]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect();
                    let ctl = format!("{ln}$CF${}$ctlModel", dobj.join("$"));
                    if set.contains(ctl.as_str()) {
                        q.controls.push((d.domain.clone(), (*ln).to_owned(), dobj));
                    }
                }
                [ln, fc @ ("BR" | "RP"), name] => {
                    let fc = if *fc == "BR" {
                        RcbKind::Buffered
                    } else {
                        RcbKind::Unbuffered
                    };
                    q.reports
                        .push((d.domain.clone(), (*ln).to_owned(), fc, (*name).to_owned()));
                }
                _ => {}
            }
        }
    }
    q
}

/// Builds the model from browsed names plus the answers to [`questions`]:
/// `control_models` per controllable object and `report_data_sets` (MMS
/// form, `IED1LD0/LLN0$Measurements`) per report block, in the order
/// `questions` listed them (`None` where the read failed).
pub fn model_from_browse(
    devices: &[BrowsedDevice],
    ied_name: &str,
    control_models: &[Option<ControlModel>],
    report_data_sets: &[Option<String>],
) -> DiscoveredModel {
    let mut model = DiscoveredModel {
        ied_name: ied_name.to_owned(),
        ..DiscoveredModel::default()
    };
    let q = questions(devices);
    let mut controls: BTreeMap<(String, String, Vec<String>), ControlModel> = BTreeMap::new();
    for (key, m) in q.controls.iter().zip(control_models) {
        if let Some(m) = m {
            controls.insert(key.clone(), *m);
        }
    }
    let mut taken = BTreeSet::new();
    for d in devices {
        let Some(ld) = ld_of(&d.domain, ied_name) else {
            model.notes.push(format!(
                "logical device {} skipped: its name does not start with ied_name {ied_name:?}",
                d.domain
            ));
            continue;
        };
        for leaf in leaves(&d.variables) {
            let parts: Vec<&str> = leaf.split('$').collect();
            let [ln, fc_text, rest @ ..] = parts.as_slice() else {
                continue;
            };
            let Ok(fc) = fc_text.parse::<Fc>() else {
                continue;
            };
            let path: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            let r = crate::reference::PointRef {
                ld: ld.clone(),
                ln: (*ln).to_owned(),
                path: path.clone(),
                fc,
            };
            let n = r.data_object_len();
            if n == 0 || !is_value_attribute(fc, &path[n..]) {
                continue;
            }
            let name = point_name(&ld, ln, &path, &mut taken);
            let mut p = PointConfig::new(name, r.user_text(), fc);
            let key = (d.domain.clone(), (*ln).to_owned(), path[..n].to_vec());
            if let Some(m) = controls.get(&key) {
                if matches!(path[n].as_str(), "stVal" | "mxVal" | "valWTr") {
                    p.control = Some(*m);
                }
            }
            model.points.push(p);
        }
    }
    for ((domain, ln, fc, name), ds) in q.reports.iter().zip(report_data_sets) {
        let Some(ld) = ld_of(domain, ied_name) else {
            continue;
        };
        let mut rc = ReportConfig::new(format!(
            "{ld}/{ln}.{}.{name}",
            if *fc == RcbKind::Buffered { "BR" } else { "RP" }
        ));
        rc.dataset = ds.as_ref().and_then(|d| {
            let (dd, item) = d.split_once('/')?;
            let dld = ld_of(dd, ied_name)?;
            let (dln, dname) = item.split_once('$')?;
            Some(format!("{dld}/{dln}.{dname}"))
        });
        model.reports.push(rc);
    }
    model
}

/// Browses a live IED (blocking: call it from a blocking context) and
/// returns its point map. Uses the device's address, IED name and
/// timeouts from `cfg`; points and reports in `cfg` are ignored.
pub fn discover(cfg: &Iec61850Config) -> Result<DiscoveredModel, DiscoveryError> {
    let address = normalize_address(&cfg.address).map_err(|message| DiscoveryError::Address {
        device: cfg.name.clone(),
        message,
    })?;
    let timeouts = crate::backend::Timeouts {
        connect: std::time::Duration::from_millis(cfg.connect_timeout_ms.max(1)),
        request: std::time::Duration::from_millis(cfg.timeout_ms.max(1)),
    };
    let mut backend = RsBackend::new();
    let result = discover_with(&mut backend, &address, timeouts, &cfg.ied_name);
    backend.close();
    result.map_err(|source| DiscoveryError::Device {
        device: cfg.name.clone(),
        address,
        source,
    })
}

/// [`discover`] over any backend.
pub fn discover_with(
    backend: &mut dyn MmsBackend,
    address: &str,
    timeouts: crate::backend::Timeouts,
    ied_name: &str,
) -> Result<DiscoveredModel, MmsError> {
    backend.connect(address, timeouts)?;
    let devices = backend.browse()?;
    let q = questions(&devices);
    let ctl_vars: Vec<VarRef> = q
        .controls
        .iter()
        .map(|(domain, ln, dobj)| VarRef {
            reference: format!("{domain}/{ln}.{}.ctlModel", dobj.join(".")),
            fc: Fc::CF,
        })
        .collect();
    let mut notes = Vec::new();
    let control_models = read_all(backend, &ctl_vars, &mut notes, |v| match v {
        MmsValue::Int(code) => ControlModel::from_code(*code),
        MmsValue::Uint(code) => i64::try_from(*code).ok().and_then(ControlModel::from_code),
        _ => None,
    })?;
    let ds_vars: Vec<VarRef> = q
        .reports
        .iter()
        .map(|(domain, ln, fc, name)| VarRef {
            reference: format!(
                "{domain}/{ln}${}${name}$DatSet",
                if *fc == RcbKind::Buffered { "BR" } else { "RP" }
            ),
            // The MMS-form name carries its constraint; this one is ignored.
            fc: Fc::ST,
        })
        .collect();
    let data_sets = read_all(backend, &ds_vars, &mut notes, |v| match v {
        MmsValue::String(s) if !s.is_empty() => Some(s.replace('.', "$")),
        _ => None,
    })?;
    let mut model = model_from_browse(&devices, ied_name, &control_models, &data_sets);
    model.notes.extend(notes);
    Ok(model)
}

/// Reads `vars` in chunks and converts each answer; failed reads are `None`.
fn read_all<T>(
    backend: &mut dyn MmsBackend,
    vars: &[VarRef],
    notes: &mut Vec<String>,
    convert: impl Fn(&MmsValue) -> Option<T>,
) -> Result<Vec<Option<T>>, MmsError> {
    let mut out = Vec::with_capacity(vars.len());
    for chunk in vars.chunks(50) {
        match backend.read(chunk) {
            Ok(results) => {
                for (var, r) in chunk.iter().zip(results) {
                    match r {
                        Ok(v) => out.push(convert(&v)),
                        Err(e) => {
                            notes.push(format!("{}: {e}", var.reference));
                            out.push(None);
                        }
                    }
                }
            }
            Err(e) if e.drops_connection() => return Err(e),
            Err(e) => {
                notes.push(format!("reading {} variables: {e}", chunk.len()));
                out.extend(chunk.iter().map(|_| None));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> BrowsedDevice {
        let vars = [
            "GGIO1",
            "GGIO1$CF",
            "GGIO1$CF$SPCSO1",
            "GGIO1$CF$SPCSO1$ctlModel",
            "GGIO1$CO",
            "GGIO1$CO$SPCSO1",
            "GGIO1$CO$SPCSO1$Oper",
            "GGIO1$CO$SPCSO1$Oper$ctlVal",
            "GGIO1$MX",
            "GGIO1$MX$AnIn1",
            "GGIO1$MX$AnIn1$mag",
            "GGIO1$MX$AnIn1$mag$f",
            "GGIO1$MX$AnIn1$q",
            "GGIO1$MX$AnIn1$t",
            "GGIO1$ST",
            "GGIO1$ST$SPCSO1",
            "GGIO1$ST$SPCSO1$q",
            "GGIO1$ST$SPCSO1$stVal",
            "GGIO1$ST$SPCSO1$t",
            "LLN0",
            "LLN0$BR",
            "LLN0$BR$brcb01",
            "LLN0$BR$brcb01$DatSet",
            "LLN0$BR$brcb01$RptID",
            "LLN0$DC",
            "LLN0$DC$NamPlt",
            "LLN0$DC$NamPlt$vendor",
            "MMXU1",
            "MMXU1$MX",
            "MMXU1$MX$PhV",
            "MMXU1$MX$PhV$phsA",
            "MMXU1$MX$PhV$phsA$cVal",
            "MMXU1$MX$PhV$phsA$cVal$mag",
            "MMXU1$MX$PhV$phsA$cVal$mag$f",
            "MMXU1$MX$PhV$phsA$q",
            "MMXU1$MX$PhV$phsA$instCVal",
            "MMXU1$MX$PhV$phsA$instCVal$mag",
            "MMXU1$MX$PhV$phsA$instCVal$mag$f",
        ];
        BrowsedDevice {
            domain: "IED1LD0".into(),
            variables: vars.iter().map(|s| (*s).to_owned()).collect(),
            data_sets: vec!["LLN0$Measurements".into()],
        }
    }

    #[test]
    fn browse_becomes_points_and_reports() {
        let devices = vec![
            device(),
            BrowsedDevice {
                domain: "OTHER".into(),
                variables: vec!["X$MX$A$mag$f".into()],
                data_sets: vec![],
            },
        ];
        let q = questions(&devices);
        assert_eq!(
            q.controls,
            vec![("IED1LD0".into(), "GGIO1".into(), vec!["SPCSO1".to_owned()])]
        );
        assert_eq!(
            q.reports,
            vec![(
                "IED1LD0".into(),
                "LLN0".into(),
                RcbKind::Buffered,
                "brcb01".into()
            )]
        );
        let m = model_from_browse(
            &devices,
            "IED1",
            &[Some(ControlModel::Sbo)],
            &[Some("IED1LD0/LLN0$Measurements".into())],
        );
        let refs: Vec<(&str, &str, Option<Fc>)> = m
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.reference.as_str(), p.fc))
            .collect();
        assert_eq!(
            refs,
            vec![
                (
                    "LD0.GGIO1.AnIn1.mag.f",
                    "LD0/GGIO1.AnIn1.mag.f",
                    Some(Fc::MX)
                ),
                (
                    "LD0.GGIO1.SPCSO1.stVal",
                    "LD0/GGIO1.SPCSO1.stVal",
                    Some(Fc::ST)
                ),
                (
                    "LD0.MMXU1.PhV.phsA.cVal.mag.f",
                    "LD0/MMXU1.PhV.phsA.cVal.mag.f",
                    Some(Fc::MX)
                ),
            ]
        );
        assert_eq!(m.points[1].control, Some(ControlModel::Sbo));
        assert!(!m.points[1].writable);
        assert_eq!(m.reports[0].rcb, "LD0/LLN0.BR.brcb01");
        assert_eq!(
            m.reports[0].dataset.as_deref(),
            Some("LD0/LLN0.Measurements")
        );
        assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
        // The written map loads back and validates as a device.
        let text = m.to_toml();
        assert!(text.contains("# rcb = \"LD0/LLN0.BR.brcb01\""), "{text}");
        let pts = crate::point_map::parse_points_toml(&text, Path::new("x.toml")).unwrap();
        assert_eq!(pts, m.points);
        let mut cfg = Iec61850Config::new("d", "h");
        cfg.ied_name = "IED1".into();
        cfg.points = pts;
        cfg.reports = m.reports.clone();
        assert!(cfg.validate(Path::new(".")).is_ok());
        let csv =
            crate::point_map::parse_points_csv(m.to_csv().as_bytes(), Path::new("x.csv")).unwrap();
        assert_eq!(csv, m.points);
    }

    #[test]
    fn names_are_valid_and_unique() {
        let mut taken = BTreeSet::new();
        let path: Vec<String> = vec!["TotW".into(), "mag".into(), "f".into()];
        assert_eq!(
            point_name("LD0", "MMXU1", &path, &mut taken),
            "LD0.MMXU1.TotW.mag.f"
        );
        assert_eq!(
            point_name("LD0", "MMXU1", &path, &mut taken),
            "LD0.MMXU1.TotW.mag.f_2"
        );
        let long: Vec<String> = (0..20).map(|i| format!("Component{i}")).collect();
        let a = point_name("LD0", "MMXU1", &long, &mut taken);
        let b = point_name("LD0", "MMXU1", &long, &mut taken);
        for n in [&a, &b] {
            assert!(dcmms_shared::validate_name(n).is_ok(), "{n}");
        }
        assert_ne!(a, b);
        let odd: Vec<String> = vec!["HA".into(), "phsAHar(2)".into()];
        assert!(dcmms_shared::validate_name(&point_name("LD0", "MHAI1", &odd, &mut taken)).is_ok());
    }
}
