//! ASP.NET route templates as the host matches them (§3.1).

use std::collections::BTreeMap;

use functions_runtime::route::RouteTemplate;

fn t(template: &str) -> RouteTemplate {
    RouteTemplate::parse(template).unwrap_or_else(|e| panic!("{template:?} should parse: {e}"))
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn literals_are_case_insensitive() {
    let r = t("runs/latest");
    assert_eq!(r.matches("runs/latest"), Some(params(&[])));
    assert_eq!(r.matches("RUNS/Latest"), Some(params(&[])));
    // Leading and trailing slashes do not matter.
    assert_eq!(r.matches("/runs/latest/"), Some(params(&[])));
    assert_eq!(t("/runs/latest/").matches("runs/latest"), Some(params(&[])));
    assert_eq!(r.matches("runs/latest2"), None);
    assert_eq!(r.matches("runs"), None);
    assert_eq!(r.matches("runs/latest/extra"), None);
    assert_eq!(r.matches(""), None);
}

#[test]
fn parameters() {
    let r = t("runs/{runId}/steps/{step}");
    assert_eq!(
        r.matches("runs/r1/steps/2"),
        Some(params(&[("runId", "r1"), ("step", "2")]))
    );
    assert_eq!(
        r.matches("Runs/R1/STEPS/x"),
        Some(params(&[("runId", "R1"), ("step", "x")]))
    );
    assert_eq!(r.matches("runs/r1/steps"), None);
    assert_eq!(r.matches("runs/r1/other/2"), None);
    assert_eq!(r.matches("runs/r1/steps/2/3"), None);
}

#[test]
fn int_constraint() {
    let r = t("items/{id:int}");
    assert_eq!(r.matches("items/42"), Some(params(&[("id", "42")])));
    assert_eq!(r.matches("items/-7"), Some(params(&[("id", "-7")])));
    assert_eq!(r.matches("items/abc"), None);
    assert_eq!(r.matches("items/4.2"), None);
    assert_eq!(
        r.matches("items/2147483647"),
        Some(params(&[("id", "2147483647")]))
    );
    // `int` is a 32-bit integer in ASP.NET (`int.TryParse`); `long` is 64-bit.
    assert_eq!(r.matches("items/3000000000"), None);
    assert_eq!(
        t("items/{id:long}").matches("items/3000000000"),
        Some(params(&[("id", "3000000000")]))
    );
    assert_eq!(
        t("items/{id:long}").matches("items/99999999999999999999"),
        None
    );
    assert_eq!(r.matches("items"), None);
    // Constraint names are case-insensitive.
    assert_eq!(t("items/{id:INT}").matches("items/abc"), None);
}

#[test]
fn guid_constraint() {
    let r = t("runs/{runId:guid}");
    let g = "0f4737ff-5b49-4e1d-9639-e51aaca81bc6";
    assert_eq!(
        r.matches(&format!("runs/{g}")),
        Some(params(&[("runId", g)]))
    );
    assert_eq!(
        r.matches(&format!("runs/{}", g.to_uppercase())),
        Some(params(&[("runId", &g.to_uppercase())]))
    );
    assert_eq!(r.matches("runs/not-a-guid"), None);
    assert_eq!(r.matches("runs/0f4737ff-5b49-4e1d-9639"), None);
}

#[test]
fn other_constraints() {
    assert!(t("x/{a:alpha}").matches("x/abc").is_some());
    assert!(t("x/{a:alpha}").matches("x/ab1").is_none());
    assert!(t("x/{a:bool}").matches("x/True").is_some());
    assert!(t("x/{a:bool}").matches("x/yes").is_none());
    assert!(t("x/{a:double}").matches("x/1.5").is_some());
    assert!(t("x/{a:double}").matches("x/abc").is_none());
}

#[test]
fn optional_parameter() {
    let r = t("list/{page?}");
    assert_eq!(r.matches("list"), Some(params(&[])));
    assert_eq!(r.matches("list/"), Some(params(&[])));
    assert_eq!(r.matches("list/3"), Some(params(&[("page", "3")])));
    assert_eq!(r.matches("list/3/4"), None);
    assert_eq!(r.matches("other"), None);
    let r = t("list/{page:int?}");
    assert_eq!(r.matches("list/3"), Some(params(&[("page", "3")])));
    assert_eq!(r.matches("list/x"), None);
    assert_eq!(r.matches("list"), Some(params(&[])));
}

#[test]
fn catch_all() {
    let r = t("files/{*path}");
    assert_eq!(
        r.matches("files/a/b/c.txt"),
        Some(params(&[("path", "a/b/c.txt")]))
    );
    assert_eq!(r.matches("files/one"), Some(params(&[("path", "one")])));
    // Nothing to catch: the parameter is absent (the host sends it as null).
    assert_eq!(r.matches("files"), Some(params(&[])));
    assert_eq!(r.matches("FILES/x"), Some(params(&[("path", "x")])));
    assert_eq!(r.matches("other/x"), None);
}

#[test]
fn percent_decoding() {
    let r = t("users/{name}");
    assert_eq!(
        r.matches("users/J%C3%BCrgen"),
        Some(params(&[("name", "J\u{fc}rgen")]))
    );
    assert_eq!(r.matches("users/a%20b"), Some(params(&[("name", "a b")])));
    assert_eq!(r.matches("users/100%25"), Some(params(&[("name", "100%")])));
    assert_eq!(r.matches("users/%7Bx%7d"), Some(params(&[("name", "{x}")])));
    // Malformed escapes and invalid UTF-8 do not match.
    assert_eq!(r.matches("users/%"), None);
    assert_eq!(r.matches("users/%4"), None);
    assert_eq!(r.matches("users/%zz"), None);
    assert_eq!(r.matches("users/%+41"), None);
    assert_eq!(r.matches("users/%FF"), None);
    assert_eq!(r.matches("users/%C3%A"), None);
    // Constraints apply to the decoded value.
    assert_eq!(
        t("items/{id:int}").matches("items/%34%32"),
        Some(params(&[("id", "42")]))
    );
}

#[test]
fn invalid_templates() {
    for template in [
        "",
        "/",
        "a//b",
        "{*rest}/more",
        "x{id}",
        "{id}x",
        "{id?}/literal",
        "{a?}/{b}",
        "{}",
        "{*}",
        "{a-b}",
        "{{a}",
    ] {
        assert!(
            RouteTemplate::parse(template).is_err(),
            "{template:?} should be refused"
        );
    }
    // Several optional segments at the end are fine.
    assert!(RouteTemplate::parse("a/{b?}/{c?}").is_ok());
    assert!(RouteTemplate::parse("a/{b?}/{*rest}").is_ok());
}

#[test]
fn precedence_orders_like_asp_net() {
    let templates = ["items/{*rest}", "items/{id}", "items/new", "items/{id:int}"];
    let mut parsed: Vec<(&str, RouteTemplate)> = templates.iter().map(|s| (*s, t(s))).collect();
    parsed.sort_by_key(|(_, r)| std::cmp::Reverse(r.precedence()));
    let order: Vec<&str> = parsed.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        order,
        ["items/new", "items/{id:int}", "items/{id}", "items/{*rest}"]
    );

    // The most specific template that matches wins.
    let pick = |path: &str| {
        parsed
            .iter()
            .find(|(_, r)| r.matches(path).is_some())
            .map(|(s, _)| *s)
    };
    assert_eq!(pick("items/new"), Some("items/new"));
    assert_eq!(pick("items/7"), Some("items/{id:int}"));
    assert_eq!(pick("items/seven"), Some("items/{id}"));
    assert_eq!(pick("items/a/b"), Some("items/{*rest}"));
    assert_eq!(pick("other"), None);

    // Earlier segments weigh more than later ones.
    assert!(t("a/{x}").precedence() > t("{x}/a").precedence());
}
