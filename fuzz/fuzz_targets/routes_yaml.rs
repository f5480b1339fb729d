//! Loading routes.yaml: any text through interpolation, YAML parsing, location of errors and
//! compilation (filters, CESQL, sources, keys, outbound). Files named in it are not created, so
//! paths fail as config errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "SET").then(|| "value".to_owned());
    match fanout::config::parse(text, std::path::Path::new("/nonexistent/routes.yaml"), &env) {
        Ok(config) => {
            let _ = fanout::config::summary::summary(&config);
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
