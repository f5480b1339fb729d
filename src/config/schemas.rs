//! `schemas:`: JSON Schemas for the `data` of event types, read and compiled when the routes file
//! is loaded (so `fanout check` compiles every one). By default each `<type>.json` in the
//! `schemas/` folder beside the routes file is the schema of that type; `types:` adds explicit
//! entries, e.g. for types that cannot be file names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::compile::Errors;
use super::raw::RawSchemas;

/// The folder read when `schemas.dir` is not given (a missing default folder means no schemas).
pub const DEFAULT_DIR: &str = "schemas";

/// Compiled schemas by event type.
#[derive(Clone, Debug, Default)]
pub struct Schemas {
    by_type: BTreeMap<String, Arc<Schema>>,
}

/// One compiled schema and the file it came from.
#[derive(Debug)]
pub struct Schema {
    pub file: PathBuf,
    /// SHA-256 of the file as it was read, so that a reload can tell a changed schema without
    /// reading the file again.
    pub digest: [u8; 32],
    pub validator: jsonschema::Validator,
}

/// One way an event's data breaks its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the data (empty: the data as a whole).
    pub pointer: String,
    pub reason: String,
}

/// Errors reported at most per event (the first ones, in document order).
pub const MAX_VIOLATIONS: usize = 20;

impl Schemas {
    pub fn get(&self, ty: &str) -> Option<&Arc<Schema>> {
        self.by_type.get(ty)
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// (type, file) of every schema, for `fanout check`.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.iter().map(|(ty, schema)| (ty, schema.file.as_path()))
    }

    /// Every schema by type.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Schema)> {
        self.by_type
            .iter()
            .map(|(ty, schema)| (ty.as_str(), schema.as_ref()))
    }
}

impl Schema {
    /// Every violation of `data` (at most [`MAX_VIOLATIONS`]); empty when it is valid.
    pub fn violations(&self, data: &serde_json::Value) -> Vec<Violation> {
        self.validator
            .iter_errors(data)
            .take(MAX_VIOLATIONS)
            .map(|error| Violation {
                pointer: error.instance_path().as_str().to_owned(),
                reason: error.to_string(),
            })
            .collect()
    }
}

/// Reads and compiles the schemas; `routes_file` anchors relative paths.
pub(super) fn compile(raw: RawSchemas, routes_file: &Path, errors: &mut Errors) -> Schemas {
    let base = routes_file.parent().unwrap_or(Path::new("."));
    let mut by_type = BTreeMap::new();
    let explicit_dir = raw.dir.is_some();
    let dir = base.join(raw.dir.unwrap_or_else(|| DEFAULT_DIR.into()));
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| {
                    path.extension()
                        .is_some_and(|extension| extension == "json")
                })
                .collect();
            files.sort();
            for file in files {
                let Some(ty) = file.file_stem().and_then(|stem| stem.to_str()) else {
                    continue;
                };
                let ty = ty.to_owned();
                if let Some(schema) = load(&file, "schemas.dir", errors) {
                    by_type.insert(ty, Arc::new(schema));
                }
            }
        }
        Err(error) if explicit_dir || error.kind() != std::io::ErrorKind::NotFound => {
            errors.push((
                "schemas.dir".into(),
                format!("cannot read the folder {}: {error}", dir.display()),
            ));
        }
        Err(_) => {}
    }
    for (ty, file) in raw.types {
        let key = format!("schemas.types.{ty}");
        if ty.is_empty() {
            errors.push((key, "the event type must not be empty".into()));
            continue;
        }
        if let Some(schema) = load(&base.join(file), &key, errors) {
            by_type.insert(ty, Arc::new(schema));
        }
    }
    Schemas { by_type }
}

fn load(file: &Path, key: &str, errors: &mut Errors) -> Option<Schema> {
    let text = super::compile::read_file(file, key, errors)?;
    let document: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|error| {
            errors.push((
                key.to_owned(),
                format!("{} is not JSON: {error}", file.display()),
            ));
        })
        .ok()?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&document)
        .map_err(|error| {
            errors.push((
                key.to_owned(),
                format!("{} is not a valid JSON Schema: {error}", file.display()),
            ));
        })
        .ok()?;
    Some(Schema {
        file: file.to_owned(),
        digest: Sha256::digest(&text).into(),
        validator,
    })
}
