//! `lambdapipe_native`: the "is this record valid?" answer of lambdapipe's contracts, natively.
//!
//! A `Validator` is built from a JSON configuration that Python derives from the schemas
//! (`lambdapipe.contracts.native`); this crate knows no field, pattern, enum or limit of its own.
//! It only answers yes or no: the Python rules name the reason of a rejected record.

mod config;
mod decimal;
mod json;
mod objects;
mod pattern;
mod record;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::objects::{objects_of, record_dict, RecordObjects};
use crate::record::Kind;

/// Checks raw records of the configured kinds against every rule compiled from the schemas.
#[pyclass(frozen, module = "lambdapipe_native")]
struct Validator {
    names: Vec<String>,
    kinds: Vec<Kind>,
    objects: Vec<Vec<RecordObjects>>,
}

impl Validator {
    fn kind(&self, kind: usize) -> PyResult<&Kind> {
        self.kinds
            .get(kind)
            .ok_or_else(|| PyIndexError::new_err(format!("no kind {kind}")))
    }
}

#[pymethods]
impl Validator {
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let (names, kinds): (Vec<String>, Vec<Kind>) = config::kinds(config)
            .map_err(PyValueError::new_err)?
            .into_iter()
            .unzip();
        let objects = objects_of(py, &kinds);
        Ok(Validator {
            names,
            kinds,
            objects,
        })
    }

    /// The kind names, in the order `check` numbers them.
    #[getter]
    fn kinds(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Whether `raw` (bytes; any other type is not accepted) is a valid record of kind number
    /// `kind` whose event time is at most `limit`.
    fn check(&self, kind: usize, raw: &Bound<'_, PyAny>, limit: &str) -> PyResult<bool> {
        let kind = self.kind(kind)?;
        Ok(raw
            .cast::<PyBytes>()
            .is_ok_and(|b| kind.accepts(b.as_bytes(), limit)))
    }

    /// `check`, returning the record as `orjson.loads` would when valid, else None (also for a
    /// valid record holding a nested array or object, which this does not build).
    fn parse<'py>(
        &self,
        py: Python<'py>,
        kind: usize,
        raw: &Bound<'py, PyAny>,
        limit: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let rules = self.kind(kind)?;
        let Ok(bytes) = raw.cast::<PyBytes>() else {
            return Ok(None);
        };
        let Some(accepted) = rules.check(bytes.as_bytes(), limit) else {
            return Ok(None);
        };
        let record = accepted.record;
        let objects = &self.objects[kind][record];
        record_dict(py, &rules.records[record], objects, &accepted)
    }
}

#[pymodule]
fn lambdapipe_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Validator>()
}
