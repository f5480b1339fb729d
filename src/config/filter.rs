//! CloudEvents Subscriptions API filter dialects, compiled once and matched per event.
//!
//! `exact`, `prefix` and `suffix` compare the canonical string form of a context attribute
//! (extensions included) case-sensitively; an event without the attribute does not match.
//! `all`, `any` and `not` nest. A route's list of filters is AND-ed, as the spec says.
//! Two more dialects: `data` (a condition on a value of the JSON data, [`data`]) and `sql`
//! (a CloudEvents SQL expression, [`cesql`]).

pub mod cesql;
pub mod data;

use std::cell::OnceCell;

use crate::event::{is_valid_attribute_name, Data, Event};

use super::raw::{RawDataFilter, RawFilter};
pub use data::{Condition, DataFilter};

/// A compiled filter expression.
#[derive(Clone, Debug, PartialEq)]
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
    Data(Box<DataFilter>),
    Sql(Box<cesql::Expression>),
}

/// An event being matched: its JSON data is parsed once, on the first `data` filter, and shared
/// by every filter of every route.
pub struct Candidate<'a> {
    pub event: &'a Event,
    data: OnceCell<Option<serde_json::Value>>,
}

impl<'a> Candidate<'a> {
    pub fn new(event: &'a Event) -> Candidate<'a> {
        Candidate {
            event,
            data: OnceCell::new(),
        }
    }

    /// The data as JSON; `None` when there is none or it is not JSON.
    pub fn data(&self) -> Option<&serde_json::Value> {
        self.data
            .get_or_init(|| match &self.event.data {
                Some(Data::Json(bytes)) => serde_json::from_slice(bytes).ok(),
                _ => None,
            })
            .as_ref()
    }
}

impl Filter {
    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.test(&Candidate::new(event))
    }

    /// Whether the candidate passes this filter.
    pub fn test(&self, candidate: &Candidate<'_>) -> bool {
        let event = candidate.event;
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
            Filter::All(filters) => filters.iter().all(|filter| filter.test(candidate)),
            Filter::Any(filters) => filters.iter().any(|filter| filter.test(candidate)),
            Filter::Not(filter) => !filter.test(candidate),
            Filter::Data(filter) => filter.matches(candidate.data()),
            Filter::Sql(expression) => expression.matches(event),
        }
    }

    /// Why `event` passes or fails this filter: one line per node, indented by depth, each
    /// marked `✓` or `✗` (for `fanout match`).
    pub fn explain(&self, event: &Event, depth: usize, out: &mut Vec<String>) -> bool {
        self.explain_candidate(&Candidate::new(event), depth, out)
    }

    fn explain_candidate(
        &self,
        candidate: &Candidate<'_>,
        depth: usize,
        out: &mut Vec<String>,
    ) -> bool {
        let event = candidate.event;
        let indent = "  ".repeat(depth);
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        let mut leaf = |dialect: &str, pairs: &[(String, String)]| {
            let ok = self.test(candidate);
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
                let ok = self.test(candidate);
                let name = if matches!(self, Filter::All(_)) {
                    "all"
                } else {
                    "any"
                };
                out.push(format!("{indent}{} {name}", mark(ok)));
                for filter in filters {
                    filter.explain_candidate(candidate, depth + 1, out);
                }
                ok
            }
            Filter::Not(filter) => {
                let ok = self.test(candidate);
                out.push(format!("{indent}{} not", mark(ok)));
                filter.explain_candidate(candidate, depth + 1, out);
                ok
            }
            Filter::Data(filter) => {
                let ok = self.test(candidate);
                let (operator, expected) = filter.operator();
                let actual = match candidate.data() {
                    None => "no JSON data".to_owned(),
                    Some(data) => filter
                        .resolve(data)
                        .map_or("nothing there".to_owned(), ToString::to_string),
                };
                out.push(format!(
                    "{indent}{} data {} {operator} {expected} (event has {actual})",
                    mark(ok),
                    filter.path
                ));
                ok
            }
            Filter::Sql(expression) => {
                let (value, errors) = expression.evaluate(event);
                let ok = self.test(candidate);
                let errors = if errors.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; errors: {}",
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                out.push(format!(
                    "{indent}{} sql {:?} (gives {value}{errors})",
                    mark(ok),
                    expression.source()
                ));
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
            Filter::Data(filter) => {
                let (operator, value) = filter.operator();
                let body = serde_json::json!({ "path": filter.path, operator: value });
                map.serialize_entry("data", &body)?;
            }
            Filter::Sql(expression) => map.serialize_entry("sql", expression.source())?,
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
        data,
        sql,
    } = raw;
    let dialects = [
        exact.is_some(),
        prefix.is_some(),
        suffix.is_some(),
        all.is_some(),
        any.is_some(),
        not.is_some(),
        data.is_some(),
        sql.is_some(),
    ];
    if dialects.iter().filter(|set| **set).count() != 1 {
        errors.push((
            path.to_owned(),
            "a filter expression has exactly one dialect: exact, prefix, suffix, all, any, not, data or sql (list several filters to AND them)".into(),
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
    } else if let Some(raw) = data {
        compile_data(raw, &format!("{path}.data"), errors)
    } else if let Some(text) = sql {
        match cesql::Expression::parse(&text) {
            Ok(expression) => {
                for problem in expression.check() {
                    errors.push((format!("{path}.sql"), format!("invalid CESQL: {problem}")));
                }
                Filter::Sql(Box::new(expression))
            }
            Err(error) => {
                errors.push((format!("{path}.sql"), format!("invalid CESQL: {error}")));
                Filter::All(Vec::new())
            }
        }
    } else {
        unreachable!("exactly one dialect is set")
    }
}

fn compile_data(raw: RawDataFilter, path: &str, errors: &mut Vec<(String, String)>) -> Filter {
    let RawDataFilter {
        path: data_path,
        equals,
        not_equals,
        one_of,
        not_in,
        gt,
        gte,
        lt,
        lte,
        exists,
        prefix,
        suffix,
        contains,
        wildcard,
        equals_ignore_case,
        cidr,
    } = raw;
    let mut conditions: Vec<Result<Condition, String>> = Vec::new();
    let mut add = |condition: Option<Result<Condition, String>>| conditions.extend(condition);
    add(equals.map(|value| Ok(Condition::Equals(value))));
    add(not_equals.map(|value| Ok(Condition::NotEquals(value))));
    add(one_of.map(|values| Ok(Condition::In(values))));
    add(not_in.map(|values| Ok(Condition::NotIn(values))));
    add(gt.map(|value| Ok(Condition::Greater(value))));
    add(gte.map(|value| Ok(Condition::GreaterOrEqual(value))));
    add(lt.map(|value| Ok(Condition::Less(value))));
    add(lte.map(|value| Ok(Condition::LessOrEqual(value))));
    add(exists.map(|value| Ok(Condition::Exists(value))));
    add(prefix.map(|value| Ok(Condition::Prefix(value))));
    add(suffix.map(|value| Ok(Condition::Suffix(value))));
    add(contains.map(|value| Ok(Condition::Contains(value))));
    add(wildcard.map(|value| Ok(Condition::Wildcard(value))));
    add(equals_ignore_case.map(|value| Ok(Condition::EqualsIgnoreCase(value))));
    add(cidr.map(|value| data::Network::parse(&value).map(Condition::Cidr)));
    let condition = match conditions.len() {
        1 => conditions.pop().expect("one condition"),
        _ => Err("a data filter has `path` and exactly one operator: equals, not_equals, in, not_in, gt, gte, lt, lte, exists, prefix, suffix, contains, wildcard, equals_ignore_case or cidr".into()),
    };
    match condition.and_then(|condition| DataFilter::new(&data_path, condition)) {
        Ok(filter) => Filter::Data(Box::new(filter)),
        Err(error) => {
            errors.push((path.to_owned(), error));
            Filter::All(Vec::new())
        }
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
