//! Builds the record kinds from the JSON configuration that Python derives from the schemas.
//!
//! Shape (every key required unless marked optional):
//! `{"kinds": [{"name", "discriminator": str|null, "records": [record, ...]}, ...]}` with
//! record = `{"name", "closed", "required": [names], "event_time": name|null,
//! "fields": [field, ...], "business": [{"cmp": ">"|">="|"==", "left": expr, "right": expr}]}`,
//! field = `{"name", "type": "string"|"integer"|"boolean", "nullable", "calendar"}` plus optional
//! `"pattern"`, `"enum"`, `"minimum"`, `"maximum"`, `"min_length"`, `"max_length"`, and
//! expr = `{"field": name}` | `{"const": "decimal"}` | `{"op": "+"|"-"|"*", "left", "right"}`.

use crate::decimal::Decimal;
use crate::json::{parse_tree, Json};
use crate::pattern::Pattern;
use crate::record::{
    BusinessRule, Comparison, Expr, FieldRule, JsonType, Kind, Operator, RecordRules, MAX_FIELDS,
};

pub type Result<T> = std::result::Result<T, String>;

/// The named record kinds of a configuration document, in order.
pub fn kinds(config: &str) -> Result<Vec<(String, Kind)>> {
    let doc = parse_tree(config.as_bytes()).ok_or("config: not a JSON document")?;
    array(object(&doc, "config")?, "kinds")?
        .iter()
        .map(|kind| {
            let kind = object(kind, "kind")?;
            let discriminator = match kind.get("discriminator") {
                None | Some(Json::Null) => None,
                Some(_) => Some(string(kind, "discriminator")?.to_owned()),
            };
            let records = array(kind, "records")?
                .iter()
                .map(record)
                .collect::<Result<_>>()?;
            Ok((
                string(kind, "name")?.to_owned(),
                Kind {
                    discriminator,
                    records,
                },
            ))
        })
        .collect()
}

fn record(doc: &Json) -> Result<RecordRules> {
    let doc = object(doc, "record")?;
    let name = string(doc, "name")?.to_owned();
    let fields: Vec<FieldRule> = array(doc, "fields")?
        .iter()
        .map(field)
        .collect::<Result<_>>()?;
    if fields.len() > MAX_FIELDS {
        return Err(format!("{name}: more than {MAX_FIELDS} properties"));
    }
    let position = |field: &str| -> Result<usize> {
        fields
            .iter()
            .position(|f| f.name == field)
            .ok_or_else(|| format!("{name}: no property {field:?}"))
    };
    let mut required = 0u64;
    for r in array(doc, "required")? {
        required |= 1 << position(r.as_str().ok_or("required: names")?)?;
    }
    let event_time = match doc.get("event_time") {
        None | Some(Json::Null) => None,
        Some(_) => Some(position(string(doc, "event_time")?)?),
    };
    let business = array(doc, "business")?
        .iter()
        .map(|rule| {
            let rule = object(rule, "business rule")?;
            let cmp = match string(rule, "cmp")? {
                ">" => Comparison::Greater,
                ">=" => Comparison::GreaterOrEqual,
                "==" => Comparison::Equal,
                other => return Err(format!("unknown comparison {other:?}")),
            };
            let left = expr(member(rule, "left")?, &position)?;
            Ok(BusinessRule {
                cmp,
                left,
                right: expr(member(rule, "right")?, &position)?,
            })
        })
        .collect::<Result<_>>()?;
    let closed = doc
        .get("closed")
        .and_then(Json::as_bool)
        .ok_or("closed: a boolean")?;
    Ok(RecordRules::new(
        name, fields, required, closed, event_time, business,
    ))
}

fn field(doc: &Json) -> Result<FieldRule> {
    let doc = object(doc, "field")?;
    let name = string(doc, "name")?.to_owned();
    let json_type = match string(doc, "type")? {
        "string" => JsonType::String,
        "integer" => JsonType::Integer,
        "boolean" => JsonType::Boolean,
        other => return Err(format!("{name}: unsupported type {other:?}")),
    };
    let pattern = match doc.get("pattern") {
        None | Some(Json::Null) => None,
        Some(_) => {
            let source = string(doc, "pattern")?;
            Some(Pattern::new(source).map_err(|e| format!("{name}: pattern: {e}"))?)
        }
    };
    let allowed = match doc.get("enum") {
        None | Some(Json::Null) => None,
        Some(values) => Some(
            values
                .as_array()
                .ok_or("enum: a list")?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(format!("{name}: enum of strings"))
                })
                .collect::<Result<_>>()?,
        ),
    };
    let integer = |key: &str| -> Result<Option<i128>> {
        match doc.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(|n| Some(n.into()))
                .ok_or(format!("{name}: {key}")),
        }
    };
    let length = |key: &str| -> Result<Option<usize>> {
        integer(key)?
            .map(usize::try_from)
            .transpose()
            .map_err(|_| format!("{name}: {key}"))
    };
    let flag = |key: &str| {
        doc.get(key)
            .and_then(Json::as_bool)
            .ok_or(format!("{name}: {key}"))
    };
    Ok(FieldRule {
        json_type,
        nullable: flag("nullable")?,
        pattern,
        allowed,
        minimum: integer("minimum")?,
        maximum: integer("maximum")?,
        min_length: length("min_length")?,
        max_length: length("max_length")?,
        calendar: flag("calendar")?,
        name,
    })
}

fn expr(doc: &Json, position: &dyn Fn(&str) -> Result<usize>) -> Result<Expr> {
    let doc = object(doc, "expression")?;
    if let Some(Json::Str(name)) = doc.get("field") {
        return Ok(Expr::Field(position(name)?));
    }
    if let Some(Json::Str(value)) = doc.get("const") {
        return Decimal::parse(value)
            .map(Expr::Const)
            .ok_or(format!("bad constant {value:?}"));
    }
    let op = match string(doc, "op")? {
        "+" => Operator::Add,
        "-" => Operator::Sub,
        "*" => Operator::Mul,
        other => return Err(format!("unknown operator {other:?}")),
    };
    let left = expr(member(doc, "left")?, position)?;
    Ok(Expr::BinOp(
        op,
        Box::new(left),
        Box::new(expr(member(doc, "right")?, position)?),
    ))
}

fn object<'a>(doc: &'a Json, what: &str) -> Result<&'a Json> {
    doc.is_object()
        .then_some(doc)
        .ok_or_else(|| format!("{what}: an object"))
}

fn member<'a>(doc: &'a Json, key: &str) -> Result<&'a Json> {
    doc.get(key).ok_or_else(|| format!("{key}: missing"))
}

fn array<'a>(doc: &'a Json, key: &str) -> Result<&'a [Json]> {
    doc.get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("{key}: a list"))
}

fn string<'a>(doc: &'a Json, key: &str) -> Result<&'a str> {
    doc.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("{key}: a string"))
}
