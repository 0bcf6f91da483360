use super::*;

fn dev(points: Vec<PointConfig>) -> Iec61850Config {
    let mut c = Iec61850Config::new("bay-01", "127.0.0.1");
    c.ied_name = "IED1".into();
    c.points = points;
    c
}

fn err(c: &Iec61850Config) -> String {
    c.validate(Path::new(".")).unwrap_err().to_string()
}

#[test]
fn plan_derives_every_name() {
    let c = dev(vec![
        PointConfig::new("p", "LD0/MMXU1.TotW.mag.f", Fc::MX).with_scale(0.001, 0.0),
        PointConfig::new("sw", "LD0/GGIO1.SPCSO1.stVal", Fc::ST).with_control(ControlModel::Sbo),
        PointConfig::new("wmax", "LD0/DRCC1.WMax.setMag.f", Fc::SP),
        PointConfig::new("full", "IED1LD0/MMXU1$MX$Hz$mag$f", Fc::MX),
    ]);
    let plan = c.validate(Path::new(".")).unwrap();
    assert_eq!(plan.address, "127.0.0.1:102");
    let p = &plan.points[0];
    assert_eq!(p.value.reference, "IED1LD0/MMXU1.TotW.mag.f");
    assert_eq!(p.mms, "IED1LD0/MMXU1$MX$TotW$mag$f");
    let (q, q_mms) = p.quality.clone().unwrap();
    assert_eq!(
        (q.reference.as_str(), q.fc),
        ("IED1LD0/MMXU1.TotW.q", Fc::MX)
    );
    assert_eq!(q_mms, "IED1LD0/MMXU1$MX$TotW$q");
    assert_eq!(p.time.clone().unwrap().1, "IED1LD0/MMXU1$MX$TotW$t");
    assert_eq!(p.scaling, Scaling::new(0.001, 0.0));
    assert_eq!(p.command, None);
    let sw = &plan.points[1];
    assert!(sw.writable);
    assert_eq!(
        sw.command,
        Some(CommandTarget::Control {
            object: "IED1LD0/GGIO1.SPCSO1".into(),
            model: ControlModel::Sbo
        })
    );
    // A set point is written, but only when marked writable.
    assert_eq!(plan.points[2].command, Some(CommandTarget::Write));
    assert!(!plan.points[2].writable);
    assert!(plan.points[2].quality.is_none());
    // A full domain is not prefixed twice.
    assert_eq!(plan.points[3].value.reference, "IED1LD0/MMXU1.Hz.mag.f");
}

#[test]
fn errors_name_device_point_and_field() {
    let e = err(&dev(vec![
        PointConfig::new("a", "LD0/MMXU1.TotW.mag.f", Fc::MX),
        PointConfig::new("a", "LD0/MMXU1.Hz.mag.f", Fc::MX),
    ]));
    assert_eq!(
        e,
        r#"iec61850 device "bay-01": point "a" is defined more than once"#
    );
    let e = err(&dev(vec![PointConfig::new("x", "MMXU1.TotW", Fc::MX)]));
    assert!(
        e.contains(r#"point "x""#) && e.contains("`reference`"),
        "{e}"
    );
    let mut p = PointConfig::new("x", "LD0/MMXU1.TotW.mag.f", Fc::MX);
    p.fc = None;
    let e = err(&dev(vec![p]));
    assert!(e.contains("`fc`"), "{e}");
    let mut p = PointConfig::new("x", "LD0/MMXU1.TotW.mag.f", Fc::MX);
    p.writable = true;
    let e = err(&dev(vec![p]));
    assert!(e.contains("`writable`") && e.contains("control"), "{e}");
    let mut p = PointConfig::new("x", "LD0/MMXU1.TotW.mag.f", Fc::MX);
    p.control_object = Some("LD0/GGIO1.SPCSO1".into());
    let e = err(&dev(vec![p]));
    assert!(e.contains("`control_object`"), "{e}");
    let mut p =
        PointConfig::new("x", "LD0/GGIO1.SPCSO1.stVal", Fc::ST).with_control(ControlModel::Direct);
    p.control_object = Some("LD0/GGIO1$CO$SPCSO1".into());
    let e = err(&dev(vec![p]));
    assert!(e.contains("`control_object`"), "{e}");
    let e = err(&dev(vec![
        PointConfig::new("s", "LD0/A.B.c", Fc::MX).with_scale(0.0, 0.0)
    ]));
    assert!(e.contains("`scale`"), "{e}");
    let e = err(&dev(vec![PointConfig::new(
        "bad/name",
        "LD0/A.B.c",
        Fc::MX,
    )]));
    assert!(e.contains("invalid name"), "{e}");
}

#[test]
fn device_fields_are_checked() {
    let p = vec![PointConfig::new("a", "LD0/A.B.c", Fc::MX)];
    for (bad, field) in [
        ("", "address"),
        ("host:0", "address"),
        ("::1", "address"),
        ("[::1", "address"),
        ("h:x", "address"),
    ] {
        let mut c = dev(p.clone());
        c.address = bad.into();
        assert!(
            err(&c).contains(&format!("`{field}`")),
            "{bad}: {}",
            err(&c)
        );
    }
    for (ok, want) in [
        ("ied.local", "ied.local:102"),
        ("10.0.0.5:3782", "10.0.0.5:3782"),
        ("[::1]", "[::1]:102"),
        ("[fe80::1]:102", "[fe80::1]:102"),
    ] {
        let mut c = dev(p.clone());
        c.address = ok.into();
        assert_eq!(c.validate(Path::new(".")).unwrap().address, want);
    }
    let mut c = dev(p.clone());
    c.poll_interval_ms = 0;
    assert!(err(&c).contains("`poll_interval_ms`"));
    let mut c = dev(p.clone());
    c.backoff_max_ms = 10;
    assert!(err(&c).contains("`backoff_max_ms`"));
    let mut c = dev(p.clone());
    c.max_vars_per_read = 2;
    assert!(err(&c).contains("`max_vars_per_read`"));
    let mut c = dev(p.clone());
    c.ied_name = "IED 1".into();
    assert!(err(&c).contains("`ied_name`"));
    assert!(err(&dev(vec![])).contains("no points"));
}

#[test]
fn reports() {
    let mut c = dev(vec![PointConfig::new("a", "LD0/A.B.c", Fc::MX)]);
    let mut r = ReportConfig::new("LD0/LLN0.BR.brcb01");
    r.dataset = Some("LD0/LLN0.Measurements".into());
    r.integrity_period_ms = Some(5000);
    c.reports = vec![
        r,
        ReportConfig::new("LD0/LLN0$RP$urcb01"),
        ReportConfig {
            buffered: Some(false),
            ..ReportConfig::new("IED1LD0/LLN0.urcb02")
        },
    ];
    let plan = c.validate(Path::new(".")).unwrap();
    let b = &plan.reports[0];
    assert_eq!(b.reference, "IED1LD0/LLN0$BR$brcb01");
    assert!(b.buffered && b.triggers.integrity && b.triggers.general_interrogation);
    assert_eq!(b.data_set.as_deref(), Some("IED1LD0/LLN0$Measurements"));
    assert_eq!(plan.reports[1].reference, "IED1LD0/LLN0$RP$urcb01");
    assert!(!plan.reports[1].triggers.integrity);
    assert_eq!(plan.reports[2].reference, "IED1LD0/LLN0$RP$urcb02");

    for (rcb, buffered, field) in [
        ("LD0/LLN0.brcb01", None, "`buffered`"),
        ("LD0/LLN0.BR.brcb01", Some(false), "`buffered`"),
        ("LD0/LLN0.XX.brcb01", None, "`rcb`"),
        ("LLN0.BR.brcb01", None, "`rcb`"),
        ("LD0/LLN0.BR.b.c", None, "`rcb`"),
    ] {
        let mut c2 = c.clone();
        c2.reports = vec![ReportConfig {
            buffered,
            ..ReportConfig::new(rcb)
        }];
        let e = err(&c2);
        assert!(e.contains(field) && e.contains(rcb), "{rcb}: {e}");
    }
    let mut c2 = c.clone();
    c2.reports = vec![ReportConfig {
        dataset: Some("Measurements".into()),
        ..ReportConfig::new("LD0/LLN0.RP.urcb01")
    }];
    assert!(err(&c2).contains("`dataset`"));
    let mut c2 = c.clone();
    c2.reports = vec![ReportConfig {
        data_change: false,
        quality_change: false,
        gi: false,
        ..ReportConfig::new("LD0/LLN0.RP.urcb01")
    }];
    assert!(err(&c2).contains("no trigger"));
    let mut c2 = c.clone();
    c2.reports = vec![
        ReportConfig::new("LD0/LLN0.RP.urcb01"),
        ReportConfig::new("LD0/LLN0$RP$urcb01"),
    ];
    assert!(err(&c2).contains("more than once"));
}

#[test]
fn toml_example_and_unknown_fields() {
    let text = r#"
        name = "bay-01"
        address = "192.168.1.30"
        ied_name = "IED1"
        poll_interval_ms = 1000
        points = [
          { name = "p_total", reference = "LD0/MMXU1.TotW.mag.f", fc = "MX", scale = 0.001 },
          { name = "breaker", reference = "LD0/XCBR1.Pos.stVal", fc = "ST" },
          { name = "relay1", reference = "LD0/GGIO1.SPCSO1.stVal", fc = "ST", writable = true, control = "sbo" },
        ]

        [[reports]]
        rcb = "LD0/LLN0.BR.brcb01"
        dataset = "LD0/LLN0.Measurements"
        integrity_period_ms = 60000
    "#;
    let c: Iec61850Config = toml::from_str(text).unwrap();
    assert_eq!(c.points.len(), 3);
    assert_eq!(c.points[2].control, Some(ControlModel::Sbo));
    assert_eq!(c.reports[0].integrity_period_ms, Some(60000));
    assert!(c.reports[0].data_change && c.reports[0].gi && !c.reports[0].data_update);
    let plan = c.validate(Path::new(".")).unwrap();
    assert_eq!(plan.address, "192.168.1.30:102");
    let again: Iec61850Config = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(again, c);
    let e = toml::from_str::<Iec61850Config>("name='a'\naddress='h'\npoll_ms=5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("poll_ms"), "{e}");
    let e = toml::from_str::<Iec61850Config>(
        "name='a'\naddress='h'\npoints=[{name='x',reference='LD0/A.B.c',fc='QQ'}]",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("QQ"), "{e}");
}

#[test]
fn points_file_is_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("points")).unwrap();
    std::fs::write(
        dir.path().join("points/bay.csv"),
        "name,reference,fc\np,LD0/MMXU1.TotW.mag.f,MX\n",
    )
    .unwrap();
    let mut c = dev(vec![PointConfig::new("hz", "LD0/MMXU1.Hz.mag.f", Fc::MX)]);
    c.points_file = Some("points/bay.csv".into());
    let plan = c.validate(dir.path()).unwrap();
    let names: Vec<_> = plan.points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p", "hz"]);
    c.points_file = Some("points/missing.toml".into());
    let e = c.validate(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("missing.toml") && e.contains("cannot read"),
        "{e}"
    );
}
