//! `${VAR}` and `${VAR:-default}` interpolation over the text of a routes file.
//!
//! Like vector's config loader, it works on the text before YAML parsing, line by line, so line
//! numbers in later errors still point at the file as written. `$$` stands for a literal `$`.
//! Lines whose first non-blank character is `#` are comments and are left alone.

use super::EnvLookup;

/// A `${VAR}` that could not be replaced.
#[derive(Debug, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Replaces every `${VAR}` in `text`.
///
/// # Errors
/// Each unset variable without a default, and each malformed `${`, with its position.
pub fn interpolate(text: &str, env: EnvLookup<'_>) -> Result<String, Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (line_index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains('$') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find('$') {
            out.push_str(&rest[..start]);
            let column = line.len() - rest.len() + start + 1;
            let after = &rest[start + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    errors.push(InterpolationError {
                        line: line_index + 1,
                        column,
                        message: "unterminated ${ (write $$ for a literal $)".into(),
                    });
                    rest = "";
                    break;
                };
                let expression = &body[..end];
                let (name, default) = match expression.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (expression, None),
                };
                if !is_variable_name(name) {
                    errors.push(InterpolationError {
                        line: line_index + 1,
                        column,
                        message: format!("invalid variable name {name:?} in ${{{expression}}}"),
                    });
                } else {
                    match (env(name).filter(|value| !value.is_empty() || default.is_none()), default) {
                        (Some(value), _) => out.push_str(&value),
                        (None, Some(default)) => out.push_str(default),
                        (None, None) => errors.push(InterpolationError {
                            line: line_index + 1,
                            column,
                            message: format!("environment variable {name} is not set (use ${{{name}:-default}} for a default)"),
                        }),
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(first) if first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("erp.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[track_caller]
    fn check(input: &str, expected: &str) {
        assert_eq!(interpolate(input, &env).unwrap(), expected);
    }

    #[test]
    fn replaces_variables_and_defaults() {
        check("url: http://${HOST}/x\n", "url: http://erp.local/x\n");
        check(
            "url: ${MISSING:-http://127.0.0.1:9}\n",
            "url: http://127.0.0.1:9\n",
        );
        check("a: ${EMPTY:-fallback}\n", "a: fallback\n");
        check("a: '${EMPTY}'\n", "a: ''\n");
        check("price: $$5 and $x\n", "price: $5 and $x\n");
        check("# url: ${NOT_SET}\nb: 1\n", "# url: ${NOT_SET}\nb: 1\n");
        check("a: ${HOST}${HOST}", "a: erp.localerp.local");
    }

    #[test]
    fn names_the_missing_variable_and_its_line() {
        let errors = interpolate("a: 1\nsecret: ${SHOP_SECRET}\n", &env).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert_eq!(errors[0].column, 9);
        assert!(
            errors[0].message.contains("SHOP_SECRET"),
            "{}",
            errors[0].message
        );
        let errors = interpolate("a: ${1BAD}\nb: ${OPEN\n", &env).unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}
