//! The records of an Arrow `BinaryArray` read straight from its three buffers.
//!
//! Layout (Arrow columnar format): an optional validity bitmap (bit i, least significant first,
//! set when value i is not null), `offset + length + 1` little-endian i32 offsets, and the
//! concatenated values; a sliced array keeps the buffers and shifts by `offset`.

/// The buffers of one array, borrowed for the time of a check.
pub struct BinaryArray<'a> {
    pub validity: Option<&'a [u8]>,
    pub offsets: &'a [u8],
    pub data: &'a [u8],
    pub offset: usize,
    pub length: usize,
}

impl<'a> BinaryArray<'a> {
    /// Refuse buffers too short for `offset + length` values, before reading any.
    pub fn checked(self) -> Result<Self, String> {
        let end = self
            .offset
            .checked_add(self.length)
            .ok_or("offset + length overflows")?;
        if self.offsets.len() < (end + 1) * 4 {
            return Err(format!(
                "offsets: {} bytes for {} values",
                self.offsets.len(),
                end
            ));
        }
        if self.validity.is_some_and(|v| v.len() * 8 < end) {
            return Err(format!("validity: too short for {end} values"));
        }
        Ok(self)
    }

    fn offset_at(&self, i: usize) -> Option<usize> {
        let bytes = self.offsets.get(i * 4..i * 4 + 4)?;
        usize::try_from(i32::from_le_bytes(bytes.try_into().ok()?)).ok()
    }

    /// Value `i` (0-based, after the array's offset), or None when null or out of bounds.
    pub fn value(&self, i: usize) -> Option<&'a [u8]> {
        let at = self.offset + i;
        if let Some(validity) = self.validity {
            if validity[at / 8] & (1 << (at % 8)) == 0 {
                return None;
            }
        }
        self.data.get(self.offset_at(at)?..self.offset_at(at + 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_nulls_and_slices() {
        // ["ab", null, "", "cde"], then the same sliced from 1.
        let offsets: Vec<u8> = [0i32, 2, 2, 2, 5]
            .iter()
            .flat_map(|o| o.to_le_bytes())
            .collect();
        let validity = [0b1101u8];
        let array = |offset, length| BinaryArray {
            validity: Some(&validity),
            offsets: &offsets,
            data: b"abcde",
            offset,
            length,
        };
        let whole = array(0, 4).checked().unwrap();
        let values: Vec<_> = (0..4).map(|i| whole.value(i)).collect();
        assert_eq!(
            values,
            [Some(&b"ab"[..]), None, Some(&b""[..]), Some(&b"cde"[..])]
        );
        let sliced = array(1, 3).checked().unwrap();
        assert_eq!(sliced.value(2), Some(&b"cde"[..]));
        assert!(array(2, 3).checked().is_err());
    }
}
