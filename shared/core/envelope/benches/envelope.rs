//! Parse and serialise an envelope carrying 1 KiB of JSON data: the per-message cost on every bus
//! hop. Run with `cargo bench -p envelope`.

use divan::{Bencher, black_box};
use envelope::{Envelope, RawValue, TraceParent};

fn main() {
    divan::main();
}

/// A realistic platform event whose `data` is about 1 KiB of JSON.
fn sample() -> Vec<u8> {
    let items: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"name":"item-{i:02}","value":{i},"ok":true}}"#))
        .collect();
    let head = format!(
        r#"{{"runId":"run_01J9Z8","status":"succeeded","items":[{}],"note":""#,
        items.join(",")
    );
    // Pad the note so the data is exactly 1 KiB.
    let data = format!("{head}{}\"}}", "x".repeat(1024 - head.len() - 2));
    assert_eq!(data.len(), 1024);
    let data = RawValue::from_string(data).unwrap();
    Envelope::builder(
        "/integration/github",
        "connectsoft.integration.run.completed.v1",
        "tenant-42",
    )
    .subject("run_01J9Z8")
    .traceparent(TraceParent::new_root())
    .correlation_id("corr_01J9Z8")
    .raw_json_data(data)
    .unwrap()
    .to_vec()
}

#[divan::bench]
fn parse(bencher: Bencher<'_, '_>) {
    let bytes = sample();
    bencher
        .counter(divan::counter::BytesCount::of_slice(&bytes))
        .bench(|| Envelope::parse(black_box(&bytes)).unwrap());
}

#[divan::bench]
fn to_vec(bencher: Bencher<'_, '_>) {
    let envelope = Envelope::parse(&sample()).unwrap();
    bencher.bench(|| black_box(&envelope).to_vec());
}

#[divan::bench]
fn serde_json_to_vec(bencher: Bencher<'_, '_>) {
    let envelope = Envelope::parse(&sample()).unwrap();
    bencher.bench(|| serde_json::to_vec(black_box(&envelope)).unwrap());
}

#[divan::bench]
fn parse_then_to_vec(bencher: Bencher<'_, '_>) {
    let bytes = sample();
    bencher.bench(|| Envelope::parse(black_box(&bytes)).unwrap().to_vec());
}
