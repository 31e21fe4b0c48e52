//! The compiled rules of record kinds, and the check of one parsed record against them.
//!
//! Everything here comes from the configuration built in Python from the schemas; no field
//! name, pattern, enum or limit is written in this crate.

use std::cmp::Ordering;

use crate::decimal::Decimal;
use crate::json::{parse_object, Member, Value};
use crate::pattern::Pattern;

/// Records with more properties than this are refused when the rules are built.
pub const MAX_FIELDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonType {
    String,
    Integer,
    Boolean,
}

/// What one property must satisfy (Python: `FieldRule` and `value_check`).
#[derive(Debug)]
pub struct FieldRule {
    pub name: String,
    pub json_type: JsonType,
    pub nullable: bool,
    pub pattern: Option<Pattern>,
    pub allowed: Option<Vec<String>>,
    pub minimum: Option<i128>,
    pub maximum: Option<i128>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// A date or timestamp whose day must exist (Python: `calendar_ok`).
    pub calendar: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Equal,
}

#[derive(Debug, Clone, Copy)]
pub enum Operator {
    Add,
    Sub,
    Mul,
}

/// Decimal arithmetic over fields (Python: `business.Expr`).
#[derive(Debug)]
pub enum Expr {
    Field(usize),
    Const(Decimal),
    BinOp(Operator, Box<Expr>, Box<Expr>),
}

/// `left cmp right` (Python: `business.Rule`).
#[derive(Debug)]
pub struct BusinessRule {
    pub cmp: Comparison,
    pub left: Expr,
    pub right: Expr,
}

/// One record kind: an event type or an entity (Python: `RecordRules` plus what
/// `RecordChecker.check` adds: the event time and the business rules).
#[derive(Debug)]
pub struct RecordRules {
    pub name: String,
    pub fields: Vec<FieldRule>,
    pub required: u64,
    pub closed: bool,
    /// The field compared with the future limit, if the record has one.
    pub event_time: Option<usize>,
    pub business: Vec<BusinessRule>,
    index: FieldIndex,
}

/// A valid record: which of its kind's records it is, its members, and their field indexes.
pub struct Accepted<'a> {
    pub record: usize,
    pub members: Vec<Member<'a>>,
    pub fields: Vec<u8>,
}

/// The field index of a member the record does not declare.
pub const UNKNOWN: u8 = u8::MAX;

/// What a topic carries: one record kind, or several told apart by a discriminator field.
#[derive(Debug)]
pub struct Kind {
    pub discriminator: Option<String>,
    pub records: Vec<RecordRules>,
}

impl RecordRules {
    pub fn new(
        name: String,
        fields: Vec<FieldRule>,
        required: u64,
        closed: bool,
        event_time: Option<usize>,
        business: Vec<BusinessRule>,
    ) -> RecordRules {
        let index = FieldIndex::new(fields.iter().map(|f| f.name.as_str()));
        RecordRules {
            name,
            fields,
            required,
            closed,
            event_time,
            business,
            index,
        }
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.index.get(name, &self.fields)
    }

    /// Whether the members (last value wins, as in a Python dict) satisfy every rule, with the
    /// event time at most `limit` (a timestamp string; string order is time order). `fields`
    /// receives each member's field index (`UNKNOWN` for an undeclared one).
    fn accepts(&self, members: &[Member<'_>], limit: &str, fields: &mut Vec<u8>) -> bool {
        let mut slots = [u32::MAX; MAX_FIELDS];
        let mut present = 0u64;
        for (position, (key, _)) in members.iter().enumerate() {
            match self.field_index(key) {
                Some(i) => {
                    slots[i] = position as u32;
                    present |= 1 << i;
                    fields.push(i as u8);
                }
                None if self.closed => return false,
                None => fields.push(UNKNOWN),
            }
        }
        if present & self.required != self.required {
            return false;
        }
        let value = |i: usize| &members[slots[i] as usize].1;
        for (i, rule) in self.fields.iter().enumerate() {
            if present & (1 << i) != 0 && !rule.accepts(value(i)) {
                return false;
            }
        }
        if let Some(i) = self.event_time {
            let on_time = present & (1 << i) != 0
                && matches!(value(i), Value::Str(time) if time.as_ref() <= limit);
            if !on_time {
                return false;
            }
        }
        let decimal = |i: usize| -> Option<Decimal> {
            if present & (1 << i) == 0 {
                return None;
            }
            match value(i) {
                Value::Int(n) => Decimal::from_int(*n),
                Value::Str(text) => Decimal::parse(text),
                _ => None,
            }
        };
        self.business.iter().all(|rule| rule.holds(&decimal))
    }
}

impl FieldRule {
    /// Python's `value_check(rule)(value)` for a present value.
    pub fn accepts(&self, value: &Value<'_>) -> bool {
        match (value, self.json_type) {
            (Value::Null, _) => self.nullable,
            (Value::Bool(_), JsonType::Boolean) => true,
            (Value::Int(n), JsonType::Integer) => {
                self.minimum.is_none_or(|lo| *n >= lo) && self.maximum.is_none_or(|hi| *n <= hi)
            }
            (Value::Str(text), JsonType::String) => self.accepts_str(text),
            _ => false,
        }
    }

    fn accepts_str(&self, text: &str) -> bool {
        if let Some(allowed) = &self.allowed {
            let first = text.as_bytes().first();
            // The first byte rules most values out without a call to compare the rest.
            let same =
                |a: &String| a.len() == text.len() && a.as_bytes().first() == first && a == text;
            if !allowed.iter().any(same) {
                return false;
            }
        }
        if self.min_length.is_some() || self.max_length.is_some() {
            // Python counts code points.
            let length = text.chars().count();
            if self.min_length.is_some_and(|lo| length < lo)
                || self.max_length.is_some_and(|hi| length > hi)
            {
                return false;
            }
        }
        self.pattern.as_ref().is_none_or(|p| p.is_match(text))
            && (!self.calendar || calendar_ok(text))
    }
}

/// Python's `calendar_ok` on `YYYY-MM-DD...`: only a day past the 28th needs the calendar.
/// Text of another shape (which the schema's pattern already refuses) is not accepted.
pub fn calendar_ok(text: &str) -> bool {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    if day <= 28 {
        return true;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && day <= days
}

impl BusinessRule {
    /// Whether the rule holds; a value that is missing or not exact counts as broken.
    fn holds(&self, decimal: &dyn Fn(usize) -> Option<Decimal>) -> bool {
        let order = (|| self.left.eval(decimal)?.compare(self.right.eval(decimal)?))();
        matches!(
            (order, self.cmp),
            (
                Some(Ordering::Greater),
                Comparison::Greater | Comparison::GreaterOrEqual
            ) | (
                Some(Ordering::Equal),
                Comparison::GreaterOrEqual | Comparison::Equal
            )
        )
    }
}

impl Expr {
    fn eval(&self, decimal: &dyn Fn(usize) -> Option<Decimal>) -> Option<Decimal> {
        match self {
            Expr::Field(i) => decimal(*i),
            Expr::Const(value) => Some(*value),
            Expr::BinOp(op, left, right) => {
                let (a, b) = (left.eval(decimal)?, right.eval(decimal)?);
                match op {
                    Operator::Add => a.add(b),
                    Operator::Sub => a.sub(b),
                    Operator::Mul => a.mul(b),
                }
            }
        }
    }
}

impl Kind {
    /// The position of the record the members describe, if any.
    fn record_for(&self, members: &[Member<'_>]) -> Option<usize> {
        let Some(discriminator) = &self.discriminator else {
            return (!self.records.is_empty()).then_some(0);
        };
        let (_, value) = members.iter().rev().find(|(key, _)| key == discriminator)?;
        let Value::Str(name) = value else { return None };
        self.records.iter().position(|r| r.name == name.as_ref())
    }

    /// The parsed record when `raw` is a valid record of this kind whose event time is at most
    /// `limit`.
    pub fn check<'a>(&self, raw: &'a [u8], limit: &str) -> Option<Accepted<'a>> {
        let mut members = Vec::with_capacity(16);
        if !parse_object(raw, &mut members) {
            return None;
        }
        let record = self.record_for(&members)?;
        let mut fields = Vec::with_capacity(members.len());
        self.records[record]
            .accepts(&members, limit, &mut fields)
            .then_some(Accepted {
                record,
                members,
                fields,
            })
    }

    /// Whether `raw` is a valid record of this kind whose event time is at most `limit`.
    pub fn accepts(&self, raw: &[u8], limit: &str) -> bool {
        self.check(raw, limit).is_some()
    }
}

/// Field names to positions: open addressing on a small hash of the name.
#[derive(Debug)]
struct FieldIndex {
    slots: Vec<u8>,
    mask: usize,
}

const EMPTY: u8 = u8::MAX;

fn name_hash(name: &[u8]) -> usize {
    // Length, first and last byte: enough to tell a record's few dozen names apart (collisions
    // only cost a probe), without reading the whole name.
    match name {
        [] => 0,
        [first, .., last] | [first @ last] => {
            name.len().wrapping_mul(31) ^ usize::from(*first).wrapping_mul(7) ^ usize::from(*last)
        }
    }
}

impl FieldIndex {
    fn new<'a>(names: impl Iterator<Item = &'a str>) -> FieldIndex {
        let names: Vec<&str> = names.collect();
        let size = (names.len() * 4).next_power_of_two().max(8);
        let mut index = FieldIndex {
            slots: vec![EMPTY; size],
            mask: size - 1,
        };
        for (i, name) in names.iter().enumerate() {
            let mut slot = name_hash(name.as_bytes()) & index.mask;
            while index.slots[slot] != EMPTY {
                slot = (slot + 1) & index.mask;
            }
            index.slots[slot] = i as u8;
        }
        index
    }

    fn get(&self, name: &str, fields: &[FieldRule]) -> Option<usize> {
        let mut slot = name_hash(name.as_bytes()) & self.mask;
        loop {
            let i = self.slots[slot];
            if i == EMPTY {
                return None;
            }
            if fields[i as usize].name == name {
                return Some(i as usize);
            }
            slot = (slot + 1) & self.mask;
        }
    }
}
