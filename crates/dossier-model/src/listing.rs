//! Paging of every listing (`limit` and the offset, whatever a service calls it) and the
//! ordering of Catalog listings (`orderBy`, `properties`).
//!
//! Every list of the API reads its page through [`parse_limit`] and [`parse_offset`], so the
//! rules are the same everywhere: an absent or empty `limit` is the list's default, a `limit`
//! above the list's maximum is lowered to it (as AEP does), and an offset is a whole number from
//! 0 to [`MAX_OFFSET`]; a larger one is refused rather than wrapped to the first page.

use std::collections::HashMap;
use std::num::IntErrorKind;

use crate::ValidationError;

/// The largest offset a listing accepts. The metadata store counts rows in signed 64-bit
/// integers, so a larger offset would wrap to a negative one, which SQL reads as no offset at
/// all: the first page again.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// A listing's page sizes: `limit` when absent, and the largest page it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

/// Reads a page size: absent or empty is `size.default`, a whole number above `size.max`
/// (however large) is lowered to `size.max`, anything else (0, negative, not a number) is refused.
pub fn parse_limit(name: &str, raw: Option<&str>, size: PageSize) -> Result<u32, ValidationError> {
    let Some(trimmed) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(size.default);
    };
    match trimmed.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n.min(u64::from(size.max)) as u32),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Ok(size.max),
        _ => Err(ValidationError::invalid(
            name,
            trimmed,
            format!(
                "{name} is a whole number from 1 to {} (default {}; larger values are lowered to {})",
                size.max, size.default, size.max
            ),
        )),
    }
}

/// Reads an offset (how many `what` to skip): absent or empty is 0; a whole number above
/// [`MAX_OFFSET`] is refused, naming the largest accepted.
pub fn parse_offset(name: &str, raw: Option<&str>, what: &str) -> Result<u64, ValidationError> {
    let Some(trimmed) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(0);
    };
    match trimmed.parse::<u64>() {
        Ok(n) if n <= MAX_OFFSET => Ok(n),
        Ok(_) => Err(offset_too_large(name, trimmed)),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(offset_too_large(name, trimmed)),
        Err(_) => Err(ValidationError::invalid(
            name,
            trimmed,
            format!("{name} is the number of {what} to skip: a whole number from 0 to {MAX_OFFSET}"),
        )),
    }
}

/// The error for an offset past [`MAX_OFFSET`], shared with parsers of other offset forms.
pub fn offset_too_large(name: &str, raw: &str) -> ValidationError {
    ValidationError::invalid(
        name,
        raw,
        format!(
            "{name} is at most {MAX_OFFSET}; no listing is that long. Start from 0 and follow the next link of each page"
        ),
    )
}

/// The offset of the page after one that started at `start` and showed `shown` objects, when
/// there can be one: `None` rather than a wrapped number past [`MAX_OFFSET`].
pub fn next_offset(start: u64, shown: usize) -> Option<u64> {
    start.checked_add(shown as u64).filter(|next| *next <= MAX_OFFSET)
}

/// A `true`/`false` query parameter (any case); absent or empty: `None`.
pub fn bool_param(params: &HashMap<String, String>, name: &str) -> Result<Option<bool>, ValidationError> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ValidationError::invalid(name, v, "use true or false")),
    }
}

/// The field a listing's sort parameter names, spelled exactly as in the API; `None` for any other.
pub fn sort_field<F: std::str::FromStr>(name: &str) -> Option<F> {
    name.parse().ok()
}

/// Where the page after this one starts, when there is one: some rows were shown and more match
/// than were shown up to here.
pub fn next_page_start(start: u64, shown: usize, total: u64) -> Option<u64> {
    next_offset(start, shown).filter(|next| shown > 0 && *next < total)
}

/// An offset as SQL binds it. Parsed offsets never exceed [`MAX_OFFSET`]; a larger one (from a
/// caller that skipped the parser) saturates, which still reads past every row, never wraps.
pub fn sql_offset(start: u64) -> i64 {
    i64::try_from(start).unwrap_or(i64::MAX)
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// One page of a Catalog listing, as asked for in the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: u32,
    pub start: u64,
    /// The field to sort on (one of the listing's sortable fields) and the direction.
    pub order_by: (String, Direction),
    /// `properties`: only these fields of each object are returned; `None` means all.
    pub properties: Option<Vec<String>>,
}

/// The largest page a Catalog listing returns; larger `limit`s are lowered to it.
pub const MAX_CATALOG_LIMIT: u32 = 100;
/// The page size when `limit` is absent.
pub const DEFAULT_CATALOG_LIMIT: u32 = 20;
/// A Catalog listing's page sizes.
pub const CATALOG_PAGE: PageSize = PageSize {
    default: DEFAULT_CATALOG_LIMIT,
    max: MAX_CATALOG_LIMIT,
};

impl ListQuery {
    /// Reads the paging parameters of a Catalog listing. `sortable` lists the fields `orderBy`
    /// may name; the first is the default (ascending).
    pub fn from_params(params: &HashMap<String, String>, sortable: &[&str]) -> Result<Self, ValidationError> {
        Self::from_params_sized(params, sortable, CATALOG_PAGE)
    }

    /// As [`ListQuery::from_params`], for a listing whose page sizes are not the Catalog's.
    pub fn from_params_sized(
        params: &HashMap<String, String>,
        sortable: &[&str],
        size: PageSize,
    ) -> Result<Self, ValidationError> {
        let limit = parse_limit("limit", params.get("limit").map(String::as_str), size)?;
        let start = parse_offset("start", params.get("start").map(String::as_str), "objects")?;
        let order_by = match params.get("orderBy") {
            None => (sortable[0].to_owned(), Direction::Asc),
            Some(raw) => parse_order_by(raw, sortable)?,
        };
        let properties = params.get("properties").map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        });
        Ok(Self {
            limit,
            start,
            order_by,
            properties,
        })
    }
}

fn parse_order_by(raw: &str, sortable: &[&str]) -> Result<(String, Direction), ValidationError> {
    let (direction, name) = match raw.split_once(':') {
        Some(("asc", name)) => (Direction::Asc, name),
        Some(("desc", name)) => (Direction::Desc, name),
        Some(_) => return Err(order_by_error(raw, sortable)),
        None => (Direction::Asc, raw),
    };
    if sortable.contains(&name) {
        Ok((name.to_owned(), direction))
    } else {
        Err(order_by_error(raw, sortable))
    }
}

fn order_by_error(raw: &str, sortable: &[&str]) -> ValidationError {
    ValidationError::invalid(
        "orderBy",
        raw,
        format!("use [asc:|desc:]FIELD with FIELD one of {}", sortable.join(", ")),
    )
}

/// The most ids one bulk-get may ask for.
pub const MAX_BULK_GET_IDS: usize = 1000;

/// Reads a `bulk-get` body, `{"ids": [{"id": "..."}, ...]}` as AEP documents it (plain id
/// strings are accepted too), for the resource called `noun` (plural, for messages). Ids are
/// trimmed; repeated ids are asked for once; the order is kept.
pub fn bulk_get_ids(body: &serde_json::Value, noun: &str) -> Result<Vec<String>, ValidationError> {
    use serde_json::Value;
    let example = "send {\"ids\": [{\"id\": \"<id>\"}, ...]}";
    let items = match crate::validation::present(body, "ids") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ValidationError::invalid(
                "ids",
                crate::validation::shown(other),
                example,
            ));
        }
        None => return Err(ValidationError::missing("ids", example)),
    };
    if items.len() > MAX_BULK_GET_IDS {
        return Err(ValidationError::invalid(
            "ids",
            format!("{} ids", items.len()),
            format!("ask for at most {MAX_BULK_GET_IDS} {noun} at once"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = match item {
            Value::String(id) => Some(id.as_str()),
            Value::Object(object) => object.get("id").and_then(Value::as_str),
            _ => None,
        };
        match id.map(str::trim) {
            Some(id) if !id.is_empty() => {
                if seen.insert(id) {
                    ids.push(id.to_owned());
                }
            }
            _ => {
                return Err(ValidationError::invalid(
                    format!("ids[{index}]"),
                    crate::validation::shown(item),
                    example,
                ));
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SORTABLE: &[&str] = &["created", "updated", "name"];

    #[test]
    fn defaults_and_clamping() {
        let q = ListQuery::from_params(&params(&[]), SORTABLE).unwrap();
        assert_eq!((q.limit, q.start), (20, 0));
        assert_eq!(q.order_by, ("created".into(), Direction::Asc));
        assert_eq!(
            ListQuery::from_params(&params(&[("limit", "500")]), SORTABLE)
                .unwrap()
                .limit,
            100
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (key, value) in [
            ("limit", "0"),
            ("limit", "-3"),
            ("limit", "many"),
            ("start", "-1"),
            ("start", "9223372036854775808"),
            ("start", "18446744073709551616"),
            ("orderBy", "desc:size"),
            ("orderBy", "up:name"),
        ] {
            let err = ListQuery::from_params(&params(&[(key, value)]), SORTABLE).unwrap_err();
            assert_eq!(err.field, key);
            assert_eq!(err.value.as_deref(), Some(value));
        }
    }

    #[test]
    fn one_paging_rule() {
        let size = PageSize { default: 7, max: 9 };
        assert_eq!(parse_limit("limit", None, size), Ok(7));
        assert_eq!(parse_limit("limit", Some(" "), size), Ok(7));
        assert_eq!(parse_limit("limit", Some("3"), size), Ok(3));
        assert_eq!(parse_limit("limit", Some("99999999999999999999999"), size), Ok(9));
        assert_eq!(parse_offset("start", Some(""), "x"), Ok(0));
        assert_eq!(parse_offset("start", Some("9223372036854775807"), "x"), Ok(MAX_OFFSET));
        let err = parse_offset("offset", Some("9223372036854775808"), "x").unwrap_err();
        assert_eq!(err.field, "offset");
        assert!(err.fix.contains("9223372036854775807"));
        assert_eq!(next_offset(MAX_OFFSET, 1), None);
        assert_eq!(next_offset(u64::MAX, 1), None);
        assert_eq!(next_offset(4, 3), Some(7));
        assert_eq!(sql_offset(u64::MAX), i64::MAX);
    }

    #[test]
    fn order_and_properties() {
        let q = ListQuery::from_params(
            &params(&[("orderBy", "desc:updated"), ("properties", "name, tags")]),
            SORTABLE,
        )
        .unwrap();
        assert_eq!(q.order_by, ("updated".into(), Direction::Desc));
        assert_eq!(q.properties, Some(vec!["name".to_string(), "tags".to_string()]));
    }
}
