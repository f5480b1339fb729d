//! Structured and batched mode: any bytes as a single event and as a batch.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = fanout::ingress::structured::parse_one(data) {
        // What is accepted must render and parse back to the same event.
        let rendered = event.to_structured_json();
        let again = fanout::ingress::structured::parse_one(&rendered).expect("a rendered event parses");
        assert_eq!(again, event);
    }
    let _ = fanout::ingress::structured::parse_batch(data, 1000);
});
