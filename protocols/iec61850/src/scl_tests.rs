use super::*;
use proptest::prelude::*;

/// Data type templates shared by the fixed and generated files.
const TEMPLATES: &str = r#"
  <DataTypeTemplates>
    <LNodeType id="LLN0_T" lnClass="LLN0">
      <DO name="Beh" type="ENS_T"/>
    </LNodeType>
    <LNodeType id="MMXU_T" lnClass="MMXU">
      <DO name="TotW" type="MV_T"/>
      <DO name="Hz" type="MV_T"/>
      <DO name="PhV" type="WYE_T"/>
    </LNodeType>
    <LNodeType id="GGIO_T" lnClass="GGIO">
      <DO name="Ind1" type="SPS_T"/>
      <DO name="SPCSO1" type="SPC_T"/>
      <DO name="SPCSO2" type="SPC_T"/>
      <DO name="AnOut1" type="APC_T"/>
    </LNodeType>
    <LNodeType id="XCBR_T" lnClass="XCBR">
      <DO name="Pos" type="DPC_T"/>
      <DO name="OpCnt" type="INS_T"/>
    </LNodeType>
    <DOType id="MV_T" cdc="MV">
      <DA name="mag" bType="Struct" type="AV_T" fc="MX" dchg="true"/>
      <DA name="q" bType="Quality" fc="MX" qchg="true"/>
      <DA name="t" bType="Timestamp" fc="MX"/>
      <DA name="units" bType="Struct" type="Unit_T" fc="CF"/>
      <DA name="d" bType="VisString255" fc="DC"/>
    </DOType>
    <DOType id="CMV_T" cdc="CMV">
      <DA name="cVal" bType="Struct" type="Vec_T" fc="MX" dchg="true"/>
      <DA name="q" bType="Quality" fc="MX"/>
      <DA name="t" bType="Timestamp" fc="MX"/>
    </DOType>
    <DOType id="WYE_T" cdc="WYE">
      <SDO name="phsA" type="CMV_T"/>
      <SDO name="phsB" type="CMV_T"/>
    </DOType>
    <DOType id="SPS_T" cdc="SPS">
      <DA name="stVal" bType="BOOLEAN" fc="ST" dchg="true"/>
      <DA name="q" bType="Quality" fc="ST"/>
      <DA name="t" bType="Timestamp" fc="ST"/>
    </DOType>
    <DOType id="INS_T" cdc="INS">
      <DA name="stVal" bType="INT32" fc="ST" dchg="true"/>
      <DA name="q" bType="Quality" fc="ST"/>
    </DOType>
    <DOType id="ENS_T" cdc="ENS">
      <DA name="stVal" bType="Enum" type="Beh_E" fc="ST"/>
      <DA name="q" bType="Quality" fc="ST"/>
    </DOType>
    <DOType id="SPC_T" cdc="SPC">
      <DA name="Oper" bType="Struct" type="SPCOper_T" fc="CO"/>
      <DA name="stVal" bType="BOOLEAN" fc="ST" dchg="true"/>
      <DA name="q" bType="Quality" fc="ST"/>
      <DA name="t" bType="Timestamp" fc="ST"/>
      <DA name="ctlModel" bType="Enum" type="CtlModels" fc="CF"><Val>direct-with-normal-security</Val></DA>
    </DOType>
    <DOType id="DPC_T" cdc="DPC">
      <DA name="stVal" bType="Dbpos" fc="ST" dchg="true"/>
      <DA name="q" bType="Quality" fc="ST"/>
      <DA name="ctlModel" bType="Enum" type="CtlModels" fc="CF"><Val>status-only</Val></DA>
    </DOType>
    <DOType id="APC_T" cdc="APC">
      <DA name="mxVal" bType="Struct" type="AV_T" fc="MX"/>
      <DA name="ctlModel" bType="Enum" type="CtlModels" fc="CF"><Val>direct-with-normal-security</Val></DA>
      <DA name="hist" bType="FLOAT32" fc="MX" count="4"/>
    </DOType>
    <DAType id="AV_T"><BDA name="f" bType="FLOAT32"/></DAType>
    <DAType id="Vec_T"><BDA name="mag" bType="Struct" type="AV_T"/><BDA name="ang" bType="Struct" type="AV_T"/></DAType>
    <DAType id="Unit_T"><BDA name="SIUnit" bType="Enum"/></DAType>
    <DAType id="SPCOper_T"><BDA name="ctlVal" bType="BOOLEAN"/></DAType>
  </DataTypeTemplates>"#;

fn fixed_file() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SCL xmlns="http://www.iec.ch/61850/2003/SCL" version="2007" revision="B">
  <Header id="bay"/>
  <IED name="IED1" manufacturer="test">
    <AccessPoint name="AP1"><Server>
      <LDevice inst="LD0">
        <LN0 lnClass="LLN0" inst="" lnType="LLN0_T">
          <DataSet name="Measurements">
            <FCDA ldInst="LD0" lnClass="MMXU" lnInst="1" doName="TotW" fc="MX"/>
          </DataSet>
          <ReportControl name="brcb" datSet="Measurements" buffered="true" bufTime="50" intgPd="5000">
            <TrgOps dchg="true" qchg="true" period="true" gi="true"/>
            <RptEnabled max="3"/>
          </ReportControl>
          <ReportControl name="urcb01" datSet="Measurements" indexed="false">
            <TrgOps dchg="true"/>
            <RptEnabled max="1"/>
          </ReportControl>
        </LN0>
        <LN lnClass="MMXU" inst="1" lnType="MMXU_T"/>
        <LN lnClass="GGIO" inst="1" lnType="GGIO_T">
          <DOI name="SPCSO2"><DAI name="ctlModel"><Val>sbo-with-enhanced-security</Val></DAI></DOI>
        </LN>
        <LN prefix="Q0" lnClass="XCBR" inst="1" lnType="XCBR_T"/>
        <LN lnClass="MISSING" inst="1" lnType="NOPE"/>
      </LDevice>
    </Server></AccessPoint>
  </IED>
  {TEMPLATES}
</SCL>"#
    )
}

#[test]
fn imports_values_controls_and_reports() {
    let m = import_scl(&fixed_file(), None).unwrap();
    assert_eq!(m.ied_name, "IED1");
    let got: Vec<(&str, &str, Fc, Option<ControlModel>)> = m
        .points
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.reference.as_str(),
                p.fc.unwrap(),
                p.control,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("LD0.LLN0.Beh.stVal", "LD0/LLN0.Beh.stVal", Fc::ST, None),
            ("LD0.MMXU1.TotW.mag.f", "LD0/MMXU1.TotW.mag.f", Fc::MX, None),
            ("LD0.MMXU1.Hz.mag.f", "LD0/MMXU1.Hz.mag.f", Fc::MX, None),
            (
                "LD0.MMXU1.PhV.phsA.cVal.mag.f",
                "LD0/MMXU1.PhV.phsA.cVal.mag.f",
                Fc::MX,
                None
            ),
            (
                "LD0.MMXU1.PhV.phsA.cVal.ang.f",
                "LD0/MMXU1.PhV.phsA.cVal.ang.f",
                Fc::MX,
                None
            ),
            (
                "LD0.MMXU1.PhV.phsB.cVal.mag.f",
                "LD0/MMXU1.PhV.phsB.cVal.mag.f",
                Fc::MX,
                None
            ),
            (
                "LD0.MMXU1.PhV.phsB.cVal.ang.f",
                "LD0/MMXU1.PhV.phsB.cVal.ang.f",
                Fc::MX,
                None
            ),
            ("LD0.GGIO1.Ind1.stVal", "LD0/GGIO1.Ind1.stVal", Fc::ST, None),
            (
                "LD0.GGIO1.SPCSO1.stVal",
                "LD0/GGIO1.SPCSO1.stVal",
                Fc::ST,
                Some(ControlModel::Direct)
            ),
            (
                "LD0.GGIO1.SPCSO2.stVal",
                "LD0/GGIO1.SPCSO2.stVal",
                Fc::ST,
                Some(ControlModel::SboEnhanced)
            ),
            (
                "LD0.GGIO1.AnOut1.mxVal.f",
                "LD0/GGIO1.AnOut1.mxVal.f",
                Fc::MX,
                Some(ControlModel::Direct)
            ),
            (
                "LD0.Q0XCBR1.Pos.stVal",
                "LD0/Q0XCBR1.Pos.stVal",
                Fc::ST,
                None
            ),
            (
                "LD0.Q0XCBR1.OpCnt.stVal",
                "LD0/Q0XCBR1.OpCnt.stVal",
                Fc::ST,
                None
            ),
        ]
    );
    assert_eq!(m.reports.len(), 2);
    let b = &m.reports[0];
    assert_eq!(b.rcb, "LD0/LLN0.BR.brcb01");
    assert_eq!(b.dataset.as_deref(), Some("LD0/LLN0.Measurements"));
    assert_eq!(
        (b.integrity_period_ms, b.buffer_time_ms),
        (Some(5000), Some(50))
    );
    assert!(b.data_change && b.quality_change && b.gi && !b.data_update);
    let u = &m.reports[1];
    assert_eq!(u.rcb, "LD0/LLN0.RP.urcb01");
    assert!(u.data_change && !u.quality_change && u.gi && u.integrity_period_ms.is_none());
    assert!(m.notes.iter().any(|n| n.contains("NOPE")), "{:?}", m.notes);
    assert!(m.notes.iter().any(|n| n.contains("hist")), "{:?}", m.notes);
    // The result is a config that validates.
    let mut cfg = crate::config::Iec61850Config::new("d", "h");
    cfg.ied_name = m.ied_name.clone();
    cfg.points = m.points.clone();
    cfg.reports = m.reports.clone();
    assert!(cfg.validate(Path::new(".")).is_ok());
}

#[test]
fn ied_selection_and_bad_files() {
    let two = fixed_file().replace("</IED>", "</IED><IED name=\"IED2\"/>");
    assert_eq!(
        import_scl(&two, None),
        Err(SclError::ManyIeds(vec!["IED1".into(), "IED2".into()]))
    );
    assert_eq!(import_scl(&two, Some("IED2")).unwrap().points.len(), 0);
    assert!(matches!(
        import_scl(&two, Some("X")),
        Err(SclError::IedNotFound { .. })
    ));
    assert_eq!(import_scl("<SCL/>", None), Err(SclError::NoIed));
    assert!(matches!(
        import_scl("<html/>", None),
        Err(SclError::NotScl(_))
    ));
    assert!(matches!(import_scl("<SCL>", None), Err(SclError::Xml(_))));
    let dtd = "<!DOCTYPE SCL [<!ENTITY a \"aaaa\">]><SCL>&a;</SCL>";
    assert!(matches!(import_scl(dtd, None), Err(SclError::Xml(_))));
    let e = import_scl_file(Path::new("/nonexistent.icd"), None).unwrap_err();
    assert!(e.to_string().contains("/nonexistent.icd"), "{e}");
}

#[test]
fn ld_name_gives_full_references_and_cycles_end() {
    let f = fixed_file().replace(
        "<LDevice inst=\"LD0\">",
        "<LDevice inst=\"LD0\" ldName=\"BayCtrl\">",
    );
    let m = import_scl(&f, None).unwrap();
    assert_eq!(m.ied_name, "");
    assert!(m.points.iter().all(|p| p.reference.starts_with("BayCtrl/")));
    assert_eq!(m.reports[0].rcb, "BayCtrl/LLN0.BR.brcb01");
    // A type that contains itself is cut, not followed for ever.
    let cyc = fixed_file().replace(
        r#"<DOType id="WYE_T" cdc="WYE">"#,
        r#"<DOType id="WYE_T" cdc="WYE"><SDO name="loop" type="WYE_T"/>"#,
    );
    let m = import_scl(&cyc, None).unwrap();
    assert!(
        m.notes.iter().any(|n| n.contains("deeper")),
        "{:?}",
        m.notes
    );
}

/// A generated logical node: class, instance, and data objects with a
/// common data class.
#[derive(Debug, Clone)]
struct GenLn {
    class: &'static str,
    inst: u8,
    dos: Vec<(String, &'static str)>,
}

fn gen_ln() -> impl Strategy<Value = GenLn> {
    (
        proptest::sample::select(vec!["MMXU", "GGIO", "XCBR", "ZINV"]),
        1u8..9,
        proptest::collection::btree_map(
            "[A-Z][a-zA-Z]{0,5}[0-9]?",
            proptest::sample::select(vec!["MV_T", "SPS_T", "SPC_T", "INS_T"]),
            1..5,
        ),
    )
        .prop_map(|(class, inst, dos)| GenLn {
            class,
            inst,
            dos: dos.into_iter().collect(),
        })
}

fn render(lds: &[(String, Vec<GenLn>)]) -> String {
    let mut body = String::new();
    let mut types = String::new();
    for (ld, lns) in lds {
        body.push_str(&format!("<LDevice inst=\"{ld}\">"));
        for (i, ln) in lns.iter().enumerate() {
            let id = format!("{ld}_{i}_T");
            body.push_str(&format!(
                "<LN lnClass=\"{}\" inst=\"{}\" lnType=\"{id}\"/>",
                ln.class, ln.inst
            ));
            types.push_str(&format!("<LNodeType id=\"{id}\" lnClass=\"{}\">", ln.class));
            for (name, t) in &ln.dos {
                types.push_str(&format!("<DO name=\"{name}\" type=\"{t}\"/>"));
            }
            types.push_str("</LNodeType>");
        }
        body.push_str("</LDevice>");
    }
    let templates = TEMPLATES.replace(
        "<DataTypeTemplates>",
        &format!("<DataTypeTemplates>{types}"),
    );
    format!("<SCL><IED name=\"G\"><AccessPoint name=\"A\"><Server>{body}</Server></AccessPoint></IED>{templates}</SCL>")
}

/// What the import must produce for a generated model.
fn expected(lds: &[(String, Vec<GenLn>)]) -> BTreeSet<(String, Fc, Option<ControlModel>)> {
    let mut out = BTreeSet::new();
    for (ld, lns) in lds {
        // Two generated nodes with the same name are one MMS node; the
        // import keeps both lists, so expectations follow the same rule.
        for ln in lns {
            let name = format!("{}{}", ln.class, ln.inst);
            for (d, t) in &ln.dos {
                let (attr, fc, ctl) = match *t {
                    "MV_T" => ("mag.f", Fc::MX, None),
                    "SPS_T" | "INS_T" => ("stVal", Fc::ST, None),
                    _ => ("stVal", Fc::ST, Some(ControlModel::Direct)),
                };
                out.insert((format!("{ld}/{name}.{d}.{attr}"), fc, ctl));
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn generated_models_round_trip(
        lds in proptest::collection::btree_map("LD[0-9]{1,2}", proptest::collection::vec(gen_ln(), 1..4), 1..3)
    ) {
        let lds: Vec<(String, Vec<GenLn>)> = lds.into_iter().collect();
        let m = import_scl(&render(&lds), None).unwrap();
        prop_assert_eq!(&m.ied_name, "G");
        let got: BTreeSet<(String, Fc, Option<ControlModel>)> =
            m.points.iter().map(|p| (p.reference.clone(), p.fc.unwrap(), p.control)).collect();
        prop_assert_eq!(got, expected(&lds));
        let names: BTreeSet<&str> = m.points.iter().map(|p| p.name.as_str()).collect();
        prop_assert_eq!(names.len(), m.points.len(), "names are unique");
        for p in &m.points {
            prop_assert!(dcmms_shared::validate_name(&p.name).is_ok(), "{}", p.name);
            prop_assert!(p.validate("d", &m.ied_name).is_ok(), "{:?}", p);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = import_scl(&text, None);
    }

    #[test]
    fn arbitrary_scl_shapes_never_panic(
        picks in proptest::collection::vec((0usize..12, 0usize..12, "[A-Za-z0-9_ ]{0,6}"), 0..60)
    ) {
        // Random nesting of the element and attribute names the importer
        // looks at, with random values.
        const TAGS: [&str; 12] = ["IED", "AccessPoint", "Server", "LDevice", "LN", "LN0", "DataTypeTemplates",
            "LNodeType", "DO", "DOType", "DA", "DAType"];
        const ATTRS: [&str; 12] = ["name", "inst", "lnClass", "lnType", "type", "id", "fc", "bType", "count",
            "prefix", "ldName", "datSet"];
        let mut xml = String::from("<SCL>");
        let mut open = Vec::new();
        for (t, a, v) in picks {
            if t == 11 && !open.is_empty() {
                xml.push_str(&format!("</{}>", open.pop().unwrap_or("x")));
                continue;
            }
            xml.push_str(&format!("<{} {}=\"{}\" type=\"{}\" id=\"{}\" bType=\"Struct\">", TAGS[t], ATTRS[a], v, v, v));
            open.push(TAGS[t]);
        }
        while let Some(t) = open.pop() {
            xml.push_str(&format!("</{t}>"));
        }
        xml.push_str("</SCL>");
        let _ = import_scl(&xml, None);
    }
}
