//! Unit tests: settings, and trace context through the real layers under a scoped subscriber.

use std::collections::BTreeMap;

use tracing::Dispatch;

use super::*;
use crate::settings::ConnectionString;

const KEY: &str = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The real subscriber, scoped to the caller (no connection string: nothing is exported).
fn scoped(pairs: &[(&str, &str)]) -> (Dispatch, TelemetryGuard) {
    subscriber("telemetry-test", &settings(pairs), LogOutput::Terminal).expect("subscriber")
}

/// `(trace id, span id, flags)` of a traceparent.
fn split(tp: &str) -> (String, String, String) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {tp}");
    assert_eq!(parts[0], "00");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

// --- sampling ---

#[test]
fn sampling_ratio_defaults_to_one_and_parses_fractions() {
    assert_eq!(sampling_ratio(&settings(&[])).unwrap(), 1.0);
    assert_eq!(
        sampling_ratio(&settings(&[(SAMPLING_RATIO_SETTING, "  ")])).unwrap(),
        1.0
    );
    assert_eq!(
        sampling_ratio(&settings(&[(SAMPLING_RATIO_SETTING, "0.25")])).unwrap(),
        0.25
    );
    assert_eq!(
        sampling_ratio(&settings(&[(SAMPLING_RATIO_SETTING, " 0 ")])).unwrap(),
        0.0
    );
    assert_eq!(
        sampling_ratio(&settings(&[(SAMPLING_RATIO_SETTING, "1")])).unwrap(),
        1.0
    );
}

#[test]
fn sampling_ratio_refuses_what_is_not_a_ratio() {
    for bad in ["abc", "-0.1", "1.5", "NaN", "inf", "25%"] {
        let err = sampling_ratio(&settings(&[(SAMPLING_RATIO_SETTING, bad)])).unwrap_err();
        assert!(matches!(err, Error::SamplingRatio { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains(SAMPLING_RATIO_SETTING), "{err}");
    }
    // And `init`'s builder reports it rather than guessing.
    let err = subscriber(
        "svc",
        &settings(&[(SAMPLING_RATIO_SETTING, "2")]),
        LogOutput::Terminal,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SamplingRatio { .. }));
}

// --- connection string ---

#[test]
fn connection_string_accepts_the_portal_forms() {
    let cs = ConnectionString::parse(&format!(
        "InstrumentationKey={KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;\
         LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=abc;"
    ))
    .unwrap();
    assert_eq!(
        cs.to_exporter_string(),
        format!(
            "InstrumentationKey={KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com"
        )
    );
    // `http://` is upgraded, as the exporter would do anyway.
    let cs = ConnectionString::parse(&format!(
        "InstrumentationKey={KEY};IngestionEndpoint=http://127.0.0.1:8443/"
    ))
    .unwrap();
    assert_eq!(cs.ingestion_endpoint(), "https://127.0.0.1:8443");
    // Keys are case-insensitive; a key alone uses the global endpoint.
    let cs = ConnectionString::parse(&format!(" instrumentationkey = {KEY} ")).unwrap();
    assert_eq!(cs.to_exporter_string(), format!("InstrumentationKey={KEY}"));
    // EndpointSuffix and Location build the regional endpoint.
    let cs = ConnectionString::parse(&format!(
        "Authorization=ikey;InstrumentationKey={KEY};EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2"
    ))
    .unwrap();
    assert_eq!(
        cs.to_exporter_string(),
        format!(
            "InstrumentationKey={KEY};IngestionEndpoint=https://chinaeast2.dc.applicationinsights.azure.cn"
        )
    );
}

#[test]
fn malformed_connection_strings_are_errors_that_never_show_the_key() {
    let cases = [
        format!("InstrumentationKey={KEY};garbage"),
        "IngestionEndpoint=https://example.com/".to_owned(),
        "InstrumentationKey=;IngestionEndpoint=https://example.com/".to_owned(),
        format!("InstrumentationKey={KEY};Authorization=AAD"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=example.com"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=ftp://example.com"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=https://example.com/?x=1"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=https://u:{KEY}@example.com"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=https://"),
        format!("InstrumentationKey={KEY};IngestionEndpoint=https://exa mple.com"),
        format!("InstrumentationKey={KEY}=x"),
        format!("={KEY}"),
    ];
    for raw in cases {
        let err = subscriber(
            "svc",
            &settings(&[(CONNECTION_STRING_SETTING, &raw)]),
            LogOutput::Terminal,
        )
        .expect_err(&raw);
        assert!(
            matches!(err, Error::ConnectionString { .. }),
            "{raw}: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(CONNECTION_STRING_SETTING), "{shown}");
        assert!(!shown.contains(KEY), "the key leaked: {shown}");
    }
}

#[test]
fn debug_output_never_shows_the_key() {
    let cs = ConnectionString::parse(&format!("InstrumentationKey={KEY}")).unwrap();
    assert!(!format!("{cs:?}").contains(KEY));
    let (_dispatch, guard) = subscriber(
        "svc",
        &settings(&[(
            CONNECTION_STRING_SETTING,
            &format!("InstrumentationKey={KEY};IngestionEndpoint=https://127.0.0.1:9/"),
        )]),
        LogOutput::Terminal,
    )
    .unwrap();
    assert!(guard.is_exporting());
    assert!(!format!("{guard:?}").contains(KEY));
}

#[test]
fn nothing_is_exported_without_a_connection_string() {
    for pairs in [&[][..], &[(CONNECTION_STRING_SETTING, "  ")][..]] {
        let (_dispatch, guard) = scoped(pairs);
        assert!(!guard.is_exporting());
    }
}

#[test]
fn a_blank_service_name_is_refused() {
    assert!(matches!(
        subscriber(" ", &settings(&[]), LogOutput::Terminal),
        Err(Error::ServiceName)
    ));
}

#[test]
fn an_invalid_log_filter_falls_back_instead_of_failing() {
    let (_dispatch, _guard) = scoped(&[(LOG_FILTER_SETTING, "info,[=")]);
}

#[test]
fn log_output_follows_the_handler_port_setting() {
    assert_eq!(
        LogOutput::from_settings(&settings(&[])),
        LogOutput::Terminal
    );
    assert_eq!(
        LogOutput::from_settings(&settings(&[(HANDLER_PORT_SETTING, "7072")])),
        LogOutput::FunctionsHost
    );
}

// --- trace context ---

#[test]
fn an_incoming_traceparent_is_continued_with_a_new_span_id() {
    let (dispatch, _guard) = scoped(&[]);
    let incoming = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = span_from_traceparent("FanOutEvent", Some(&incoming));
        let outbound = span.in_scope(current_traceparent).expect("a traceparent");
        let (trace, id, flags) = split(&outbound);
        assert_eq!(trace, TRACE_ID, "same trace");
        assert_ne!(id, PARENT_ID, "this span's own id, not the caller's");
        assert_ne!(id, "0000000000000000");
        assert_eq!(flags, "01", "the caller's sampling decision");

        // A child (e.g. an outbound call's span) has the same trace and yet another id.
        let child = span.in_scope(|| {
            let call = http_client_span("POST", "https://vendor.example/v1/messages?sig=x");
            call.in_scope(current_traceparent).expect("a traceparent")
        });
        let (child_trace, child_id, _) = split(&child);
        assert_eq!(child_trace, TRACE_ID);
        assert_ne!(child_id, id);

        // Rendering is stable within one span.
        assert_eq!(span.in_scope(current_traceparent).unwrap(), outbound);
    });
}

#[test]
fn an_unsampled_caller_stays_unsampled() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = span_from_traceparent("x", Some(&format!("00-{TRACE_ID}-{PARENT_ID}-00")));
        let (trace, _, flags) = split(&span.in_scope(current_traceparent).unwrap());
        assert_eq!(trace, TRACE_ID);
        assert_eq!(flags, "00");
    });
}

#[test]
fn a_missing_or_malformed_traceparent_starts_a_new_trace() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        for incoming in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
        ] {
            let span = span_from_traceparent("x", incoming);
            let (trace, _, flags) = split(&span.in_scope(current_traceparent).unwrap());
            assert_ne!(trace, TRACE_ID.to_owned(), "{incoming:?}");
            assert_ne!(trace, "0".repeat(32));
            assert_eq!(flags, "01", "default sampling records every new trace");
        }
    });
}

#[test]
fn sampling_ratio_zero_marks_new_traces_unsampled_but_keeps_sampled_callers() {
    let (dispatch, _guard) = scoped(&[(SAMPLING_RATIO_SETTING, "0")]);
    tracing::dispatcher::with_default(&dispatch, || {
        let root = span_from_traceparent("x", None);
        let (_, _, flags) = split(&root.in_scope(current_traceparent).unwrap());
        assert_eq!(flags, "00");
        let continued = span_from_traceparent("x", Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")));
        let (_, _, flags) = split(&continued.in_scope(current_traceparent).unwrap());
        assert_eq!(flags, "01", "parent-based");
    });
}

#[test]
fn outside_any_span_there_is_no_traceparent() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || assert_eq!(current_traceparent(), None));
    // Nor without the telemetry subscriber at all.
    let span = span_from_traceparent("x", Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")));
    assert_eq!(span.in_scope(current_traceparent), None);
}

#[test]
fn a_debug_span_inherits_the_context_of_its_traced_parent() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = span_from_traceparent("x", Some(&format!("00-{TRACE_ID}-{PARENT_ID}-01")));
        let _outer = span.enter();
        let outer = current_traceparent().unwrap();
        // Not seen by the OpenTelemetry layer (below info): the enclosing span's context.
        let inner = tracing::debug_span!("detail").in_scope(current_traceparent);
        assert_eq!(inner.as_deref(), Some(outer.as_str()));
    });
}

#[test]
fn the_server_span_continues_the_request_header_and_injection_writes_it_back() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        let request = ::http::Request::get("/api/orders/42?code=functionkey")
            .header(TRACEPARENT, format!("00-{TRACE_ID}-{PARENT_ID}-01"))
            .header(TRACESTATE, "congo=t61rcWkgMzE")
            .body(())
            .unwrap();
        let span = http_server_span(&request);
        let mut headers = ::http::HeaderMap::new();
        span.in_scope(|| inject_trace_headers(&mut headers));
        let (trace, id, _) = split(headers[TRACEPARENT].to_str().unwrap());
        assert_eq!(trace, TRACE_ID);
        assert_ne!(id, PARENT_ID);
        assert_eq!(headers[TRACESTATE], "congo=t61rcWkgMzE");
    });
}

#[test]
fn no_empty_tracestate_is_sent() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        let request = ::http::Request::get("/api/orders/42")
            .header(TRACEPARENT, format!("00-{TRACE_ID}-{PARENT_ID}-01"))
            .body(())
            .unwrap();
        let span = http_server_span(&request);
        let mut headers = ::http::HeaderMap::new();
        span.in_scope(|| inject_trace_headers(&mut headers));
        assert!(headers.contains_key(TRACEPARENT));
        assert!(
            !headers.contains_key(TRACESTATE),
            "no trace state, no header: {headers:?}"
        );
    });
}

#[test]
fn injection_outside_a_span_leaves_headers_alone() {
    let (dispatch, _guard) = scoped(&[]);
    tracing::dispatcher::with_default(&dispatch, || {
        let mut headers = ::http::HeaderMap::new();
        inject_trace_headers(&mut headers);
        assert!(headers.is_empty());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_exporter_can_be_built_and_dropped_on_a_runtime_thread() {
    // A blocking client built or dropped on a tokio worker panics; `subscriber` builds it on a
    // thread of its own and the batch processor's thread drops it.
    let (_dispatch, guard) = subscriber(
        "svc",
        &settings(&[(
            CONNECTION_STRING_SETTING,
            &format!("InstrumentationKey={KEY};IngestionEndpoint=https://127.0.0.1:9/"),
        )]),
        LogOutput::Terminal,
    )
    .unwrap();
    assert!(guard.is_exporting());
    drop(guard);
}
