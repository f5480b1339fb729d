//! Filter evaluation: the input's first line is a filters list (YAML flow syntax, any dialect:
//! exact, prefix, suffix, all, any, not, data, sql); the rest is a structured event. A filter that
//! compiles is evaluated against the event, and `explain` must agree with `matches`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (filters, event) = text.split_once('\n').unwrap_or((text, ""));
    if filters.contains('\n') || filters.contains('\r') {
        return;
    }
    let yaml = format!("subscribers:\n  a: {{ url: 'http://example.com/' }}\nroutes:\n  - name: r\n    to: [a]\n    filters: {filters}\n");
    let Ok(config) = fanout::config::parse(&yaml, std::path::Path::new("routes.yaml"), &|_| None) else {
        return;
    };
    let Ok(event) = fanout::ingress::structured::parse_one(event.as_bytes()) else {
        return;
    };
    if let Some(filter) = &config.routes[0].filter {
        let matched = filter.matches(&event);
        let mut reasons = Vec::new();
        let explained = filter.explain(&event, 0, &mut reasons);
        assert_eq!(matched, explained, "explain and matches disagree: {reasons:?}");
    }
});
