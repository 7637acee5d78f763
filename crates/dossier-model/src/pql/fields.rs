//! Field paths checked against the union schemas.
//!
//! PQL reaches into arrays only through `select ... from array where ...`, which this subset
//! supports for `xEvent` alone; a path that crosses an array or goes into a map (whose keys are
//! data, not fields) is refused, naming the array or map, instead of being read as "any element".

use crate::xdm::{XdmField, XdmSchema, XdmType};

use super::ast::{FieldScope, FieldType};

/// The schemas field paths are checked against: the sandbox's profile and experience-event
/// unions.
#[derive(Debug, Clone, Copy)]
pub struct PqlSchemas<'a> {
    pub profile: &'a XdmSchema,
    pub event: &'a XdmSchema,
}

impl<'a> PqlSchemas<'a> {
    pub fn of(self, scope: FieldScope) -> &'a XdmSchema {
        match scope {
            FieldScope::Profile => self.profile,
            FieldScope::Event => self.event,
        }
    }
}

/// Why a path does not name a usable field; `segment` is the index of the segment at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// No field of that name where the segment looks. `siblings` are the names that exist there.
    Unknown { segment: usize, siblings: Vec<String> },
    /// The segment's parent is a single value, which has no fields.
    InsideScalar { segment: usize, parent_type: &'static str },
    /// The segment is inside the array at `segment - 1`.
    InsideArray { segment: usize },
    /// The segment is a key of the map at `segment - 1`.
    InsideMap { segment: usize },
}

fn field_type(ty: &XdmType) -> FieldType {
    match ty {
        XdmType::String => FieldType::String,
        XdmType::Integer => FieldType::Integer,
        XdmType::Number => FieldType::Number,
        XdmType::Boolean => FieldType::Boolean,
        XdmType::DateTime => FieldType::DateTime,
        XdmType::Date => FieldType::Date,
        XdmType::Object(_) => FieldType::Object,
        XdmType::Array(_) => FieldType::Array,
        XdmType::Map(_) => FieldType::Map,
    }
}

/// The type at `segments` in `schema`, or why there is none.
pub fn resolve(schema: &XdmSchema, segments: &[&str]) -> Result<FieldType, PathProblem> {
    let mut fields: &[XdmField] = &schema.fields;
    let mut found: Option<&XdmType> = None;
    for (index, name) in segments.iter().enumerate() {
        if let Some(parent) = found {
            fields = match parent {
                XdmType::Object(children) => children,
                XdmType::Array(_) => return Err(PathProblem::InsideArray { segment: index }),
                XdmType::Map(_) => return Err(PathProblem::InsideMap { segment: index }),
                scalar => {
                    return Err(PathProblem::InsideScalar {
                        segment: index,
                        parent_type: field_type(scalar).as_str(),
                    });
                }
            };
        }
        let Some(field) = fields.iter().find(|field| field.name == *name) else {
            return Err(PathProblem::Unknown {
                segment: index,
                siblings: fields.iter().map(|field| field.name.clone()).collect(),
            });
        };
        found = Some(&field.ty);
    }
    found.map(field_type).ok_or(PathProblem::Unknown {
        segment: 0,
        siblings: Vec::new(),
    })
}

/// How a schema is named in messages.
pub fn schema_label(scope: FieldScope) -> &'static str {
    match scope {
        FieldScope::Profile => "the profile union schema",
        FieldScope::Event => "the experience event union schema",
    }
}

/// A short list of names for messages: at most twelve, then "...".
pub fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut list = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        list.push_str(", ...");
    }
    list
}

/// The message for a path problem; `shown` is the path as the user wrote it (variable included).
pub fn problem_message(problem: &PathProblem, segments: &[&str], scope: FieldScope) -> String {
    let label = schema_label(scope);
    match problem {
        PathProblem::Unknown { segment, siblings } => {
            let name = segments[*segment];
            let place = if *segment == 0 {
                label.to_owned()
            } else {
                format!("'{}' of {label}", segments[..*segment].join("."))
            };
            if siblings.is_empty() {
                format!("there is no field '{name}' in {place}")
            } else {
                format!(
                    "there is no field '{name}' in {place}; its fields are {}",
                    name_list(siblings)
                )
            }
        }
        PathProblem::InsideScalar { segment, parent_type } => format!(
            "'{}' is a {parent_type} and has no field '{}'",
            segments[..*segment].join("."),
            segments[*segment]
        ),
        PathProblem::InsideArray { segment } => format!(
            "'{}' is an array, and PQL reads fields inside arrays only through select ... from ...; \
             this subset supports that for xEvent only",
            segments[..*segment].join(".")
        ),
        PathProblem::InsideMap { segment } => format!(
            "'{}' is a map whose keys are data, not fields, so '{}' cannot be addressed as a field; \
             test the map itself with isNull() / isNotNull()",
            segments[..*segment].join("."),
            segments[*segment]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_types_or_name_the_segment_at_fault() {
        let profile = XdmSchema::builtin_profile();
        assert_eq!(resolve(&profile, &["person", "birthDate"]), Ok(FieldType::Date));
        assert_eq!(resolve(&profile, &["person", "name"]), Ok(FieldType::Object));
        assert!(matches!(
            resolve(&profile, &["person", "nmae"]),
            Err(PathProblem::Unknown { segment: 1, siblings }) if siblings.contains(&"name".to_owned())
        ));
        assert_eq!(
            resolve(&profile, &["identities", "id"]),
            Err(PathProblem::InsideArray { segment: 1 })
        );
        assert_eq!(
            resolve(&profile, &["identityMap", "Email"]),
            Err(PathProblem::InsideMap { segment: 1 })
        );
        assert_eq!(
            resolve(&profile, &["personalEmail", "address", "domain"]),
            Err(PathProblem::InsideScalar {
                segment: 2,
                parent_type: "string"
            })
        );
    }
}
