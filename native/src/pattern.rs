//! Schema patterns: Rust `regex`, or a per-position byte check when the pattern allows it.
//!
//! A pattern that is `^`, then a fixed sequence of ASCII character sets, then `$` (a canonical
//! UUID is one) matches exactly the texts of that length whose n-th byte is in the n-th set.
//! Checking that is several times faster than running the regex's automaton, and exact; the
//! shape is read from the pattern's syntax tree, so no pattern is recognised by name.

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

#[derive(Debug)]
pub enum Pattern {
    Positions(Positions),
    Regex(Regex),
}

/// The sets of a fixed-length pattern: a 256-byte membership table per distinct set, and which
/// table each position uses.
#[derive(Debug)]
pub struct Positions {
    tables: Vec<u8>,
    table_of: Vec<usize>,
}

impl Positions {
    fn new(sets: &[u128]) -> Positions {
        let mut distinct: Vec<u128> = Vec::new();
        let mut table_of = Vec::with_capacity(sets.len());
        for set in sets {
            let index = distinct.iter().position(|d| d == set).unwrap_or_else(|| {
                distinct.push(*set);
                distinct.len() - 1
            });
            table_of.push(index * 256);
        }
        let tables = (distinct.iter())
            .flat_map(|set| (0..256u32).map(move |b| u8::from(b < 128 && set >> b & 1 == 1)))
            .collect();
        Positions { tables, table_of }
    }

    fn is_match(&self, text: &[u8]) -> bool {
        text.len() == self.table_of.len()
            && (text.iter().zip(&self.table_of)).fold(1, |ok, (&b, &table)| {
                ok & self.tables[table + usize::from(b)]
            }) == 1
    }
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let regex = Regex::new(source).map_err(|e| e.to_string())?;
        Ok(match positions(source) {
            Some(sets) => Pattern::Positions(Positions::new(&sets)),
            None => Pattern::Regex(regex),
        })
    }

    /// Whether the pattern matches `text` (search semantics, as Python's `re.search`).
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Pattern::Positions(positions) => positions.is_match(text.as_bytes()),
            Pattern::Regex(regex) => regex.is_match(text),
        }
    }
}

/// The per-position sets of `^<fixed ASCII sets>$`, or None for any other pattern.
fn positions(source: &str) -> Option<Vec<u128>> {
    let hir = regex_syntax::parse(source).ok()?;
    let HirKind::Concat(items) = hir.kind() else {
        return None;
    };
    let (first, rest) = items.split_first()?;
    let (last, middle) = rest.split_last()?;
    if first.kind() != &HirKind::Look(Look::Start) || last.kind() != &HirKind::Look(Look::End) {
        return None;
    }
    let mut sets = Vec::new();
    for item in middle {
        push_sets(item, &mut sets)?;
    }
    Some(sets)
}

fn push_sets(hir: &Hir, sets: &mut Vec<u128>) -> Option<()> {
    match hir.kind() {
        HirKind::Literal(literal) => {
            for &b in literal.0.iter() {
                sets.push(ascii_set([(b, b)])?);
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges().iter().map(|r| (r.start(), r.end()));
            let ranges: Option<Vec<(u8, u8)>> = ranges
                .map(|(a, b)| Some((u8::try_from(a).ok()?, u8::try_from(b).ok()?)))
                .collect();
            sets.push(ascii_set(ranges?)?);
        }
        HirKind::Class(Class::Bytes(class)) => {
            sets.push(ascii_set(
                class.ranges().iter().map(|r| (r.start(), r.end())),
            )?);
        }
        HirKind::Repetition(repetition) if repetition.max == Some(repetition.min) => {
            for _ in 0..repetition.min {
                push_sets(&repetition.sub, sets)?;
            }
        }
        HirKind::Capture(capture) => push_sets(&capture.sub, sets)?,
        _ => return None,
    }
    Some(())
}

fn ascii_set(ranges: impl IntoIterator<Item = (u8, u8)>) -> Option<u128> {
    let mut set = 0u128;
    for (start, end) in ranges {
        if end >= 0x80 {
            return None;
        }
        for b in start..=end {
            set |= 1 << b;
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

    #[test]
    fn fixed_sets_become_positions() {
        let Pattern::Positions(positions) = Pattern::new(UUID).unwrap() else {
            panic!("not fixed")
        };
        assert_eq!(
            (positions.table_of.len(), positions.tables.len()),
            (36, 2 * 256)
        );
        for other in [
            "^https?://",
            "^-?[0-9]{1,8}\\.[0-9]{2}$",
            "^(0[1-9]|1[0-2])$",
            "[a-z]{2}$",
        ] {
            assert!(
                matches!(Pattern::new(other).unwrap(), Pattern::Regex(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn positions_agree_with_the_regex() {
        let fast = Pattern::new(UUID).unwrap();
        let slow = Regex::new(UUID).unwrap();
        let good = "5b0c3a8e-8f1d-4c2a-9b7e-1d2f3a4b5c6d";
        let mut texts = vec![
            good.to_owned(),
            String::new(),
            format!("{good}\n"),
            good.to_uppercase(),
        ];
        for i in 0..good.len() {
            for replacement in ["g", "-", "0", "é", "\u{7f}", ""] {
                texts.push(format!("{}{replacement}{}", &good[..i], &good[i + 1..]));
            }
        }
        for text in texts {
            assert_eq!(fast.is_match(&text), slow.is_match(&text), "{text:?}");
        }
    }
}
