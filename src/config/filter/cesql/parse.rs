//! The CESQL lexer and a precedence-climbing parser for the grammar described in `cesql.rs`.

use std::fmt;

use super::{Arithmetic, Comparison, Like, Logic, Node, Value};

/// A syntax error and where it is (1-based character position in the expression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A run of digits (a sign is a separate `-` token).
    Int(String),
    Str(String),
    Word(String),
    Open,
    Close,
    Comma,
    Symbol(&'static str),
}

const SYMBOLS: [&str; 12] = [
    "!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%",
];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let position = index + 1;
        if c.is_whitespace() {
            index += 1;
        } else if c == '\'' || c == '"' {
            let mut value = String::new();
            index += 1;
            loop {
                match chars.get(index) {
                    None => {
                        return Err(ParseError {
                            position,
                            message: "the string is not closed".into(),
                        })
                    }
                    Some('\\') if chars.get(index + 1) == Some(&c) => {
                        value.push(c);
                        index += 2;
                    }
                    Some('\\') if chars.get(index + 1).is_some() => {
                        value.push('\\');
                        value.push(chars[index + 1]);
                        index += 2;
                    }
                    Some(quote) if *quote == c && chars.get(index + 1) == Some(&c) => {
                        value.push(c);
                        index += 2;
                    }
                    Some(quote) if *quote == c => {
                        index += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        index += 1;
                    }
                }
            }
            tokens.push((Token::Str(value), position));
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '_')
            {
                index += 1;
            }
            let word: String = chars[start..index].iter().collect();
            if word.bytes().all(|byte| byte.is_ascii_digit()) {
                tokens.push((Token::Int(word), position));
            } else {
                tokens.push((Token::Word(word), position));
            }
        } else if c == '(' {
            tokens.push((Token::Open, position));
            index += 1;
        } else if c == ')' {
            tokens.push((Token::Close, position));
            index += 1;
        } else if c == ',' {
            tokens.push((Token::Comma, position));
            index += 1;
        } else {
            let rest: String = chars[index..chars.len().min(index + 2)].iter().collect();
            let symbol = SYMBOLS
                .iter()
                .find(|symbol| rest.starts_with(*symbol))
                .ok_or_else(|| ParseError {
                    position,
                    message: format!("unexpected character {c:?}"),
                })?;
            tokens.push((Token::Symbol(symbol), position));
            index += symbol.len();
        }
    }
    Ok(tokens)
}

/// Parses a whole expression.
pub(super) fn parse(text: &str) -> Result<Node, ParseError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        end: text.chars().count() + 1,
    };
    if parser.tokens.is_empty() {
        return Err(ParseError {
            position: 1,
            message: "the expression is empty".into(),
        });
    }
    let node = parser.logic()?;
    match parser.tokens.get(parser.next) {
        None => Ok(node),
        Some((token, position)) => Err(ParseError {
            position: *position,
            message: format!("unexpected {} after a complete expression", describe(token)),
        }),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Int(digits) => format!("number {digits}"),
        Token::Str(text) => format!("string {text:?}"),
        Token::Word(word) => format!("`{word}`"),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
        Token::Symbol(symbol) => format!("`{symbol}`"),
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    /// The position just past the text, for "ended too early" errors.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(token, _)| token)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.end, |(_, position)| *position)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            position: self.position(),
            message: message.into(),
        })
    }

    /// Whether the next token is the keyword `word` (any case); consumes it if so.
    fn keyword(&mut self, word: &str) -> bool {
        let found =
            matches!(self.peek(), Some(Token::Word(next)) if next.eq_ignore_ascii_case(word));
        if found {
            self.next += 1;
        }
        found
    }

    fn symbol(&mut self, symbols: &[&'static str]) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Symbol(symbol)) if symbols.contains(symbol) => {
                let symbol = *symbol;
                self.next += 1;
                Some(symbol)
            }
            _ => None,
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(token) {
            self.next += 1;
            Ok(())
        } else {
            let found = self.peek().map_or("the end".to_owned(), describe);
            self.error(format!("expected {what}, found {found}"))
        }
    }

    /// `AND`, `OR` and `XOR`: one level, grouping to the right.
    fn logic(&mut self) -> Result<Node, ParseError> {
        let left = self.comparison()?;
        let op = if self.keyword("AND") {
            Logic::And
        } else if self.keyword("OR") {
            Logic::Or
        } else if self.keyword("XOR") {
            Logic::Xor
        } else {
            return Ok(left);
        };
        let right = self.logic()?;
        Ok(Node::Logic(op, Box::new(left), Box::new(right)))
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let mut left = self.additive()?;
        while let Some(symbol) = self.symbol(&["=", "!=", "<>", "<", "<=", ">", ">="]) {
            let op = match symbol {
                "=" => Comparison::Equal,
                "!=" | "<>" => Comparison::NotEqual,
                "<" => Comparison::Less,
                "<=" => Comparison::LessOrEqual,
                ">" => Comparison::Greater,
                _ => Comparison::GreaterOrEqual,
            };
            let right = self.additive()?;
            left = Node::Compare(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Node, ParseError> {
        let mut left = self.multiplicative()?;
        while let Some(symbol) = self.symbol(&["+", "-"]) {
            let op = if symbol == "+" {
                Arithmetic::Add
            } else {
                Arithmetic::Subtract
            };
            let right = self.multiplicative()?;
            left = Node::Arithmetic(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Node, ParseError> {
        let mut left = self.postfix()?;
        while let Some(symbol) = self.symbol(&["*", "/", "%"]) {
            let op = match symbol {
                "*" => Arithmetic::Multiply,
                "/" => Arithmetic::Divide,
                _ => Arithmetic::Modulo,
            };
            let right = self.postfix()?;
            left = Node::Arithmetic(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `x [NOT] LIKE 'pattern'` and `x [NOT] IN (a, b, ...)`.
    fn postfix(&mut self) -> Result<Node, ParseError> {
        let mut value = self.unary()?;
        loop {
            let start = self.next;
            let negated = self.keyword("NOT");
            if self.keyword("LIKE") {
                let Some(Token::Str(pattern)) = self.peek().cloned() else {
                    return self.error("LIKE takes a string literal pattern");
                };
                self.next += 1;
                value = Node::Like {
                    value: Box::new(value),
                    pattern: compile_like(&pattern),
                    negated,
                };
            } else if self.keyword("IN") {
                self.expect(&Token::Open, "`(` after IN")?;
                let mut set = vec![self.logic()?];
                while self.peek() == Some(&Token::Comma) {
                    self.next += 1;
                    set.push(self.logic()?);
                }
                self.expect(&Token::Close, "`)` closing the IN set")?;
                value = Node::In {
                    value: Box::new(value),
                    set,
                    negated,
                };
            } else {
                if negated {
                    self.next = start;
                    return self.error("NOT here must be followed by LIKE or IN");
                }
                return Ok(value);
            }
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.keyword("NOT") {
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        if self.symbol(&["-"]).is_some() {
            // `-` right before digits is a negative literal, so -2147483648 fits.
            let adjacent = matches!(
                (self.tokens.get(self.next - 1), self.tokens.get(self.next)),
                (Some((_, minus)), Some((Token::Int(_), digits))) if *digits == minus + 1
            );
            if adjacent {
                let Some(Token::Int(digits)) = self.peek().cloned() else {
                    unreachable!("checked above")
                };
                let node = self.integer(&format!("-{digits}"))?;
                self.next += 1;
                return Ok(node);
            }
            return Ok(Node::Negate(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn integer(&self, digits: &str) -> Result<Node, ParseError> {
        match digits.parse::<i32>() {
            Ok(number) => Ok(Node::Literal(Value::Int(number))),
            Err(_) => self.error(format!("{digits} is not a 32-bit integer")),
        }
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return self.error("the expression ends too early");
        };
        match token {
            Token::Int(digits) => {
                let node = self.integer(&digits)?;
                self.next += 1;
                Ok(node)
            }
            Token::Str(text) => {
                self.next += 1;
                Ok(Node::Literal(Value::Str(text)))
            }
            Token::Open => {
                self.next += 1;
                let node = self.logic()?;
                self.expect(&Token::Close, "`)`")?;
                Ok(node)
            }
            Token::Word(word) => {
                if word.eq_ignore_ascii_case("TRUE") || word.eq_ignore_ascii_case("FALSE") {
                    self.next += 1;
                    return Ok(Node::Literal(Value::Bool(
                        word.eq_ignore_ascii_case("TRUE"),
                    )));
                }
                if word.eq_ignore_ascii_case("EXISTS") {
                    self.next += 1;
                    return match self.peek().cloned() {
                        Some(Token::Word(name)) if is_identifier(&name) => {
                            self.next += 1;
                            Ok(Node::Exists(name))
                        }
                        _ => self.error("EXISTS takes an attribute name"),
                    };
                }
                if is_keyword(&word) {
                    return self.error(format!("unexpected keyword {word}"));
                }
                self.next += 1;
                if self.peek() == Some(&Token::Open) {
                    self.next += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Token::Close) {
                        args.push(self.logic()?);
                        while self.peek() == Some(&Token::Comma) {
                            self.next += 1;
                            args.push(self.logic()?);
                        }
                    }
                    self.expect(&Token::Close, "`)` closing the arguments")?;
                    return Ok(Node::Call(word.to_ascii_uppercase(), args));
                }
                if !is_identifier(&word) {
                    self.next -= 1;
                    return self.error(format!(
                        "{word:?} is not an attribute name (letters and digits)"
                    ));
                }
                Ok(Node::Attribute(word))
            }
            other => self.error(format!("unexpected {}", describe(&other))),
        }
    }
}

fn is_identifier(word: &str) -> bool {
    word.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

fn is_keyword(word: &str) -> bool {
    ["AND", "OR", "XOR", "NOT", "LIKE", "IN"]
        .iter()
        .any(|keyword| word.eq_ignore_ascii_case(keyword))
}

/// `%` any run, `_` one character, `\%` and `\_` the characters themselves.
fn compile_like(pattern: &str) -> Vec<Like> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut compiled = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '\\' if matches!(chars.get(index + 1), Some('%' | '_')) => {
                compiled.push(Like::Char(chars[index + 1]));
                index += 2;
                continue;
            }
            '%' => compiled.push(Like::Any),
            '_' => compiled.push(Like::One),
            c => compiled.push(Like::Char(c)),
        }
        index += 1;
    }
    compiled
}
