//! IEC 61850 object references and functional constraints, sans-IO.
//!
//! This module owns the text forms a user writes in a point map
//! (`LD0/MMXU1.TotW.mag.f` with `fc = "MX"`, or the MMS form
//! `LD0/MMXU1$MX$TotW$mag$f`) and the names the driver derives from them:
//! the MMS variable name, the data object the value belongs to, and that
//! object's `q` and `t` siblings. It never talks to a device.
//!
//! The logical device in a reference is the *instance* (`LD0`); the MMS domain
//! is the IED name followed by it (`IED1` + `LD0` = `IED1LD0`), which is how
//! IEC 61850-8-1 names logical devices unless an SCL file sets `ldName`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A functional constraint: which view of a data object a read or write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Fc {
    /// Status information (`stVal`, `q`, `t` of SPS, DPS, INS, ...).
    ST,
    /// Measurands (`mag`, `cVal`, `q`, `t` of MV, CMV, ...).
    MX,
    /// Set points.
    SP,
    /// Substitution values.
    SV,
    /// Configuration (`ctlModel`, `units`, ...).
    CF,
    /// Description.
    DC,
    /// Setting group values.
    SG,
    /// Setting group values being edited.
    SE,
    /// Service responses.
    SR,
    /// Operate received.
    OR,
    /// Blocking.
    BL,
    /// Extended definition.
    EX,
    /// Control (`Oper`, `SBO`, `SBOw`, `Cancel`).
    CO,
}

impl Fc {
    pub const ALL: [Fc; 13] = [
        Fc::ST,
        Fc::MX,
        Fc::SP,
        Fc::SV,
        Fc::CF,
        Fc::DC,
        Fc::SG,
        Fc::SE,
        Fc::SR,
        Fc::OR,
        Fc::BL,
        Fc::EX,
        Fc::CO,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fc::ST => "ST",
            Fc::MX => "MX",
            Fc::SP => "SP",
            Fc::SV => "SV",
            Fc::CF => "CF",
            Fc::DC => "DC",
            Fc::SG => "SG",
            Fc::SE => "SE",
            Fc::SR => "SR",
            Fc::OR => "OR",
            Fc::BL => "BL",
            Fc::EX => "EX",
            Fc::CO => "CO",
        }
    }

    /// Whether data under this constraint carries `q` and `t` beside its
    /// value (status and measurands do; settings and configuration do not).
    pub fn has_quality(self) -> bool {
        matches!(self, Fc::ST | Fc::MX)
    }

    /// Whether a client may write data under this constraint with a plain
    /// MMS Write (set points, settings, configuration, description,
    /// substitution). Status and measurands change only through controls.
    pub fn is_writable(self) -> bool {
        matches!(self, Fc::SP | Fc::SV | Fc::CF | Fc::DC | Fc::SE | Fc::BL)
    }
}

/// A string that is not a functional constraint point maps may use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown functional constraint {0:?}; expected one of ST, MX, SP, SV, CF, DC, SG, SE, SR, OR, BL, EX, CO")]
pub struct ParseFcError(pub String);

impl FromStr for Fc {
    type Err = ParseFcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        Fc::ALL
            .into_iter()
            .find(|fc| fc.as_str() == up)
            .ok_or_else(|| ParseFcError(s.to_owned()))
    }
}

impl TryFrom<String> for Fc {
    type Error = ParseFcError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Fc> for &'static str {
    fn from(fc: Fc) -> &'static str {
        fc.as_str()
    }
}

impl fmt::Display for Fc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("{0:?} is not LD/LN.DO[.DA...]: missing `/` after the logical device")]
    NoSlash(String),
    #[error("{text:?}: {part} {name:?} must be letters, digits or `_`")]
    BadName {
        text: String,
        part: &'static str,
        name: String,
    },
    #[error("{0:?} names a logical node but no data object below it")]
    NoDataObject(String),
    #[error("{0:?}: {1}")]
    Fc(String, ParseFcError),
    #[error("{text:?} says {inline} but the point says fc = {given}")]
    FcMismatch { text: String, inline: Fc, given: Fc },
    #[error("{0:?} has no functional constraint: set `fc` (e.g. MX, ST)")]
    NoFc(String),
    #[error("{0:?}: write a control object as LD/LN.DO (e.g. LD0/CSWI1.Pos), without $FC$")]
    ObjectForm(String),
}

/// A parsed point reference: logical device instance, logical node, the
/// path of data object/attribute names below it, and the functional
/// constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointRef {
    /// Logical device instance (`LD0`), without the IED name.
    pub ld: String,
    /// Logical node (`MMXU1`, `LLN0`, `XCBR1`).
    pub ln: String,
    /// `TotW`, `mag`, `f`: data objects, sub-objects and attributes in order.
    /// A component may carry an array index: `phsAHar(2)`.
    pub path: Vec<String>,
    pub fc: Fc,
}

/// Sub data objects of the composite common data classes (IEC 61850-7-3
/// WYE, DEL and SEQ), whose names start with a small letter.
const SUB_DATA_OBJECTS: [&str; 12] = [
    "phsA", "phsB", "phsC", "neut", "net", "res", "phsAB", "phsBC", "phsCA", "c1", "c2", "c3",
];

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `name` or `name(digits)`.
fn is_component(s: &str) -> bool {
    match s.split_once('(') {
        None => is_name(s),
        Some((name, rest)) => {
            is_name(name)
                && rest.strip_suffix(')').is_some_and(|d| {
                    !d.is_empty() && d.len() <= 9 && d.bytes().all(|b| b.is_ascii_digit())
                })
        }
    }
}

impl PointRef {
    /// Parses `LD/LN.DO.DA` (with `fc`) or `LD/LN$FC$DO$DA` (whose FC must
    /// agree with `fc` when both are given).
    pub fn parse(text: &str, fc: Option<Fc>) -> Result<PointRef, RefError> {
        let t = text.trim();
        let (ld, rest) = t
            .split_once('/')
            .ok_or_else(|| RefError::NoSlash(t.to_owned()))?;
        let bad = |part: &'static str, name: &str| RefError::BadName {
            text: t.to_owned(),
            part,
            name: name.to_owned(),
        };
        if !is_name(ld) {
            return Err(bad("logical device", ld));
        }
        let (ln, inline_fc, path): (&str, Option<Fc>, Vec<&str>) = if rest.contains('$') {
            let mut parts = rest.split('$');
            let ln = parts.next().unwrap_or_default();
            let fc_text = parts.next().unwrap_or_default();
            let inline: Fc = fc_text.parse().map_err(|e| RefError::Fc(t.to_owned(), e))?;
            (ln, Some(inline), parts.collect())
        } else {
            let mut parts = rest.split('.');
            let ln = parts.next().unwrap_or_default();
            (ln, None, parts.collect())
        };
        if !is_name(ln) {
            return Err(bad("logical node", ln));
        }
        if path.is_empty() {
            return Err(RefError::NoDataObject(t.to_owned()));
        }
        if let Some(p) = path.iter().find(|p| !is_component(p)) {
            return Err(bad("data object/attribute", p));
        }
        let fc = match (inline_fc, fc) {
            (Some(i), Some(g)) if i != g => {
                return Err(RefError::FcMismatch {
                    text: t.to_owned(),
                    inline: i,
                    given: g,
                })
            }
            (Some(f), _) | (None, Some(f)) => f,
            (None, None) => return Err(RefError::NoFc(t.to_owned())),
        };
        Ok(PointRef {
            ld: ld.to_owned(),
            ln: ln.to_owned(),
            path: path.into_iter().map(str::to_owned).collect(),
            fc,
        })
    }

    /// The MMS domain: IED name followed by the logical device instance
    /// (see [`domain_of`]).
    pub fn domain(&self, ied_name: &str) -> String {
        domain_of(ied_name, &self.ld)
    }

    /// `IED1LD0/MMXU1.TotW.mag.f`: the dotted reference the client library
    /// reads with the functional constraint beside it.
    pub fn dotted(&self, ied_name: &str) -> String {
        format!(
            "{}/{}.{}",
            self.domain(ied_name),
            self.ln,
            self.path.join(".")
        )
    }

    /// `IED1LD0/MMXU1$MX$TotW$mag$f`: the MMS name, as data-set members and
    /// report data references spell it. Array indices are kept as written.
    pub fn mms(&self, ied_name: &str) -> String {
        format!(
            "{}/{}${}${}",
            self.domain(ied_name),
            self.ln,
            self.fc,
            self.path.join("$")
        )
    }

    /// The form a user writes: `LD0/MMXU1.TotW.mag.f`.
    pub fn user_text(&self) -> String {
        format!("{}/{}.{}", self.ld, self.ln, self.path.join("."))
    }

    /// How many leading path components are data objects. IEC 61850-7-1
    /// names data objects with a capital first letter and data attributes
    /// with a small one; the sub data objects of the standard's composite
    /// classes (WYE, DEL, SEQ: `phsA`, `neut`, `c1`, ...) are the exception
    /// and are known by name. `PhV.phsA.cVal.mag.f` therefore has two.
    pub fn data_object_len(&self) -> usize {
        self.path
            .iter()
            .take_while(|c| {
                let name = c.split('(').next().unwrap_or_default();
                name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                    || SUB_DATA_OBJECTS.contains(&name)
            })
            .count()
    }

    /// Whether the reference names an attribute below a data object (and
    /// not the data object itself).
    pub fn has_attribute(&self) -> bool {
        let n = self.data_object_len();
        n > 0 && n < self.path.len()
    }

    /// The `q` or `t` (any `attribute`) of the data object this value
    /// belongs to, under the same functional constraint: `MMXU1.TotW.q` for
    /// `MMXU1.TotW.mag.f`. `None` when the constraint carries no quality or
    /// the reference names no attribute.
    pub fn sibling(&self, attribute: &str) -> Option<PointRef> {
        if !self.fc.has_quality() || !self.has_attribute() {
            return None;
        }
        let n = self.data_object_len();
        let mut path: Vec<String> = self.path[..n].to_vec();
        if self.path.get(n).is_some_and(|c| c == attribute) {
            return None;
        }
        path.push(attribute.to_owned());
        Some(PointRef {
            path,
            ..self.clone()
        })
    }

    /// `LD0/GGIO1.SPCSO1`: the controllable data object this reference is
    /// part of (its leading data-object components).
    pub fn data_object_text(&self) -> Option<String> {
        let n = self.data_object_len();
        (n > 0).then(|| format!("{}/{}.{}", self.ld, self.ln, self.path[..n].join(".")))
    }

    /// Whether a component carries an array index (such values are read,
    /// but not matched inside reports).
    pub fn has_index(&self) -> bool {
        self.path.iter().any(|c| c.contains('('))
    }
}

impl fmt::Display for PointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.user_text(), self.fc)
    }
}

/// The MMS domain of a logical device as written in a reference: the IED
/// name followed by the LD instance, unless the text already starts with
/// the IED name (a full domain name such as `IED1LD0`).
pub fn domain_of(ied_name: &str, ld: &str) -> String {
    if !ied_name.is_empty() && ld.len() > ied_name.len() && ld.starts_with(ied_name) {
        ld.to_owned()
    } else {
        format!("{ied_name}{ld}")
    }
}

/// Parses a control object reference `LD0/GGIO1.SPCSO1` (no FC).
pub fn parse_object(text: &str) -> Result<(String, String, Vec<String>), RefError> {
    if text.contains('$') {
        return Err(RefError::ObjectForm(text.trim().to_owned()));
    }
    // Reuse the point parser with a placeholder constraint.
    let r = PointRef::parse(text, Some(Fc::CO))?;
    Ok((r.ld, r.ln, r.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn both_forms_parse_to_the_same_reference() {
        let a = PointRef::parse("LD0/MMXU1.TotW.mag.f", Some(Fc::MX)).unwrap();
        let b = PointRef::parse("LD0/MMXU1$MX$TotW$mag$f", None).unwrap();
        let c = PointRef::parse(" LD0/MMXU1$MX$TotW$mag$f ", Some(Fc::MX)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.dotted("IED1"), "IED1LD0/MMXU1.TotW.mag.f");
        assert_eq!(a.mms("IED1"), "IED1LD0/MMXU1$MX$TotW$mag$f");
        assert_eq!(a.user_text(), "LD0/MMXU1.TotW.mag.f");
        assert_eq!(a.to_string(), "LD0/MMXU1.TotW.mag.f (MX)");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = PointRef::parse("MMXU1.TotW", Some(Fc::MX)).unwrap_err();
        assert!(matches!(e, RefError::NoSlash(_)), "{e}");
        let e = PointRef::parse("LD0/MMXU1", Some(Fc::MX)).unwrap_err();
        assert!(matches!(e, RefError::NoDataObject(_)), "{e}");
        let e = PointRef::parse("LD0/MMXU1.TotW.mag.f", None).unwrap_err();
        assert!(e.to_string().contains("set `fc`"), "{e}");
        let e = PointRef::parse("LD0/MMXU1$ST$TotW", Some(Fc::MX)).unwrap_err();
        assert!(matches!(e, RefError::FcMismatch { .. }), "{e}");
        let e = PointRef::parse("LD0/MMXU1$XY$TotW", None).unwrap_err();
        assert!(e.to_string().contains("XY"), "{e}");
        let e = PointRef::parse("LD0/MMXU1.To tW", Some(Fc::MX)).unwrap_err();
        assert!(e.to_string().contains("To tW"), "{e}");
        let e = PointRef::parse("LD0/MMXU1.TotW..f", Some(Fc::MX)).unwrap_err();
        assert!(matches!(e, RefError::BadName { .. }), "{e}");
        assert!(PointRef::parse("LD0/MHAI1.HA.phsAHar(2).cVal.mag.f", Some(Fc::MX)).is_ok());
        assert!(PointRef::parse("LD0/MHAI1.HA.phsAHar(x).cVal", Some(Fc::MX)).is_err());
        assert!(PointRef::parse("LD0/MHAI1.HA.phsAHar(2", Some(Fc::MX)).is_err());
    }

    #[test]
    fn quality_and_time_siblings() {
        let r = PointRef::parse("LD0/MMXU1.TotW.mag.f", Some(Fc::MX)).unwrap();
        assert_eq!(r.data_object_len(), 1);
        assert_eq!(r.sibling("q").unwrap().mms("I"), "ILD0/MMXU1$MX$TotW$q");
        assert_eq!(r.sibling("t").unwrap().dotted("I"), "ILD0/MMXU1.TotW.t");
        assert_eq!(r.data_object_text().unwrap(), "LD0/MMXU1.TotW");
        let st = PointRef::parse("LD0/GGIO1.SPCSO1.stVal", Some(Fc::ST)).unwrap();
        assert_eq!(st.sibling("q").unwrap().user_text(), "LD0/GGIO1.SPCSO1.q");
        // The quality itself, a data object, and settings have none.
        let q = PointRef::parse("LD0/GGIO1.SPCSO1.q", Some(Fc::ST)).unwrap();
        assert!(q.sibling("q").is_none());
        assert!(q.sibling("t").is_some());
        let wye = PointRef::parse("LD0/MMXU1.PhV.phsA.cVal.mag.f", Some(Fc::MX)).unwrap();
        assert_eq!(wye.data_object_len(), 2);
        assert_eq!(
            wye.sibling("q").unwrap().user_text(),
            "LD0/MMXU1.PhV.phsA.q"
        );
        let d = PointRef::parse("LD0/MMXU1.TotW", Some(Fc::MX)).unwrap();
        assert!(d.sibling("q").is_none());
        let sp = PointRef::parse("LD0/DRCC1.WMax.setMag.f", Some(Fc::SP)).unwrap();
        assert!(sp.sibling("q").is_none());
        assert!(Fc::SP.is_writable() && !Fc::MX.is_writable());
    }

    #[test]
    fn fc_text() {
        for fc in Fc::ALL {
            assert_eq!(fc.as_str().parse::<Fc>(), Ok(fc));
            assert_eq!(fc.as_str().to_lowercase().parse::<Fc>(), Ok(fc));
        }
        assert!("RP".parse::<Fc>().is_err());
        let (ld, ln, path) = parse_object("LD0/CSWI1.Pos").unwrap();
        assert_eq!(
            (ld.as_str(), ln.as_str(), path),
            ("LD0", "CSWI1", vec!["Pos".to_owned()])
        );
        assert!(parse_object("LD0/CSWI1$CO$Pos").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,40}", fc in proptest::option::of(0usize..13)) {
            let _ = PointRef::parse(&text, fc.map(|i| Fc::ALL[i]));
        }

        #[test]
        fn dotted_and_mms_forms_round_trip(
            ld in "[A-Za-z][A-Za-z0-9_]{0,6}",
            ln in "[A-Z][A-Za-z0-9]{0,6}",
            path in proptest::collection::vec("[A-Za-z][A-Za-z0-9_]{0,6}", 1..5),
            fc in 0usize..13,
        ) {
            let fc = Fc::ALL[fc];
            let r = PointRef { ld, ln, path, fc };
            let from_user = PointRef::parse(&r.user_text(), Some(fc)).unwrap();
            prop_assert_eq!(&from_user, &r);
            let mms = r.mms("");
            let from_mms = PointRef::parse(&mms, None).unwrap();
            prop_assert_eq!(&from_mms, &r);
        }
    }
}
