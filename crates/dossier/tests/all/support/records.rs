//! Records the tests ingest more than one file of: a CRM dataset's `crm.tier` and one profile per
//! customer number.

use serde_json::{Value, json};

/// The properties of a profile dataset with a CRM tier (`crm.tier`, a string).
pub fn crm_tier_properties() -> Value {
    json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}})
}

/// Customer `n` of a [`crm_tier_properties`] dataset: record `r{n}`, primary CRMID `c{n}`, gold
/// when `n` is even and silver otherwise.
pub fn tier_customer(n: usize) -> Value {
    json!({
        "_id": format!("r{n}"),
        "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
        "crm": {"tier": if n.is_multiple_of(2) { "gold" } else { "silver" }},
    })
}
