use super::*;

fn v(scheme: Scheme, text: &str) -> AnyVersion {
    AnyVersion::parse(scheme, text).unwrap_or_else(|e| panic!("{e}"))
}

fn range(scheme: Scheme, text: &str) -> AnyRange {
    AnyRange::parse(scheme, text).unwrap_or_else(|e| panic!("{e}"))
}

fn matches(scheme: Scheme, r: &str, version: &str) -> bool {
    range(scheme, r).matches(&v(scheme, version)).unwrap()
}

fn range_error(scheme: Scheme, text: &str) -> String {
    AnyRange::parse(scheme, text).unwrap_err().to_string()
}

#[test]
fn schemes_by_name() {
    for scheme in Scheme::ALL {
        assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        assert_eq!(
            serde_json::to_string(&scheme).unwrap(),
            format!("\"{scheme}\"")
        );
        let back: Scheme = serde_json::from_str(&format!("\"{scheme}\"")).unwrap();
        assert_eq!(back, scheme);
    }
    assert_eq!(
        "debian".parse::<Scheme>().unwrap_err().to_string(),
        "`debian` is not a version scheme (one of: deb, rpm, apk, semver, vendor)"
    );
    let e = serde_json::from_str::<Scheme>("\"Deb\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`deb`") && e.contains("`vendor`"), "{e}");
}

#[test]
fn one_text_many_orders() {
    // The example: `+` starts build metadata in the vendor rule, not in deb.
    let (a, b) = ("2.36-9+deb12u4", "2.36-9+deb12u7");
    assert_eq!(
        v(Scheme::Vendor, a).try_cmp(&v(Scheme::Vendor, b)),
        Ok(Ordering::Equal)
    );
    assert_eq!(
        v(Scheme::Deb, a).try_cmp(&v(Scheme::Deb, b)),
        Ok(Ordering::Less)
    );
    let (a, b) = ("3.0.15-1~deb12u1", "3.0.15-1");
    assert_eq!(
        v(Scheme::Deb, a).try_cmp(&v(Scheme::Deb, b)),
        Ok(Ordering::Less)
    );
    assert_eq!(
        v(Scheme::Rpm, "1.0~rc1").try_cmp(&v(Scheme::Rpm, "1.0")),
        Ok(Ordering::Less)
    );
    assert_eq!(
        v(Scheme::Apk, "1.0_rc1").try_cmp(&v(Scheme::Apk, "1.0")),
        Ok(Ordering::Less)
    );
    assert_eq!(
        v(Scheme::Semver, "1.0.0+a").try_cmp(&v(Scheme::Semver, "1.0.0+b")),
        Ok(Ordering::Equal)
    );
}

#[test]
fn two_schemes_have_no_order() {
    let deb = v(Scheme::Deb, "1.0-1");
    let rpm = v(Scheme::Rpm, "1.0-1");
    let e = deb.try_cmp(&rpm).unwrap_err();
    assert_eq!(
        e,
        SchemeMismatch {
            expected: Scheme::Deb,
            found: Scheme::Rpm,
            text: "1.0-1".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "cannot compare rpm version `1.0-1` with deb versions: versions of different schemes have no order"
    );
    assert!(range(Scheme::Deb, ">= 1.0").matches(&rpm).is_err());
    assert!(AnyRange::any(Scheme::Vendor).matches(&deb).is_err());
    assert_eq!(AnyRange::any(Scheme::Deb).matches(&deb), Ok(true));
}

#[test]
fn errors_name_the_scheme_and_the_text() {
    let e = |scheme, text| AnyVersion::parse(scheme, text).unwrap_err().to_string();
    assert_eq!(
        e(Scheme::Deb, "1:abc"),
        "`1:abc` is not a deb version: the upstream version must start with a digit"
    );
    assert!(e(Scheme::Rpm, "1.0-2-3").starts_with("`1.0-2-3` is not an rpm version: "));
    assert!(e(Scheme::Apk, "1.0-2").starts_with("`1.0-2` is not an apk version: "));
    assert!(e(Scheme::Semver, "1.2").starts_with("`1.2` is not a semver version: "));
    assert_eq!(
        e(Scheme::Vendor, "latest"),
        "`latest` is not a vendor version: it does not start with a number"
    );
}

#[test]
fn deb_ranges() {
    let r = ">= 2.36-9+deb12u4, < 2.36-9+deb12u7";
    assert!(matches(Scheme::Deb, r, "2.36-9+deb12u4"));
    assert!(matches(Scheme::Deb, r, "2.36-9+deb12u6"));
    assert!(!matches(Scheme::Deb, r, "2.36-9+deb12u7"));
    assert!(!matches(Scheme::Deb, r, "2.36-9"));
    assert!(matches(Scheme::Deb, "<3.0.15-1", "3.0.15-1~deb12u1"));
    assert!(matches(Scheme::Deb, "2:9.0.1378-2", "2:9.0.1378-2"));
    assert!(matches(Scheme::Deb, "=1.0", "1.0-0"), "dpkg's equality");
    assert!(matches(Scheme::Deb, "<1.0 || >=2:0", "2:0.1"));
    assert!(matches(Scheme::Deb, "", "0"));
    assert!(matches(Scheme::Deb, "*", "0"));
    assert_eq!(range(Scheme::Deb, "").as_str(), "*");
    assert_eq!(range(Scheme::Deb, " >=1.0 ").as_str(), ">=1.0");
    assert_eq!(range(Scheme::Deb, ">=1.0").scheme(), Scheme::Deb);
}

#[test]
fn rpm_apk_semver_ranges() {
    assert!(matches(
        Scheme::Rpm,
        ">= 1:0.17-64.el7, < 1:0.18",
        "1:0.17-64.el7_9"
    ));
    assert!(!matches(
        Scheme::Rpm,
        ">= 1:0.17-64.el7, < 1:0.18",
        "0.19-1"
    ));
    assert!(matches(Scheme::Rpm, "< 1.0", "1.0~rc1"));
    assert!(matches(Scheme::Rpm, "> 1.0", "1.0^git1"));
    assert!(
        matches(Scheme::Rpm, "= ~1", "~1"),
        "an rpm version may start with `~`"
    );
    assert!(matches(Scheme::Apk, ">=1.2.3-r0, <1.2.4", "1.2.3-r5"));
    assert!(
        matches(Scheme::Apk, ">=1.2.3-r0, <1.2.4", "1.2.4_rc1"),
        "a pre-release of the bound is below it"
    );
    assert!(matches(Scheme::Semver, "^1.2.3", "1.9.0"));
    assert!(
        !matches(Scheme::Semver, "^1.2.3", "2.0.0-rc.1"),
        "a pre-release of the next major is out"
    );
    assert!(matches(Scheme::Semver, "~1.2.3", "1.2.9"));
    assert!(!matches(Scheme::Semver, "~1.2.3", "1.3.0"));
    assert!(matches(Scheme::Semver, "^0.0.3", "0.0.3+b"));
    assert!(
        matches(Scheme::Semver, "=1.0.0+a", "1.0.0+b"),
        "build metadata is ignored"
    );
    assert!(matches(Scheme::Vendor, "^1.2", "1.9.9"));
    assert!(matches(
        Scheme::Vendor,
        ">= 2.36-9+deb12u4, < 2.37",
        "2.36-9+deb12u7"
    ));
}

#[test]
fn range_errors() {
    assert_eq!(
        range_error(Scheme::Deb, ">= 1:abc"),
        "`>= 1:abc` is not a deb version range: `1:abc` is not a deb version: the upstream version must start with a digit"
    );
    assert!(
        range_error(Scheme::Deb, "~1.2").contains("`~` ranges are for semver and vendor versions")
    );
    assert!(
        range_error(Scheme::Rpm, "^1.2").contains("`^` ranges are for semver and vendor versions")
    );
    assert!(range_error(Scheme::Apk, "~3.6").contains("`~` ranges"));
    assert!(range_error(Scheme::Deb, "<< 1.0").contains("Debian's `<<` is written `<` here"));
    assert!(range_error(Scheme::Deb, "!= 1.0").contains("unknown operator `!=`"));
    assert!(range_error(Scheme::Deb, "=> 1.0").contains("unknown operator `=>`"));
    assert!(range_error(Scheme::Rpm, ">=1.0,,<2").contains("an empty comparator"));
    assert!(range_error(Scheme::Semver, "^1.2").contains("`1.2` is not a semver version"));
    assert!(
        range_error(Scheme::Vendor, ">= latest")
            .starts_with("`>= latest` is not a vendor version range: ")
    );
}
