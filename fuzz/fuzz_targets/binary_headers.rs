//! Binary-mode decoding: arbitrary `ce-*` headers (names, values with any bytes and
//! percent-encoding), a content type and a body.
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Lines of "name:value"; the part after the first empty line is the body.
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut content_type = None;
    for line in head.split(|byte| *byte == b'\n') {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        if name == "content-type" {
            content_type = value.to_str().ok().map(str::to_owned);
        }
        headers.append(name, value);
    }
    let _ = fanout::ingress::binary::parse(&headers, content_type.as_deref(), body);
});
