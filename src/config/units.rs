//! Human-readable durations (`15s`, `1h 30m`, `500ms`) and sizes (`1MiB`, `64 MB`) in config.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    humantime::parse_duration(text.trim())
        .map(Some)
        .map_err(|error| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({error}); write e.g. 500ms, 15s, 1h"
            ))
        })
}

pub fn deserialize_byte_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Option::<Size>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Size::Bytes(bytes)) => Ok(Some(bytes)),
        Some(Size::Text(text)) => text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| Some(size.as_u64()))
            .map_err(|error| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?} ({error}); write e.g. 512KiB, 1MiB"
                ))
            }),
    }
}
