//! The `sql` filter dialect: CloudEvents SQL (CESQL 1.0), parsed once when the routes file is
//! loaded and evaluated per event.
//!
//! Grammar and precedence follow the spec's reference ANTLR grammar: unary `NOT` and `-` bind
//! tightest, then `LIKE`, `EXISTS` and `IN`, then `* / %`, then `+ -`, then the comparisons,
//! and last `AND`, `OR` and `XOR`, which share one level and group to the right. Keywords and
//! function names are case-insensitive; attribute names are not.
//!
//! Evaluation is total: every operator and function returns a value, and problems are collected
//! as errors (`math`, `cast`, `missingAttribute`, `missingFunction`, `functionEvaluation`).
//! An operator whose operand raised an error returns the zero value of its type (`false`, `0`,
//! `""`) without applying itself, so `missing / 0` is `0` with only the missing-attribute
//! error. As a filter, an expression passes only when it gives `true` with no error.

use std::fmt;

use crate::event::{AttrValue, Event};

mod parse;

pub use parse::ParseError;

/// A value of the CESQL type system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i32),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(value) => write!(f, "{value}"),
            Value::Int(value) => write!(f, "{value}"),
            Value::Str(value) => write!(f, "{value:?}"),
        }
    }
}

/// The kinds of evaluation error the spec names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Math,
    Cast,
    MissingAttribute,
    MissingFunction,
    FunctionEvaluation,
}

impl ErrorKind {
    /// The name the spec and its TCK use.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Math => "math",
            ErrorKind::Cast => "cast",
            ErrorKind::MissingAttribute => "missingAttribute",
            ErrorKind::MissingFunction => "missingFunction",
            ErrorKind::FunctionEvaluation => "functionEvaluation",
        }
    }
}

/// One evaluation error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Bool,
    Int,
    Str,
}

impl Type {
    fn zero(self) -> Value {
        match self {
            Type::Bool => Value::Bool(false),
            Type::Int => Value::Int(0),
            Type::Str => Value::Str(String::new()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arithmetic {
    Multiply,
    Divide,
    Modulo,
    Add,
    Subtract,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Logic {
    And,
    Or,
    Xor,
}

/// One element of a compiled `LIKE` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Like {
    /// `%`: any run of characters.
    Any,
    /// `_`: one character.
    One,
    Char(char),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Literal(Value),
    Attribute(String),
    Not(Box<Node>),
    Negate(Box<Node>),
    Arithmetic(Arithmetic, Box<Node>, Box<Node>),
    Compare(Comparison, Box<Node>, Box<Node>),
    Logic(Logic, Box<Node>, Box<Node>),
    Like {
        value: Box<Node>,
        pattern: Vec<Like>,
        negated: bool,
    },
    Exists(String),
    In {
        value: Box<Node>,
        set: Vec<Node>,
        negated: bool,
    },
    /// A function call; `name` upper-cased.
    Call(String, Vec<Node>),
}

/// A parsed CESQL expression.
#[derive(Clone, Debug)]
pub struct Expression {
    source: String,
    root: Node,
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expression {}

/// The built-in functions: (name, fixed parameters, variadic tail type, return type).
const FUNCTIONS: &[(&str, &[Type], Option<Type>, Type)] = &[
    ("LENGTH", &[Type::Str], None, Type::Int),
    ("CONCAT", &[], Some(Type::Str), Type::Str),
    ("CONCAT_WS", &[Type::Str], Some(Type::Str), Type::Str),
    ("LOWER", &[Type::Str], None, Type::Str),
    ("UPPER", &[Type::Str], None, Type::Str),
    ("TRIM", &[Type::Str], None, Type::Str),
    ("LEFT", &[Type::Str, Type::Int], None, Type::Str),
    ("RIGHT", &[Type::Str, Type::Int], None, Type::Str),
    ("SUBSTRING", &[Type::Str, Type::Int], None, Type::Str),
    (
        "SUBSTRING",
        &[Type::Str, Type::Int, Type::Int],
        None,
        Type::Str,
    ),
    ("ABS", &[Type::Int], None, Type::Int),
];

/// The casting functions take any type: (name, return type).
const CASTS: &[(&str, Type)] = &[
    ("INT", Type::Int),
    ("BOOL", Type::Bool),
    ("STRING", Type::Str),
    ("IS_INT", Type::Bool),
    ("IS_BOOL", Type::Bool),
];

/// The signature of `name` called with `arity` arguments, if there is one.
fn signature(name: &str, arity: usize) -> Option<(Vec<Type>, Type)> {
    if let Some((_, returns)) = CASTS.iter().find(|(cast, _)| *cast == name) {
        return (arity == 1).then(|| (Vec::new(), *returns));
    }
    FUNCTIONS
        .iter()
        .filter(|(function, ..)| *function == name)
        .find_map(|(_, fixed, variadic, returns)| {
            let fits = match variadic {
                Some(_) => arity >= fixed.len(),
                None => arity == fixed.len(),
            };
            fits.then(|| {
                let mut parameters = fixed.to_vec();
                while parameters.len() < arity {
                    parameters.push(variadic.expect("variadic"));
                }
                (parameters, *returns)
            })
        })
}

impl Expression {
    /// Parses an expression.
    ///
    /// # Errors
    /// A syntax error, with the character position (from 1) where it was found.
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        Ok(Expression {
            source: text.to_owned(),
            root: parse::parse(text)?,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Problems found without an event: calls of functions that do not exist (or not with that
    /// many arguments). They would be `missingFunction` errors on every event.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        visit(&self.root, &mut |node| {
            if let Node::Call(name, args) = node {
                if signature(name, args.len()).is_none() {
                    problems.push(format!(
                        "no function {name} with {} argument(s)",
                        args.len()
                    ));
                }
            }
        });
        problems
    }

    /// Evaluates the expression on `event`: its value and every error raised.
    pub fn evaluate(&self, event: &Event) -> (Value, Vec<EvalError>) {
        let mut errors = Vec::new();
        let (value, _) = Evaluator {
            event,
            errors: &mut errors,
        }
        .eval(&self.root);
        (value, errors)
    }

    /// Whether `event` passes, as a filter: the value is `true` and no error was raised.
    pub fn matches(&self, event: &Event) -> bool {
        let (value, errors) = self.evaluate(event);
        errors.is_empty() && value == Value::Bool(true)
    }
}

fn visit(node: &Node, f: &mut impl FnMut(&Node)) {
    f(node);
    match node {
        Node::Literal(_) | Node::Attribute(_) | Node::Exists(_) => {}
        Node::Not(inner) | Node::Negate(inner) | Node::Like { value: inner, .. } => visit(inner, f),
        Node::Arithmetic(_, left, right)
        | Node::Compare(_, left, right)
        | Node::Logic(_, left, right) => {
            visit(left, f);
            visit(right, f);
        }
        Node::In { value, set, .. } => {
            visit(value, f);
            set.iter().for_each(|node| visit(node, f));
        }
        Node::Call(_, args) => args.iter().for_each(|node| visit(node, f)),
    }
}

/// The static type of what a node gives (a missing function gives `false`).
fn type_of(node: &Node) -> Type {
    match node {
        Node::Literal(Value::Bool(_))
        | Node::Attribute(_)
        | Node::Not(_)
        | Node::Compare(..)
        | Node::Logic(..)
        | Node::Like { .. }
        | Node::Exists(_)
        | Node::In { .. } => Type::Bool,
        Node::Literal(Value::Int(_)) | Node::Negate(_) | Node::Arithmetic(..) => Type::Int,
        Node::Literal(Value::Str(_)) => Type::Str,
        Node::Call(name, args) => signature(name, args.len()).map_or(Type::Bool, |(_, ty)| ty),
    }
}

struct Evaluator<'a> {
    event: &'a Event,
    errors: &'a mut Vec<EvalError>,
}

/// A value and whether an error was raised while computing it.
type Outcome = (Value, bool);

impl Evaluator<'_> {
    fn error(&mut self, kind: ErrorKind, message: String) {
        self.errors.push(EvalError { kind, message });
    }

    /// Evaluates `node`; an operand that failed makes the node give its zero value.
    fn eval(&mut self, node: &Node) -> Outcome {
        macro_rules! operand {
            ($node:expr) => {{
                let (value, failed) = self.eval($node);
                if failed {
                    return (type_of(node).zero(), true);
                }
                value
            }};
        }
        match node {
            Node::Literal(value) => (value.clone(), false),
            Node::Attribute(name) => match attribute(self.event, name) {
                Some(value) => (value, false),
                None => {
                    self.error(
                        ErrorKind::MissingAttribute,
                        format!("the event has no attribute {name:?}"),
                    );
                    (Value::Bool(false), true)
                }
            },
            Node::Exists(name) => (Value::Bool(attribute(self.event, name).is_some()), false),
            Node::Not(inner) => {
                let value = operand!(inner);
                let (value, failed) = self.cast(value, Type::Bool);
                (Value::Bool(!as_bool(&value)), failed)
            }
            Node::Negate(inner) => {
                let value = operand!(inner);
                let (value, failed) = self.cast(value, Type::Int);
                let number = as_int(&value);
                match number.checked_neg() {
                    Some(negated) => (Value::Int(negated), failed),
                    None => {
                        self.error(ErrorKind::Math, format!("-({number}) overflows"));
                        (Value::Int(number), true)
                    }
                }
            }
            Node::Arithmetic(op, left, right) => {
                let left = operand!(left);
                let right = operand!(right);
                let (left, left_failed) = self.cast(left, Type::Int);
                let (right, right_failed) = self.cast(right, Type::Int);
                let (value, failed) = self.arithmetic(*op, as_int(&left), as_int(&right));
                (Value::Int(value), failed || left_failed || right_failed)
            }
            Node::Compare(op, left, right) => {
                let left = operand!(left);
                let right = operand!(right);
                let target = match op {
                    // Ambiguous: the right operand's type decides.
                    Comparison::Equal | Comparison::NotEqual => value_type(&right),
                    _ => Type::Int,
                };
                let (left, left_failed) = self.cast(left, target);
                let (right, right_failed) = self.cast(right, target);
                let result = match op {
                    Comparison::Equal => left == right,
                    Comparison::NotEqual => left != right,
                    Comparison::Less => as_int(&left) < as_int(&right),
                    Comparison::LessOrEqual => as_int(&left) <= as_int(&right),
                    Comparison::Greater => as_int(&left) > as_int(&right),
                    Comparison::GreaterOrEqual => as_int(&left) >= as_int(&right),
                };
                (Value::Bool(result), left_failed || right_failed)
            }
            Node::Logic(op, left, right) => {
                let left = operand!(left);
                let (left, left_failed) = self.cast(left, Type::Bool);
                let left = as_bool(&left);
                match (op, left) {
                    (Logic::And, false) => return (Value::Bool(false), left_failed),
                    (Logic::Or, true) => return (Value::Bool(true), left_failed),
                    _ => {}
                }
                let right = operand!(right);
                let (right, right_failed) = self.cast(right, Type::Bool);
                let right = as_bool(&right);
                let result = match op {
                    Logic::And => left && right,
                    Logic::Or => left || right,
                    Logic::Xor => left != right,
                };
                (Value::Bool(result), left_failed || right_failed)
            }
            Node::Like {
                value,
                pattern,
                negated,
            } => {
                let value = operand!(value);
                let (value, failed) = self.cast(value, Type::Str);
                let Value::Str(text) = value else {
                    unreachable!("cast to a string")
                };
                let chars: Vec<char> = text.chars().collect();
                (Value::Bool(like(pattern, &chars) != *negated), failed)
            }
            Node::In {
                value,
                set,
                negated,
            } => {
                let value = operand!(value);
                let target = value_type(&value);
                let mut found = false;
                let mut any_failed = false;
                for element in set {
                    let element = operand!(element);
                    let (element, failed) = self.cast(element, target);
                    any_failed |= failed;
                    found |= element == value;
                }
                (Value::Bool(found != *negated), any_failed)
            }
            Node::Call(name, args) => self.call(node, name, args),
        }
    }

    fn call(&mut self, node: &Node, name: &str, args: &[Node]) -> Outcome {
        let Some((parameters, returns)) = signature(name, args.len()) else {
            self.error(
                ErrorKind::MissingFunction,
                format!("no function {name} with {} argument(s)", args.len()),
            );
            return (Value::Bool(false), true);
        };
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            let (value, failed) = self.eval(arg);
            if failed {
                return (type_of(node).zero(), true);
            }
            values.push(value);
        }
        if CASTS.iter().any(|(cast, _)| *cast == name) {
            // A casting function: it takes any type.
            let value = values.pop().expect("one argument");
            return match name {
                "INT" => self.explicit(value, Type::Int),
                "BOOL" => self.explicit(value, Type::Bool),
                "STRING" => self.cast(value, Type::Str),
                "IS_INT" => (
                    Value::Bool(convert(&value, Type::Int, true).is_some()),
                    false,
                ),
                _ => (
                    Value::Bool(convert(&value, Type::Bool, true).is_some()),
                    false,
                ),
            };
        }
        let mut failed = false;
        let mut cast = Vec::with_capacity(values.len());
        for (value, ty) in values.into_iter().zip(parameters) {
            let (value, cast_failed) = self.cast(value, ty);
            failed |= cast_failed;
            cast.push(value);
        }
        let (value, own_error) = self.builtin(name, &cast);
        debug_assert_eq!(value_type(&value), returns);
        (value, failed || own_error)
    }

    fn builtin(&mut self, name: &str, args: &[Value]) -> Outcome {
        let text = |index: usize| match &args[index] {
            Value::Str(text) => text.as_str(),
            _ => "",
        };
        let int = |index: usize| as_int(&args[index]);
        let string = |text: String| (Value::Str(text), false);
        match name {
            "LENGTH" => (Value::Int(text(0).chars().count() as i32), false),
            "CONCAT" => string((0..args.len()).map(text).collect()),
            "CONCAT_WS" => string((1..args.len()).map(text).collect::<Vec<_>>().join(text(0))),
            "LOWER" => string(text(0).to_lowercase()),
            "UPPER" => string(text(0).to_uppercase()),
            "TRIM" => string(text(0).trim().to_owned()),
            "LEFT" | "RIGHT" => {
                let (value, count) = (text(0), int(1));
                if count < 0 {
                    self.error(
                        ErrorKind::FunctionEvaluation,
                        format!("{name}: the length {count} is negative"),
                    );
                    return (Value::Str(value.to_owned()), true);
                }
                let chars: Vec<char> = value.chars().collect();
                let count = (count as usize).min(chars.len());
                let part = if name == "LEFT" {
                    &chars[..count]
                } else {
                    &chars[chars.len() - count..]
                };
                string(part.iter().collect())
            }
            "SUBSTRING" => {
                let chars: Vec<char> = text(0).chars().collect();
                let length = chars.len() as i64;
                let position = i64::from(int(1));
                let wanted = args.get(2).map(|value| i64::from(as_int(value)));
                if position > length || position < -length || wanted.is_some_and(|len| len < 0) {
                    self.error(
                        ErrorKind::FunctionEvaluation,
                        format!("SUBSTRING: position {position} or length is out of range for a string of {length}"),
                    );
                    return (Value::Str(String::new()), true);
                }
                if position == 0 {
                    return string(String::new());
                }
                let start = if position > 0 {
                    position - 1
                } else {
                    length + position
                } as usize;
                let end =
                    wanted.map_or(chars.len(), |len| (start as i64 + len).min(length) as usize);
                string(chars[start..end].iter().collect())
            }
            "ABS" => match int(0).checked_abs() {
                Some(value) => (Value::Int(value), false),
                None => {
                    self.error(
                        ErrorKind::Math,
                        "ABS(-2147483648) overflows a 32-bit integer".into(),
                    );
                    (Value::Int(i32::MAX), true)
                }
            },
            _ => unreachable!("every function of the table is implemented"),
        }
    }

    fn arithmetic(&mut self, op: Arithmetic, left: i32, right: i32) -> (i32, bool) {
        let result = match op {
            Arithmetic::Add => left.checked_add(right),
            Arithmetic::Subtract => left.checked_sub(right),
            Arithmetic::Multiply => left.checked_mul(right),
            Arithmetic::Divide | Arithmetic::Modulo if right == 0 => {
                self.error(ErrorKind::Math, format!("{left} divided by zero"));
                return (0, true);
            }
            Arithmetic::Divide => left.checked_div(right),
            Arithmetic::Modulo => left.checked_rem(right),
        };
        match result {
            Some(value) => (value, false),
            None => {
                self.error(
                    ErrorKind::Math,
                    format!("{op:?} of {left} and {right} overflows"),
                );
                (0, true)
            }
        }
    }

    /// An implicit cast (an operator or a function parameter).
    fn cast(&mut self, value: Value, target: Type) -> Outcome {
        match convert(&value, target, false) {
            Some(value) => (value, false),
            None => {
                self.error(
                    ErrorKind::Cast,
                    format!("cannot cast {value} to {target:?}"),
                );
                (target.zero(), true)
            }
        }
    }

    /// `INT` and `BOOL`: like an implicit cast, but integers also become booleans (non-zero).
    fn explicit(&mut self, value: Value, target: Type) -> Outcome {
        match convert(&value, target, true) {
            Some(value) => (value, false),
            None => self.cast(value, target),
        }
    }
}

/// Converts `value` to `target`. Integers become booleans only in an explicit cast (`BOOL`).
fn convert(value: &Value, target: Type, explicit: bool) -> Option<Value> {
    match (value, target) {
        (Value::Bool(_), Type::Bool) | (Value::Int(_), Type::Int) | (Value::Str(_), Type::Str) => {
            Some(value.clone())
        }
        (Value::Bool(flag), Type::Int) => Some(Value::Int(i32::from(*flag))),
        (Value::Int(number), Type::Bool) => explicit.then_some(Value::Bool(*number != 0)),
        (Value::Str(text), Type::Int) => text.trim().parse::<i32>().ok().map(Value::Int),
        (Value::Str(text), Type::Bool) => match text.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::Bool(flag), Type::Str) => Some(Value::Str(flag.to_string())),
        (Value::Int(number), Type::Str) => Some(Value::Str(number.to_string())),
    }
}

fn value_type(value: &Value) -> Type {
    match value {
        Value::Bool(_) => Type::Bool,
        Value::Int(_) => Type::Int,
        Value::Str(_) => Type::Str,
    }
}

fn as_bool(value: &Value) -> bool {
    matches!(value, Value::Bool(true))
}

fn as_int(value: &Value) -> i32 {
    match value {
        Value::Int(number) => *number,
        _ => 0,
    }
}

/// An attribute of the event: strings as strings, integer and boolean extensions as such.
fn attribute(event: &Event, name: &str) -> Option<Value> {
    match event.extension(name) {
        Some(AttrValue::Integer(number)) => {
            return Some(match i32::try_from(*number) {
                Ok(number) => Value::Int(number),
                Err(_) => Value::Str(number.to_string()),
            })
        }
        Some(AttrValue::Boolean(flag)) => return Some(Value::Bool(*flag)),
        _ => {}
    }
    event
        .attribute(name)
        .map(|value| Value::Str(value.into_owned()))
}

/// Whether `text` matches a `LIKE` pattern.
fn like(pattern: &[Like], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Like::One) => {
                p += 1;
                t += 1;
            }
            Some(Like::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Like::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            _ => match backtrack {
                Some((any_p, any_t)) => {
                    p = any_p + 1;
                    t = any_t + 1;
                    backtrack = Some((any_p, any_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|element| *element == Like::Any)
}

#[cfg(test)]
mod tests;
