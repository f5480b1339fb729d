//! CloudEvents Subscriptions API filter dialects, compiled once and matched per event.
//!
//! `exact`, `prefix` and `suffix` compare the canonical string form of a context attribute
//! (extensions included) case-sensitively; an event without the attribute does not match.
//! `all`, `any` and `not` nest. A route's list of filters is AND-ed, as the spec says.

use crate::event::{is_valid_attribute_name, Event};

use super::raw::RawFilter;

/// A compiled filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every (attribute, value) pair equals.
    Exact(Vec<(String, String)>),
    /// Every attribute starts with its value.
    Prefix(Vec<(String, String)>),
    /// Every attribute ends with its value.
    Suffix(Vec<(String, String)>),
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        let compare = |pairs: &[(String, String)], test: fn(&str, &str) -> bool| {
            pairs.iter().all(|(attribute, expected)| {
                event
                    .attribute(attribute)
                    .is_some_and(|actual| test(&actual, expected))
            })
        };
        match self {
            Filter::Exact(pairs) => compare(pairs, |actual, expected| actual == expected),
            Filter::Prefix(pairs) => {
                compare(pairs, |actual, expected| actual.starts_with(expected))
            }
            Filter::Suffix(pairs) => compare(pairs, |actual, expected| actual.ends_with(expected)),
            Filter::All(filters) => filters.iter().all(|filter| filter.matches(event)),
            Filter::Any(filters) => filters.iter().any(|filter| filter.matches(event)),
            Filter::Not(filter) => !filter.matches(event),
        }
    }

    /// Why `event` passes or fails this filter: one line per node, indented by depth, each
    /// marked `✓` or `✗` (for `fanout match`).
    pub fn explain(&self, event: &Event, depth: usize, out: &mut Vec<String>) -> bool {
        let indent = "  ".repeat(depth);
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        let mut leaf = |dialect: &str, pairs: &[(String, String)]| {
            let ok = self.matches(event);
            for (attribute, expected) in pairs {
                let actual = event.attribute(attribute);
                let pair_ok = match self {
                    Filter::Exact(_) => actual.as_deref() == Some(expected.as_str()),
                    Filter::Prefix(_) => actual
                        .as_deref()
                        .is_some_and(|actual| actual.starts_with(expected.as_str())),
                    _ => actual
                        .as_deref()
                        .is_some_and(|actual| actual.ends_with(expected.as_str())),
                };
                out.push(format!(
                    "{indent}{} {dialect} {attribute} {expected:?} (event has {})",
                    mark(pair_ok),
                    actual.map_or("no such attribute".to_owned(), |actual| format!(
                        "{actual:?}"
                    ))
                ));
            }
            ok
        };
        match self {
            Filter::Exact(pairs) => leaf("exact", pairs),
            Filter::Prefix(pairs) => leaf("prefix", pairs),
            Filter::Suffix(pairs) => leaf("suffix", pairs),
            Filter::All(filters) | Filter::Any(filters) => {
                let ok = self.matches(event);
                let name = if matches!(self, Filter::All(_)) {
                    "all"
                } else {
                    "any"
                };
                out.push(format!("{indent}{} {name}", mark(ok)));
                for filter in filters {
                    filter.explain(event, depth + 1, out);
                }
                ok
            }
            Filter::Not(filter) => {
                let ok = self.matches(event);
                out.push(format!("{indent}{} not", mark(ok)));
                filter.explain(event, depth + 1, out);
                ok
            }
        }
    }
}

/// The filter in the routes file's own form (`{exact: {type: ...}}`, `{all: [...]}`), for the
/// admin API's routing table.
impl serde::Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        let pairs = |pairs: &[(String, String)]| -> std::collections::BTreeMap<String, String> {
            pairs.iter().cloned().collect()
        };
        match self {
            Filter::Exact(list) => map.serialize_entry("exact", &pairs(list))?,
            Filter::Prefix(list) => map.serialize_entry("prefix", &pairs(list))?,
            Filter::Suffix(list) => map.serialize_entry("suffix", &pairs(list))?,
            Filter::All(filters) => map.serialize_entry("all", filters)?,
            Filter::Any(filters) => map.serialize_entry("any", filters)?,
            Filter::Not(filter) => map.serialize_entry("not", filter)?,
        }
        map.end()
    }
}

/// Compiles the filters of one route (AND-ed); `path` is the key path for error messages.
/// Returns `None` for an empty list (the route matches every event).
pub(super) fn compile_all(
    raw: Vec<RawFilter>,
    path: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<Filter> {
    let mut filters: Vec<Filter> = raw
        .into_iter()
        .enumerate()
        .map(|(index, filter)| compile(filter, &format!("{path}[{index}]"), errors))
        .collect();
    match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Filter::All(filters)),
    }
}

fn compile(raw: RawFilter, path: &str, errors: &mut Vec<(String, String)>) -> Filter {
    let mut pairs = |dialect: &str, map: std::collections::BTreeMap<String, super::raw::Scalar>| {
        let path = format!("{path}.{dialect}");
        if map.is_empty() {
            errors.push((
                path.clone(),
                format!("`{dialect}` needs at least one attribute: value pair"),
            ));
        }
        map.into_iter()
            .map(|(attribute, value)| {
                if !is_valid_attribute_name(&attribute) {
                    errors.push((
                        format!("{path}.{attribute}"),
                        format!("{attribute:?} is not a CloudEvents attribute name (lower-case letters and digits)"),
                    ));
                }
                if value.0.is_empty() && dialect != "exact" {
                    errors.push((format!("{path}.{attribute}"), format!("a `{dialect}` value must not be empty")));
                }
                (attribute, value.0)
            })
            .collect::<Vec<_>>()
    };
    let RawFilter {
        exact,
        prefix,
        suffix,
        all,
        any,
        not,
    } = raw;
    let dialects = [
        exact.is_some(),
        prefix.is_some(),
        suffix.is_some(),
        all.is_some(),
        any.is_some(),
        not.is_some(),
    ];
    if dialects.iter().filter(|set| **set).count() != 1 {
        errors.push((
            path.to_owned(),
            "a filter expression has exactly one dialect: exact, prefix, suffix, all, any or not (list several filters to AND them)".into(),
        ));
        return Filter::All(Vec::new());
    }
    if let Some(map) = exact {
        Filter::Exact(pairs("exact", map))
    } else if let Some(map) = prefix {
        Filter::Prefix(pairs("prefix", map))
    } else if let Some(map) = suffix {
        Filter::Suffix(pairs("suffix", map))
    } else if let Some(list) = all {
        Filter::All(compile_list(list, &format!("{path}.all"), errors))
    } else if let Some(list) = any {
        Filter::Any(compile_list(list, &format!("{path}.any"), errors))
    } else if let Some(inner) = not {
        Filter::Not(Box::new(compile(*inner, &format!("{path}.not"), errors)))
    } else {
        unreachable!("exactly one dialect is set")
    }
}

fn compile_list(
    list: Vec<RawFilter>,
    path: &str,
    errors: &mut Vec<(String, String)>,
) -> Vec<Filter> {
    if list.is_empty() {
        errors.push((
            path.to_owned(),
            "`all` and `any` need at least one filter".into(),
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(index, filter)| compile(filter, &format!("{path}[{index}]"), errors))
        .collect()
}

#[cfg(test)]
mod tests;
