//! The Python dict of a valid record, as `orjson.loads` would return it.
//!
//! Keys and enum values are Python strings made once, when the validator is built, and shared by
//! every record, like orjson's key cache; other values are made per record.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::json::Value;
use crate::record::{Accepted, Kind, RecordRules, UNKNOWN};

/// The shared strings of one record kind's fields, in field order.
pub struct RecordObjects {
    keys: Vec<Py<PyString>>,
    allowed: Vec<Option<Vec<Py<PyString>>>>,
}

impl RecordObjects {
    pub fn new(py: Python<'_>, rules: &RecordRules) -> RecordObjects {
        let string = |text: &str| PyString::intern(py, text).unbind();
        RecordObjects {
            keys: rules.fields.iter().map(|f| string(&f.name)).collect(),
            allowed: (rules.fields.iter())
                .map(|f| {
                    f.allowed
                        .as_ref()
                        .map(|values| values.iter().map(|v| string(v)).collect())
                })
                .collect(),
        }
    }
}

/// The shared strings of every record of every kind.
pub fn objects_of(py: Python<'_>, kinds: &[Kind]) -> Vec<Vec<RecordObjects>> {
    kinds
        .iter()
        .map(|k| {
            k.records
                .iter()
                .map(|r| RecordObjects::new(py, r))
                .collect()
        })
        .collect()
}

/// The dict of an accepted record, members in input order (a repeated key keeps its first
/// position and its last value, as in Python); None if it holds a nested array or object,
/// which is left to orjson.
pub fn record_dict<'py>(
    py: Python<'py>,
    rules: &RecordRules,
    objects: &RecordObjects,
    accepted: &Accepted<'_>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let dict = presized_dict(py, accepted.members.len())?;
    for ((key, value), &field) in accepted.members.iter().zip(&accepted.fields) {
        let value = match value {
            Value::Null => py.None().into_bound(py),
            Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            Value::Int(n) => match i64::try_from(*n) {
                Ok(small) => PyInt::new(py, small).into_any(),
                Err(_) => n.into_pyobject(py)?.into_any(),
            },
            Value::Float(f) => PyFloat::new(py, *f).into_any(),
            Value::Str(text) => match shared(py, rules, objects, field, text) {
                Some(string) => string.into_any(),
                None => new_string(py, text)?,
            },
            Value::Nested => return Ok(None),
        };
        if field == UNKNOWN {
            dict.set_item(PyString::new(py, key), value)?;
        } else {
            dict.set_item(objects.keys[usize::from(field)].bind(py), value)?;
        }
    }
    Ok(Some(dict))
}

/// An empty dict with room for `size` items, so that filling it never resizes it.
fn presized_dict(py: Python<'_>, size: usize) -> PyResult<Bound<'_, PyDict>> {
    extern "C" {
        // CPython's own (cpython/dictobject.h), exported since 3.x; pyo3-ffi leaves it out.
        fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
    }
    let size = pyo3::ffi::Py_ssize_t::try_from(size).unwrap_or(0);
    // SAFETY: called with the GIL held; a null result is turned into the pending exception.
    let dict = unsafe { Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(size))? };
    Ok(dict.cast_into::<PyDict>()?)
}

/// A new Python string; ASCII text is copied as is, sparing CPython's UTF-8 decoding.
fn new_string<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    if !text.is_ascii() {
        return Ok(PyString::new(py, text).into_any());
    }
    let length = pyo3::ffi::Py_ssize_t::try_from(text.len())?;
    // SAFETY: with the GIL held, PyUnicode_New(n, 127) makes a compact ASCII string of n
    // one-byte characters whose data we fill before anyone else sees it.
    unsafe {
        let string = Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyUnicode_New(length, 127))?;
        let data = pyo3::ffi::PyUnicode_1BYTE_DATA(string.as_ptr());
        std::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        Ok(string)
    }
}

/// The shared string of an enum value.
fn shared<'py>(
    py: Python<'py>,
    rules: &RecordRules,
    objects: &RecordObjects,
    field: u8,
    text: &str,
) -> Option<Bound<'py, PyString>> {
    let field = usize::from(field);
    let values = objects.allowed.get(field)?.as_ref()?;
    let position = rules.fields[field]
        .allowed
        .as_ref()?
        .iter()
        .position(|a| a == text)?;
    Some(values[position].bind(py).clone())
}
