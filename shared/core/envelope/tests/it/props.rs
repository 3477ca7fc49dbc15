use chrono::{DateTime, Utc};
use envelope::{Envelope, ExtensionValue, RawValue, Timestamp, TraceParent};
use proptest::prelude::*;
use proptest::sample::Index;

const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "tenantid",
    "traceparent",
    "correlationid",
    "causationid",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum DataChoice {
    None,
    Json(String),
    Binary(Vec<u8>),
}

fn data() -> impl Strategy<Value = DataChoice> {
    prop_oneof![
        Just(DataChoice::None),
        (json_value(), any::<bool>()).prop_map(|(v, pretty)| DataChoice::Json(if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        })),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(DataChoice::Binary),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    let from_datetime = (0i64..253_402_300_799, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
        Timestamp::from(DateTime::<Utc>::from_timestamp(secs, nanos).unwrap())
    });
    // Written by some other producer: any precision, any offset.
    let parsed = (
        86_400i64..253_402_214_400,
        0u32..1_000_000_000,
        0usize..=9,
        -1439i32..=1439,
    )
        .prop_map(|(secs, nanos, digits, offset_minutes)| {
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let t = DateTime::<Utc>::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&offset);
            let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            if digits > 0 {
                s.push('.');
                s.push_str(&format!("{nanos:09}")[..digits]);
            }
            s.push_str(&t.format("%:z").to_string());
            Timestamp::parse(&s).unwrap()
        });
    prop_oneof![from_datetime, parsed]
}

fn traceparent() -> impl Strategy<Value = TraceParent> {
    (any::<u128>(), any::<u64>(), any::<u8>()).prop_map(|(t, p, f)| {
        let (t, p) = (t.max(1), p.max(1));
        TraceParent::parse(&format!("00-{t:032x}-{p:016x}-{f:02x}")).unwrap()
    })
}

fn extension_value() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        any::<String>().prop_map(ExtensionValue::String),
        any::<i32>().prop_map(ExtensionValue::Integer),
        any::<bool>().prop_map(ExtensionValue::Boolean),
    ]
}

fn non_empty() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-empty", |s| !s.is_empty())
}

prop_compose! {
    fn envelope()(
        id in prop_oneof![
            "[!-~]{1,128}",
            "\\PC{1,64}",
        ],
        source in "[A-Za-z0-9/._~:?#@!$&'()*+,;=-]{1,40}",
        event_type in non_empty(),
        tenant in non_empty(),
        subject in proptest::option::of(non_empty()),
        time in timestamp(),
        datacontenttype in proptest::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("text/plain; charset=utf-8".to_owned()),
            Just("application/vnd.github+json".to_owned()),
        ]),
        dataschema in proptest::option::of("https://[a-z]{1,10}\\.example/[a-z0-9/]{0,20}"),
        tp in proptest::option::of(traceparent()),
        correlation in proptest::option::of(non_empty()),
        causation in proptest::option::of(non_empty()),
        extensions in prop::collection::btree_map(
            "[a-z0-9]{1,20}".prop_filter("not reserved", |n| !RESERVED.contains(&n.as_str())),
            extension_value(),
            0..4,
        ),
        data in data(),
    ) -> Envelope {
        let mut b = Envelope::builder(source, event_type, tenant).id(id).time(time);
        if let Some(v) = subject { b = b.subject(v); }
        if let Some(v) = datacontenttype { b = b.datacontenttype(v); }
        if let Some(v) = dataschema { b = b.dataschema(v); }
        if let Some(v) = tp { b = b.traceparent(v); }
        if let Some(v) = correlation { b = b.correlation_id(v); }
        if let Some(v) = causation { b = b.causation_id(v); }
        for (name, value) in extensions { b = b.extension(name, value); }
        match data {
            DataChoice::None => b.build(),
            DataChoice::Json(text) => b.raw_json_data(RawValue::from_string(text).unwrap()),
            DataChoice::Binary(bytes) => b.binary_data(bytes),
        }
        .unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&bytes);
    }

    #[test]
    fn arbitrary_json_objects_never_panic(
        members in prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(RESERVED).prop_map(str::to_owned),
                Just("data_base64".to_owned()),
                any::<String>(),
            ],
            prop_oneof![
                json_value(),
                Just(serde_json::Value::from("1.0")),
                Just(serde_json::Value::from("AAEC")),
                Just(serde_json::Value::from("2024-05-01T12:30:05Z")),
                Just(serde_json::Value::from("/integration/github")),
            ],
            0..16,
        )
    ) {
        let object = serde_json::Value::Object(members.into_iter().collect());
        if let Ok(e) = Envelope::parse(&serde_json::to_vec(&object).unwrap()) {
            prop_assert_eq!(Envelope::parse(&e.to_vec()).unwrap(), e);
        }
    }

    #[test]
    fn valid_envelopes_round_trip(e in envelope()) {
        let bytes = e.to_vec();
        let parsed = Envelope::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &e);
        prop_assert_eq!(parsed.to_vec(), bytes.clone());
        prop_assert_eq!(parsed.data_raw().map(RawValue::get), e.data_raw().map(RawValue::get));
        prop_assert_eq!(parsed.data_bytes(), e.data_bytes());
        // serde's Serialize agrees with to_vec byte for byte.
        prop_assert_eq!(serde_json::to_vec(&e).unwrap(), bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        e in envelope(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = e.to_vec();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if let Ok(parsed) = Envelope::parse(&bytes) {
            prop_assert_eq!(Envelope::parse(&parsed.to_vec()).unwrap(), parsed);
        }
    }
}

#[test]
fn extension_map_is_sorted_by_name() {
    let e = Envelope::builder("/s", "t", "x")
        .extension("b", 1)
        .extension("a", 2)
        .build()
        .unwrap();
    let names: Vec<&String> = e.extensions().keys().collect();
    assert_eq!(names, ["a", "b"]);
}
