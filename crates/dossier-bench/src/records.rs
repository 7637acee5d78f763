//! The shapes of generated records, as typed structs that serialize to exactly the JSON each
//! dataset's schema accepts.
//!
//! Typed structs rather than `serde_json::Value`: they are several times cheaper to build and
//! serialize, field order is fixed by the declaration (so output is byte-stable), and the same
//! structs feed both the JSON-lines writer and Arrow's JSON decoder for Parquet.
//! Absent optional values are left out rather than written as `null`.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// A JSON object with keys chosen by the data (XDM maps such as `identityMap`), kept in insertion
/// order so output never depends on hashing.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(&'static str, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// One entry of `identityMap`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityEntry {
    pub id: String,
    pub primary: bool,
    pub authenticated_state: &'static str,
}

/// `{namespace: [identity]}`.
pub type IdentityMap = OrderedMap<Vec<IdentityEntry>>;

/// One audience membership, as ingested from the system that computed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub status: &'static str,
    pub last_qualification_time: String,
    pub version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// `{namespace: {segmentId: membership}}`.
pub type SegmentMembership = OrderedMap<OrderedMap<Membership>>;

/// An entry of the deprecated `identities` array, which the tutorial's `identities.id` exports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LegacyIdentity {
    pub id: String,
    pub namespace: NamespaceCode,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NamespaceCode {
    pub code: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonName {
    pub first_name: &'static str,
    pub last_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub name: PersonName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PersonalEmail {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MobilePhone {
    pub number: String,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeAddress {
    pub street1: String,
    pub city: &'static str,
    pub postal_code: String,
    pub state_province: &'static str,
    pub country: &'static str,
    pub country_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MarketingConsent {
    pub email: bool,
    pub sms: bool,
    pub phone: bool,
}

/// The CRM's own fields, under the custom `crm` object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmDetails {
    pub crm_id: String,
    pub tier: &'static str,
    pub lifetime_value: f64,
    pub order_count: i64,
    pub signup_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_purchase_date: Option<String>,
    pub preferred_channel: &'static str,
    pub preferences: Vec<&'static str>,
    pub marketing_consent: MarketingConsent,
    pub home_store: &'static str,
    pub account_status: &'static str,
}

/// A record of the CRM profile dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub identity_map: IdentityMap,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub segment_membership: SegmentMembership,
    pub identities: Vec<LegacyIdentity>,
    pub person: Person,
    pub personal_email: PersonalEmail,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<MobilePhone>,
    pub home_address: HomeAddress,
    pub crm: CrmDetails,
}

/// The loyalty system's own fields, under the custom `loyalty` object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoyaltyDetails {
    pub member_id: String,
    pub points: i64,
    pub lifetime_points: i64,
    pub tier: &'static str,
    pub enrolled: String,
    pub last_activity: String,
    pub status: &'static str,
    pub preferred_store: &'static str,
}

/// A record of the loyalty profile dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoyaltyRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub identity_map: IdentityMap,
    pub person: Person,
    pub personal_email: PersonalEmail,
    pub loyalty: LoyaltyDetails,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebPageDetails {
    pub name: &'static str,
    #[serde(rename = "URL")]
    pub url: String,
    pub site_section: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WebReferrer {
    #[serde(rename = "URL")]
    pub url: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Web {
    pub web_page_details: WebPageDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_referrer: Option<WebReferrer>,
}

/// A commerce counter such as `commerce.purchases`: `{value}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measure {
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub price_total: f64,
    pub currency_code: &'static str,
    #[serde(rename = "purchaseID")]
    pub purchase_id: String,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Commerce {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchases: Option<Measure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_views: Option<Measure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_list_adds: Option<Measure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkouts: Option<Measure>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductListItem {
    #[serde(rename = "SKU")]
    pub sku: &'static str,
    pub name: &'static str,
    pub quantity: i64,
    pub price_total: f64,
    pub currency_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BrowserDetails {
    pub name: &'static str,
    pub version: &'static str,
    pub vendor: &'static str,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub browser_details: BrowserDetails,
    pub operating_system: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// An event of the experience-event dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperienceEvent {
    #[serde(rename = "_id")]
    pub id: String,
    pub timestamp: String,
    pub event_type: &'static str,
    pub identity_map: IdentityMap,
    pub web: Web,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commerce: Option<Commerce>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_list_items: Option<Vec<ProductListItem>>,
    pub environment: Environment,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_maps_serialize_as_objects_in_insertion_order() {
        let map = OrderedMap(vec![("z", 1), ("a", 2)]);
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"z":1,"a":2}"#);
        assert_eq!(map.get("a"), Some(&2));
    }
}
