//! A scanner for one JSON document that must be an object, accepting exactly what orjson accepts.
//!
//! Members are kept in input order with their scalar values decoded; arrays and objects nested
//! in a member are checked for syntax and kept as `Value::Nested`. Strings borrow from the input
//! unless they contain escapes. `parse_tree` reads a whole document, for the configuration.

use std::borrow::Cow;

/// orjson refuses documents nested deeper than this.
const MAX_DEPTH: usize = 1024;

/// A member's value, as Python would see it after `orjson.loads`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// A Python `int`: an integer literal from -2^63 to 2^64 - 1.
    Int(i128),
    /// A Python `float`: any other finite number (Rust and orjson both round correctly).
    Float(f64),
    Str(Cow<'a, str>),
    /// An array or an object.
    Nested,
}

pub type Member<'a> = (Cow<'a, str>, Value<'a>);

/// Parse `input` into `members` when it is a JSON object; false when it is anything else.
pub fn parse_object<'a>(input: &'a [u8], members: &mut Vec<Member<'a>>) -> bool {
    let mut scanner = Scanner { input, pos: 0 };
    scanner.skip_space();
    if scanner.peek() != Some(b'{') {
        return false;
    }
    scanner.pos += 1;
    if !scanner.members(members) {
        return false;
    }
    scanner.skip_space();
    scanner.pos == input.len()
}

/// A whole JSON document (the configuration; records use `parse_object`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The value of `key` in an object (the last, if repeated).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        if let Json::Str(text) = self {
            Some(text)
        } else {
            None
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        if let Json::Bool(b) = self {
            Some(*b)
        } else {
            None
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        if let Json::Int(n) = self {
            i64::try_from(*n).ok()
        } else {
            None
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        if let Json::Array(items) = self {
            Some(items)
        } else {
            None
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }
}

/// Parse a whole JSON document; None if it is not valid JSON.
pub fn parse_tree(input: &[u8]) -> Option<Json> {
    let mut scanner = Scanner { input, pos: 0 };
    scanner.skip_space();
    let tree = scanner.tree(1)?;
    scanner.skip_space();
    (scanner.pos == input.len()).then_some(tree)
}

struct Scanner<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        // Producers rarely write whitespace: one comparison settles the usual case.
        if self.peek().is_some_and(|c| c > b' ') {
            return;
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The members of the top-level object, after its `{`.
    fn members(&mut self, members: &mut Vec<Member<'a>>) -> bool {
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return true;
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return false;
            }
            let Some(key) = self.string() else {
                return false;
            };
            self.skip_space();
            if self.peek() != Some(b':') {
                return false;
            }
            self.pos += 1;
            self.skip_space();
            let Some(value) = self.value(1) else {
                return false;
            };
            members.push((key, value));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'{' | b'[' => self.nested(depth + 1).then_some(Value::Nested),
            b't' => self.literal(b"true").then_some(Value::Bool(true)),
            b'f' => self.literal(b"false").then_some(Value::Bool(false)),
            b'n' => self.literal(b"null").then_some(Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn tree(&mut self, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        let close = match self.peek()? {
            b'{' => b'}',
            b'[' => b']',
            _ => {
                return Some(match self.value(depth)? {
                    Value::Null => Json::Null,
                    Value::Bool(b) => Json::Bool(b),
                    Value::Int(n) => Json::Int(n),
                    Value::Float(f) => Json::Float(f),
                    Value::Str(text) => Json::Str(text.into_owned()),
                    Value::Nested => return None,
                })
            }
        };
        self.pos += 1;
        let (mut items, mut members) = (Vec::new(), Vec::new());
        self.skip_space();
        if self.peek() != Some(close) {
            loop {
                self.skip_space();
                if close == b'}' {
                    if self.peek() != Some(b'"') {
                        return None;
                    }
                    let key = self.string()?.into_owned();
                    self.skip_space();
                    if self.peek() != Some(b':') {
                        return None;
                    }
                    self.pos += 1;
                    self.skip_space();
                    members.push((key, self.tree(depth + 1)?));
                } else {
                    items.push(self.tree(depth + 1)?);
                }
                self.skip_space();
                match self.peek()? {
                    b',' => self.pos += 1,
                    c if c == close => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        Some(if close == b'}' {
            Json::Object(members)
        } else {
            Json::Array(items)
        })
    }

    /// Check an array or object for syntax, without keeping it.
    fn nested(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let close = if self.input[self.pos] == b'{' {
            b'}'
        } else {
            b']'
        };
        self.pos += 1;
        self.skip_space();
        if self.peek() == Some(close) {
            self.pos += 1;
            return true;
        }
        loop {
            self.skip_space();
            if close == b'}' {
                if self.peek() != Some(b'"') || self.string().is_none() {
                    return false;
                }
                self.skip_space();
                if self.peek() != Some(b':') {
                    return false;
                }
                self.pos += 1;
                self.skip_space();
            }
            if self.value(depth).is_none() {
                return false;
            }
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    /// A number literal: an `Int` when orjson makes it a Python int, else a finite `Float`.
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        let int_end = self.pos;
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
            integral = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.skip_digits();
            integral = false;
        }
        let digits = &self.input[int_start..int_end];
        if integral && digits.len() <= 20 {
            let magnitude = digits
                .iter()
                .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
            let value = if negative { -magnitude } else { magnitude };
            if (-(1i128 << 63)..=(1i128 << 64) - 1).contains(&value) {
                return Some(Value::Int(value));
            }
        }
        // Only ASCII digits and signs were consumed, so the slice is valid UTF-8.
        let text = std::str::from_utf8(&self.input[start..self.pos]).ok()?;
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// A string literal starting at its opening quote, decoded.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        let mut ascii = true;
        loop {
            self.skip_plain();
            match *self.input.get(self.pos)? {
                b'"' => {
                    let raw = &self.input[start..self.pos];
                    self.pos += 1;
                    return Some(Cow::Borrowed(if ascii {
                        // SAFETY: every byte of `raw` is below 0x80, so it is valid UTF-8.
                        unsafe { std::str::from_utf8_unchecked(raw) }
                    } else {
                        std::str::from_utf8(raw).ok()?
                    }));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => {
                    ascii = false;
                    self.pos += 1;
                }
            }
        }
        let mut text = String::from(std::str::from_utf8(&self.input[start..self.pos]).ok()?);
        loop {
            let run = self.pos;
            while let Some(&c) = self.input.get(self.pos) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            text.push_str(std::str::from_utf8(&self.input[run..self.pos]).ok()?);
            match *self.input.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(text));
                }
                b'\\' => {
                    self.pos += 1;
                    text.push(self.escape()?);
                }
                _ => return None,
            }
        }
    }

    /// Advance over ASCII string content that needs no attention, eight bytes at a time: stop at
    /// a quote, a backslash, a control character or a non-ASCII byte.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        // The lowest flagged byte of these classic bit tricks is exact, which is all we use.
        let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
        while let Some(chunk) = self.input.get(self.pos..self.pos + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let special = zero_byte(w ^ (ONES * u64::from(b'"')))
                | zero_byte(w ^ (ONES * u64::from(b'\\')))
                | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
                | (w & HIGH);
            if special != 0 {
                self.pos += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
        while let Some(&c) = self.input.get(self.pos) {
            if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
                return;
            }
            self.pos += 1;
        }
    }

    /// The character of one escape sequence, after its backslash.
    fn escape(&mut self) -> Option<char> {
        let c = *self.input.get(self.pos)?;
        self.pos += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xDC00..0xE000).contains(&unit) {
                    return None;
                }
                if (0xD800..0xDC00).contains(&unit) {
                    if !self.input[self.pos..].starts_with(b"\\u") {
                        return None;
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    return char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                }
                return char::from_u32(unit);
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.input.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        digits
            .iter()
            .try_fold(0u32, |n, &d| Some(n * 16 + (d as char).to_digit(16)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Option<Vec<Member<'_>>> {
        let mut members = Vec::new();
        parse_object(input.as_bytes(), &mut members).then_some(members)
    }

    #[test]
    fn scalars_and_nesting() {
        let members = parse(r#" {"a": 1, "b": "x\u00e9\n", "c": [1, {"d": null}], "e": -0} "#);
        let members = members.unwrap();
        assert_eq!(members[0], ("a".into(), Value::Int(1)));
        assert_eq!(members[1], ("b".into(), Value::Str("x\u{e9}\n".into())));
        assert_eq!(members[2].1, Value::Nested);
        assert_eq!(members[3].1, Value::Int(0));
    }

    #[test]
    fn numbers_like_orjson() {
        assert_eq!(
            parse(r#"{"a":18446744073709551615}"#).unwrap()[0].1,
            Value::Int((1 << 64) - 1)
        );
        assert_eq!(
            parse(r#"{"a":18446744073709551616}"#).unwrap()[0].1,
            Value::Float(18446744073709551616.0)
        );
        assert_eq!(
            parse(r#"{"a":-9223372036854775809}"#).unwrap()[0].1,
            Value::Float(-9223372036854775809.0)
        );
        assert_eq!(parse(r#"{"a":2.0}"#).unwrap()[0].1, Value::Float(2.0));
        for bad in [
            r#"{"a":1e400}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn whole_documents() {
        let tree = parse_tree(br#" {"a": [1, -2.5, "x", null, {"b": true}], "a": {}} "#).unwrap();
        assert_eq!(tree.get("a"), Some(&Json::Object(vec![])));
        let Json::Object(members) = &tree else {
            panic!("not an object")
        };
        let items = members[0].1.as_array().unwrap();
        assert_eq!(
            items[..4],
            [
                Json::Int(1),
                Json::Float(-2.5),
                Json::Str("x".into()),
                Json::Null
            ]
        );
        assert_eq!(items[4].get("b").and_then(Json::as_bool), Some(true));
        for bad in ["", "[1,]", "{\"a\"}", "[1] 2", "{\"a\":1,}"] {
            assert!(parse_tree(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn not_objects_and_broken_text() {
        for bad in [
            "[]",
            "\"x\"",
            "{",
            "{}x",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\u{1}\"}",
            "{'a':1}",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            parse("{\"a\":\"\\ud83d\\ude00\"}").unwrap()[0].1,
            Value::Str("😀".into())
        );
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert!(parse(&deep).is_none());
        let mut members = Vec::new();
        assert!(!parse_object(b"{\"a\":\"\xc3\x28\"}", &mut members));
    }
}
