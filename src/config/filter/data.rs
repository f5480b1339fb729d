//! The `data` filter dialect: a condition on one value inside the event's JSON data, addressed
//! by a path (`$.shipping.country`, `$.items[0].sku`, `$['odd key']`).
//!
//! Events whose data is not JSON, or whose data has nothing at the path, do not match (except
//! `exists: false`). When the path ends on an array, a value condition matches if any element
//! matches (`contains` and `exists` look at the array itself), and `not_equals` or `not_in`
//! holds when no element is excluded. Numbers compare as numbers, so
//! `1` equals `1.0`; strings never equal numbers.

use std::net::IpAddr;

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A compiled `data` filter.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFilter {
    /// The path as written (for the admin API and `fanout match`).
    pub path: String,
    steps: Vec<Step>,
    pub condition: Condition,
}

/// What the value at the path must satisfy.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Greater(f64),
    GreaterOrEqual(f64),
    Less(f64),
    LessOrEqual(f64),
    Exists(bool),
    Prefix(String),
    Suffix(String),
    /// A substring of a string, or an element of an array.
    Contains(Value),
    /// `*` stands for any run of characters, `?` for one.
    Wildcard(String),
    EqualsIgnoreCase(String),
    /// An IP address (v4 or v6) inside a network.
    Cidr(Network),
}

/// An IP network in CIDR notation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
    ///
    /// # Errors
    /// The text is not an address with an optional prefix length that fits it.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP network like 10.0.0.0/8"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
            None => bits,
        };
        Ok(Network { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let mask = |bits: u32, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (u128::MAX << (width - bits)) & (u128::MAX >> (128 - width))
            }
        };
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = mask(u32::from(self.prefix), 32);
                u128::from(u32::from(network)) & mask == u128::from(u32::from(address)) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = mask(u32::from(self.prefix), 128);
                u128::from(network) & mask == u128::from(address) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(address)) => address
                .to_ipv4_mapped()
                .is_some_and(|address| self.contains(IpAddr::V4(address))),
            (IpAddr::V6(_), IpAddr::V4(address)) => {
                self.contains(IpAddr::V6(address.to_ipv6_mapped()))
            }
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl DataFilter {
    /// Compiles a path and a condition.
    ///
    /// # Errors
    /// The path is not `$` followed by `.key`, `['key']` or `[index]` steps.
    pub fn new(path: &str, condition: Condition) -> Result<DataFilter, String> {
        Ok(DataFilter {
            path: path.to_owned(),
            steps: parse_path(path)?,
            condition,
        })
    }

    /// Whether parsed JSON data (`None`: no data, or not JSON) passes.
    pub fn matches(&self, data: Option<&Value>) -> bool {
        let found = data.and_then(|data| self.resolve(data));
        match (&self.condition, found) {
            (Condition::Exists(wanted), found) => found.is_some() == *wanted,
            (_, None) => false,
            (Condition::Contains(needle), Some(Value::Array(items))) => {
                items.iter().any(|item| same(item, needle))
            }
            // Negations hold when no element is excluded.
            (Condition::NotEquals(excluded), Some(Value::Array(items))) => {
                !items.iter().any(|item| same(item, excluded))
            }
            (Condition::NotIn(excluded), Some(Value::Array(items))) => !items
                .iter()
                .any(|item| excluded.iter().any(|value| same(item, value))),
            (condition, Some(Value::Array(items))) => {
                items.iter().any(|item| test(condition, item))
            }
            (condition, Some(value)) => test(condition, value),
        }
    }

    /// The value at the path, if any.
    pub fn resolve<'a>(&self, mut value: &'a Value) -> Option<&'a Value> {
        for step in &self.steps {
            value = match step {
                Step::Key(key) => value.as_object()?.get(key)?,
                Step::Index(index) => value.as_array()?.get(*index)?,
            };
        }
        Some(value)
    }

    /// The condition as the routes file writes it: (operator, value).
    pub fn operator(&self) -> (&'static str, Value) {
        let number = |number: f64| serde_json::json!(number);
        match &self.condition {
            Condition::Equals(value) => ("equals", value.clone()),
            Condition::NotEquals(value) => ("not_equals", value.clone()),
            Condition::In(values) => ("in", Value::Array(values.clone())),
            Condition::NotIn(values) => ("not_in", Value::Array(values.clone())),
            Condition::Greater(value) => ("gt", number(*value)),
            Condition::GreaterOrEqual(value) => ("gte", number(*value)),
            Condition::Less(value) => ("lt", number(*value)),
            Condition::LessOrEqual(value) => ("lte", number(*value)),
            Condition::Exists(value) => ("exists", Value::Bool(*value)),
            Condition::Prefix(value) => ("prefix", value.clone().into()),
            Condition::Suffix(value) => ("suffix", value.clone().into()),
            Condition::Contains(value) => ("contains", value.clone()),
            Condition::Wildcard(value) => ("wildcard", value.clone().into()),
            Condition::EqualsIgnoreCase(value) => ("equals_ignore_case", value.clone().into()),
            Condition::Cidr(network) => ("cidr", network.to_string().into()),
        }
    }
}

/// JSON equality with numbers compared by value.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(actual), Value::Number(expected)) => actual.as_f64() == expected.as_f64(),
        _ => actual == expected,
    }
}

fn test(condition: &Condition, value: &Value) -> bool {
    let number = value.as_f64();
    let text = value.as_str();
    match condition {
        Condition::Equals(expected) => same(value, expected),
        Condition::NotEquals(expected) => !same(value, expected),
        Condition::In(values) => values.iter().any(|expected| same(value, expected)),
        Condition::NotIn(values) => !values.iter().any(|expected| same(value, expected)),
        Condition::Greater(bound) => number.is_some_and(|number| number > *bound),
        Condition::GreaterOrEqual(bound) => number.is_some_and(|number| number >= *bound),
        Condition::Less(bound) => number.is_some_and(|number| number < *bound),
        Condition::LessOrEqual(bound) => number.is_some_and(|number| number <= *bound),
        Condition::Exists(wanted) => *wanted,
        Condition::Prefix(prefix) => text.is_some_and(|text| text.starts_with(prefix.as_str())),
        Condition::Suffix(suffix) => text.is_some_and(|text| text.ends_with(suffix.as_str())),
        Condition::Contains(needle) => match (text, needle.as_str()) {
            (Some(text), Some(needle)) => text.contains(needle),
            _ => false,
        },
        Condition::Wildcard(pattern) => text.is_some_and(|text| wildcard(pattern, text)),
        Condition::EqualsIgnoreCase(expected) => {
            text.is_some_and(|text| text.to_lowercase() == expected.to_lowercase())
        }
        Condition::Cidr(network) => text
            .and_then(|text| text.trim().parse::<IpAddr>().ok())
            .is_some_and(|address| network.contains(address)),
    }
}

/// `*` matches any run of characters (none included), `?` exactly one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with one backtrack point, linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| {
        format!("{path:?} is not a data path ({why}); write it like $.shipping.country, $.items[0].sku or $['odd key']")
    };
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| bad("it starts with $"))?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '.' => {
                let start = index + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                if end == start {
                    return Err(bad("a key after `.` is missing"));
                }
                steps.push(Step::Key(chars[start..end].iter().collect()));
                index = end;
            }
            '[' => {
                let close = chars[index..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|offset| index + offset)
                    .ok_or_else(|| bad("a `[` is not closed"))?;
                let inner: String = chars[index + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(key) = inner
                    .strip_prefix('\'')
                    .and_then(|key| key.strip_suffix('\''))
                    .or_else(|| {
                        inner
                            .strip_prefix('"')
                            .and_then(|key| key.strip_suffix('"'))
                    })
                {
                    steps.push(Step::Key(key.to_owned()));
                } else {
                    let position = inner
                        .parse::<usize>()
                        .map_err(|_| bad("`[...]` holds an index or a quoted key"))?;
                    steps.push(Step::Index(position));
                }
                index = close + 1;
            }
            _ => return Err(bad("steps are .key, ['key'] or [index]")),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "shipping": { "country": "DE", "zip": "10115" },
            "total": 149.5,
            "items": [ { "sku": "A-1", "qty": 2 }, { "sku": "B-7", "qty": 1 } ],
            "tags": ["gift", "express"],
            "customer": { "email": "Ada@Example.com", "ip": "10.1.2.3", "vip": true },
            "odd key": 1,
        })
    }

    #[track_caller]
    fn check(path: &str, condition: Condition, expected: bool) {
        let filter = DataFilter::new(path, condition).unwrap();
        assert_eq!(
            filter.matches(Some(&data())),
            expected,
            "{path} {:?}",
            filter.condition
        );
    }

    #[test]
    fn operators() {
        use Condition::*;
        check("$.shipping.country", Equals(json!("DE")), true);
        check("$.shipping.country", Equals(json!("FR")), false);
        check("$.total", Equals(json!(149.5)), true);
        check("$.items[1].qty", Equals(json!(1.0)), true);
        check("$.shipping.zip", Equals(json!(10115)), false);
        check("$.shipping.country", NotEquals(json!("FR")), true);
        check("$.missing", NotEquals(json!("FR")), false);
        check(
            "$.shipping.country",
            In(vec![json!("AT"), json!("DE")]),
            true,
        );
        check(
            "$.shipping.country",
            NotIn(vec![json!("AT"), json!("DE")]),
            false,
        );
        check("$.total", Greater(100.0), true);
        check("$.total", GreaterOrEqual(149.5), true);
        check("$.total", Less(149.5), false);
        check("$.total", LessOrEqual(149.5), true);
        check("$.shipping.country", Greater(1.0), false);
        check("$.customer.vip", Exists(true), true);
        check("$.customer.phone", Exists(false), true);
        check("$.customer.phone", Exists(true), false);
        check("$.customer.email", Prefix("Ada@".into()), true);
        check("$.customer.email", Suffix("@example.com".into()), false);
        check("$.customer.email", Contains(json!("@Ex")), true);
        check("$.tags", Contains(json!("gift")), true);
        check("$.tags", Contains(json!("slow")), false);
        check("$.customer.email", Wildcard("*@*.com".into()), true);
        check("$.customer.email", Wildcard("A?a@*".into()), true);
        check("$.customer.email", Wildcard("*.org".into()), false);
        check(
            "$.customer.email",
            EqualsIgnoreCase("ada@example.COM".into()),
            true,
        );
        check(
            "$.customer.ip",
            Cidr(Network::parse("10.0.0.0/8").unwrap()),
            true,
        );
        check(
            "$.customer.ip",
            Cidr(Network::parse("192.168.0.0/16").unwrap()),
            false,
        );
        check("$['odd key']", Equals(json!(1)), true);
        // An array at the path: any element.
        check("$.tags", Equals(json!("express")), true);
        check("$.tags", Prefix("gi".into()), true);
        // ...but a negation holds only when no element is excluded.
        check("$.tags", NotIn(vec![json!("gift")]), false);
        check("$.tags", NotEquals(json!("gift")), false);
        check("$.tags", NotIn(vec![json!("slow")]), true);
    }

    #[test]
    fn no_json_data_never_matches_but_for_exists_false() {
        let filter = DataFilter::new("$.a", Condition::NotEquals(json!(1))).unwrap();
        assert!(!filter.matches(None));
        let filter = DataFilter::new("$.a", Condition::Exists(false)).unwrap();
        assert!(filter.matches(None));
    }

    #[test]
    fn networks() {
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let v4 = Network::parse("10.0.0.0/8").unwrap();
        assert!(v4.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("ten").is_err());
        assert_eq!(
            Network::parse("10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
    }

    #[test]
    fn paths() {
        for bad in ["shipping.country", "$.", "$.a[", "$[x]", "$..a", "$a"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_path("$.items[0]['sku code']").unwrap(),
            [
                Step::Key("items".into()),
                Step::Index(0),
                Step::Key("sku code".into())
            ]
        );
        assert!(parse_path("$").unwrap().is_empty());
    }

    #[test]
    fn wildcards() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.shop.*", "com.shop.order", true),
            ("??", "ab", true),
            ("??", "abc", false),
            ("a**b", "ab", true),
        ] {
            assert_eq!(wildcard(pattern, text), expected, "{pattern} {text}");
        }
    }
}
