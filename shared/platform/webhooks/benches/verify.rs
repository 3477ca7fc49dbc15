//! Verification cost per scheme on 1 KiB and 64 KiB bodies. Divide the median by the body size
//! in KiB for ns per KiB (divan also prints the throughput).
#![allow(missing_docs)]

#[path = "../tests/it/support.rs"]
mod support;

use divan::counter::BytesCount;
use support::{Kind, NOW, Signed, signed};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[1024, 64 * 1024];

fn body(kind: Kind, len: usize) -> Vec<u8> {
    match kind {
        // Form parameters of realistic shape.
        Kind::TwilioForm => {
            let mut b = b"MessageSid=SM1&MessageStatus=delivered&Body=".to_vec();
            b.resize(len, b'a');
            b
        }
        // One event in an array, padded inside a string.
        Kind::EventGridHeader => {
            let mut b = br#"[{"id":"e-1","eventType":"x","data":{"pad":""#.to_vec();
            b.resize(len - 4, b'a');
            b.extend_from_slice(br#""}}]"#);
            b
        }
        _ => {
            let mut b = br#"{"id":"evt_1","type":"thing.happened","pad":""#.to_vec();
            b.resize(len - 2, b'a');
            b.extend_from_slice(br#""}"#);
            b
        }
    }
}

fn fixture(kind: Kind, len: usize) -> Signed {
    let s = signed(kind, &body(kind, len), NOW);
    s.verify().expect("fixture verifies");
    s
}

macro_rules! scheme_bench {
    ($name:ident, $kind:expr) => {
        #[divan::bench(args = SIZES)]
        fn $name(bencher: divan::Bencher<'_, '_>, len: usize) {
            let s = fixture($kind, len);
            bencher
                .counter(BytesCount::new(len))
                .bench_local(|| divan::black_box(&s).verify().is_ok());
        }
    };
}

scheme_bench!(github, Kind::Github);
scheme_bench!(stripe, Kind::Stripe);
scheme_bench!(twilio_form, Kind::TwilioForm);
scheme_bench!(twilio_json, Kind::TwilioJson);
scheme_bench!(standard_v1, Kind::StandardV1);
scheme_bench!(standard_v1a_ed25519, Kind::StandardV1a);
scheme_bench!(slack, Kind::Slack);
scheme_bench!(shopify, Kind::Shopify);
scheme_bench!(azure_devops_basic, Kind::AdoBasic);
scheme_bench!(event_grid, Kind::EventGridHeader);
scheme_bench!(generic_hmac, Kind::Generic);
scheme_bench!(sendgrid_p256, Kind::SendGrid);
