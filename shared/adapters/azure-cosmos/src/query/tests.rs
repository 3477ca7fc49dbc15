use serde_json::json;

use super::*;

const NOW: i64 = 1_764_230_400_000;

fn params(sql: &Sql) -> Vec<(&str, &Value)> {
    sql.parameters
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .collect()
}

#[test]
fn a_partition_query_is_one_parameterized_statement() {
    let q = Query::partition("acme")
        .filter("docType", "connection")
        .filter("n", 7)
        .filter("flag", true)
        .limit(25);
    let sql = build("crm", &q, NOW).unwrap();
    assert_eq!(
        sql.text,
        "SELECT TOP 26 * FROM c WHERE c.tenantId = @pk AND c.body.docType = @f0 AND \
         c.body.n = @f1 AND c.body.flag = @f2 AND (NOT IS_DEFINED(c.expiresAt) OR \
         c.expiresAt > @now) ORDER BY c.sortKey"
    );
    assert_eq!(
        params(&sql),
        vec![
            ("@pk", &json!("acme")),
            ("@f0", &json!("connection")),
            ("@f1", &json!(7)),
            ("@f2", &json!(true)),
            ("@now", &json!(NOW)),
        ]
    );
    assert_eq!(sql.page, 25);
}

#[test]
fn cross_partition_queries_and_null_filters() {
    let sql = build(
        "crm",
        &Query::cross_partition().filter("closedAt", Value::Null),
        NOW,
    )
    .unwrap();
    assert_eq!(
        sql.text,
        "SELECT TOP 101 * FROM c WHERE (NOT IS_DEFINED(c.body.closedAt) OR \
         IS_NULL(c.body.closedAt)) AND (NOT IS_DEFINED(c.expiresAt) OR c.expiresAt > @now) \
         ORDER BY c.sortKey"
    );
    assert_eq!(params(&sql), vec![("@now", &json!(NOW))]);
}

#[test]
fn page_sizes_have_a_default_and_a_ceiling() {
    assert_eq!(
        build("c", &Query::partition("p"), NOW).unwrap().page,
        DEFAULT_PAGE
    );
    let huge = build("c", &Query::partition("p").limit(1_000_000), NOW).unwrap();
    assert_eq!(huge.page, MAX_PAGE);
    assert!(huge.text.starts_with("SELECT TOP 1001 "));
}

#[test]
fn nothing_the_caller_passes_becomes_query_syntax() {
    for field in ["x') OR 1=1 --", "a.b", "c[\"x\"]", "", "1abc"] {
        assert!(
            matches!(
                build("c", &Query::partition("p").filter(field, 1), NOW),
                Err(PortError::Invalid(_))
            ),
            "{field:?}"
        );
    }
    let sneaky = "x\" OR c.tenantId != \"p";
    let sql = build("c", &Query::partition("p").filter("name", sneaky), NOW).unwrap();
    assert!(!sql.text.contains(sneaky), "values stay parameters");
    for value in [json!([1]), json!({"a": 1})] {
        assert!(matches!(
            build("c", &Query::partition("p").filter("f", value), NOW),
            Err(PortError::Invalid(_))
        ));
    }
}

#[test]
fn continuations_resume_after_their_key_and_only_their_query() {
    let q = Query::partition("p").filter("kind", "a").limit(2);
    let first = build("c", &q, NOW).unwrap();
    let token = encode_continuation(&first.fingerprint, "p/doc-0001");
    // Another page size is the same query.
    let next = build("c", &q.clone().limit(50).after(Some(token.clone())), NOW).unwrap();
    assert!(
        next.text
            .contains("AND c.sortKey > @after ORDER BY c.sortKey"),
        "{}",
        next.text
    );
    assert!(params(&next).contains(&("@after", &json!("p/doc-0001"))));

    for other in [
        ("c", Query::partition("p").filter("kind", "b")),
        ("c", Query::partition("q").filter("kind", "a")),
        ("c", Query::cross_partition().filter("kind", "a")),
        ("d", Query::partition("p").filter("kind", "a")),
    ] {
        let refused = build(other.0, &other.1.after(Some(token.clone())), NOW);
        assert!(
            matches!(&refused, Err(PortError::Invalid(m)) if m.contains("another query")),
            "{refused:?}"
        );
    }
    let forged = |json: &str| URL_SAFE_NO_PAD.encode(json);
    for bad in [
        "%%%".to_owned(),
        forged("not json"),
        forged(r#"{"v":2,"q":"x","after":"p/a"}"#),
        forged(r#"{"after":"p/a"}"#),
    ] {
        let refused = build("c", &q.clone().after(Some(bad.clone())), NOW);
        assert!(
            matches!(&refused, Err(PortError::Invalid(m)) if m.contains("malformed")),
            "{bad}: {refused:?}"
        );
    }
}
