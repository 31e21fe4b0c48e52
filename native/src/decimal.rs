//! Exact decimal arithmetic for business rules, agreeing with Python's `Decimal`.
//!
//! Python computes with 28 significant digits and rounds beyond; here a result that needs more
//! digits (or a value that is not a plain decimal literal) has no value, and a rule over it is
//! reported as broken so that the Python rules decide.

use std::cmp::Ordering;

const MAX_COEFFICIENT: i128 = 10i128.pow(28);

/// `coefficient * 10^-scale`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    coefficient: i128,
    scale: u32,
}

impl Decimal {
    /// Parse `-?digits(.digits)?`, the only form a valid money field has.
    pub fn parse(text: &str) -> Option<Decimal> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || (digits.contains('.') && fraction.is_empty()) {
            return None;
        }
        let mut coefficient = 0i128;
        for d in whole.bytes().chain(fraction.bytes()) {
            if !d.is_ascii_digit() {
                return None;
            }
            coefficient = coefficient * 10 + i128::from(d - b'0');
            if coefficient >= MAX_COEFFICIENT {
                return None;
            }
        }
        let scale = u32::try_from(fraction.len()).ok()?;
        Decimal::checked(
            if text.starts_with('-') {
                -coefficient
            } else {
                coefficient
            },
            scale,
        )
    }

    pub fn from_int(value: i128) -> Option<Decimal> {
        Decimal::checked(value, 0)
    }

    fn checked(coefficient: i128, scale: u32) -> Option<Decimal> {
        (coefficient.abs() < MAX_COEFFICIENT).then_some(Decimal { coefficient, scale })
    }

    /// Both coefficients at the larger scale.
    fn aligned(self, other: Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let lift = |d: Decimal| {
            d.coefficient
                .checked_mul(10i128.checked_pow(scale - d.scale)?)
        };
        Some((lift(self)?, lift(other)?, scale))
    }

    pub fn add(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Decimal::checked(a.checked_add(b)?, scale)
    }

    pub fn sub(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Decimal::checked(a.checked_sub(b)?, scale)
    }

    pub fn mul(self, other: Decimal) -> Option<Decimal> {
        let coefficient = self.coefficient.checked_mul(other.coefficient)?;
        Decimal::checked(coefficient, self.scale.checked_add(other.scale)?)
    }

    /// Numeric order, whatever the scales.
    pub fn compare(self, other: Decimal) -> Option<Ordering> {
        let (a, b, _) = self.aligned(other)?;
        Some(a.cmp(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn arithmetic_is_exact() {
        let total = d("59.99").mul(Decimal::from_int(2).unwrap()).unwrap();
        let total = total.sub(d("12.00")).unwrap().add(d("9.60")).unwrap();
        assert_eq!(total.compare(d("117.58")), Some(Ordering::Equal));
        assert_eq!(d("0.10").compare(d("0.1")), Some(Ordering::Equal));
        assert_eq!(d("-0.01").compare(d("0")), Some(Ordering::Less));
    }

    #[test]
    fn only_plain_literals_parse() {
        for bad in [
            "", "-", ".5", "5.", "1e2", "1,0", " 1", "+1", "NaN", "1.2.3",
        ] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
        assert!(Decimal::parse("9".repeat(29).as_str()).is_none());
    }
}
