//! Paging and ordering of Catalog listings (`limit`, `start`, `orderBy`, `properties`).

use std::collections::HashMap;

use crate::ValidationError;

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

impl ListQuery {
    /// Reads the paging parameters of a Catalog listing. `sortable` lists the fields `orderBy`
    /// may name; the first is the default (ascending).
    pub fn from_params(params: &HashMap<String, String>, sortable: &[&str]) -> Result<Self, ValidationError> {
        let limit = match params.get("limit") {
            None => DEFAULT_CATALOG_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 1 => n.min(MAX_CATALOG_LIMIT as i64) as u32,
                _ => {
                    return Err(ValidationError::invalid(
                        "limit",
                        raw,
                        format!("limit must be a whole number from 1 to {MAX_CATALOG_LIMIT}"),
                    ));
                }
            },
        };
        let start = match params.get("start") {
            None => 0,
            Some(raw) => raw.trim().parse::<u64>().map_err(|_| {
                ValidationError::invalid("start", raw, "start is the number of objects to skip: 0 or more")
            })?,
        };
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
            ("orderBy", "desc:size"),
            ("orderBy", "up:name"),
        ] {
            let err = ListQuery::from_params(&params(&[(key, value)]), SORTABLE).unwrap_err();
            assert_eq!(err.field, key);
            assert_eq!(err.value.as_deref(), Some(value));
        }
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
