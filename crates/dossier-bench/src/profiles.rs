//! The two profile-record sources: the CRM (about 30 attributes, with the ingested audience
//! memberships) and the loyalty system (about 12). Both carry the customer's email, so the
//! identity graph joins a customer's two records into one profile.

use rand::Rng;

use crate::audiences::{AUDIENCES, AudienceInputs};
use crate::clock::{Span, date, date_time};
use crate::customer::{Customer, id_kind};
use crate::random::{Purpose, Streams, log_normal_with_mean, pick, poisson, unique_hex, weighted};
use crate::records::{
    CrmDetails, CrmRecord, HomeAddress, IdentityEntry, IdentityMap, LegacyIdentity, LoyaltyDetails, LoyaltyRecord,
    MarketingConsent, MobilePhone, NamespaceCode, OrderedMap, Person, PersonName, PersonalEmail, SegmentMembership,
};
use crate::vocabulary::{PREFERENCES, STORES, STREET_NAMES};

const BIRTH_DATES: Span = Span::days((1950, 1, 1), (2004, 1, 1));
const CRM_SIGNUPS: Span = Span::days((2012, 1, 1), (2019, 9, 1));
const LOYALTY_ENROLMENTS: Span = Span::days((2014, 1, 1), (2019, 9, 15));
/// The day the source systems were exported: no activity is later.
pub const EXPORT_DAY_END: i64 = crate::clock::millis_at(2019, 10, 1);

/// (tier, weight, mean lifetime value in USD)
const CRM_TIERS: &[((&str, f64), u32)] = &[
    (("bronze", 150.0), 50),
    (("silver", 600.0), 30),
    (("gold", 2_000.0), 15),
    (("platinum", 6_000.0), 5),
];
const AVERAGE_ORDER_VALUE: f64 = 85.0;

pub fn identity(id: &str, primary: bool) -> IdentityEntry {
    IdentityEntry {
        id: id.to_owned(),
        primary,
        authenticated_state: "authenticated",
    }
}

/// The record's own id first (primary), then the email that links the sources.
fn identity_map(namespace: &'static str, id: &str, email: &str) -> IdentityMap {
    OrderedMap(vec![
        (namespace, vec![identity(id, true)]),
        ("Email", vec![identity(email, false)]),
    ])
}

/// Rounds to cents, as money is stored.
pub fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// An instant between `after` and the export day.
fn later_than(rng: &mut impl Rng, after: i64) -> i64 {
    Span {
        start: after,
        end: EXPORT_DAY_END,
    }
    .sample(rng)
}

/// The CRM record of `customer`, if the CRM knows it.
pub fn crm_record(seed: u64, streams: &Streams, customer: &Customer) -> Option<CrmRecord> {
    let crm_id = customer.crm_id.as_ref()?;
    let mut rng = streams.stream(customer.index, Purpose::Crm);
    let crm = crm_details(&mut rng, crm_id);
    let inputs = AudienceInputs {
        tier: crm.tier,
        preferences: &crm.preferences,
        email_consent: crm.marketing_consent.email,
    };
    Some(CrmRecord {
        id: unique_hex(seed, id_kind::CRM_RECORD, customer.index),
        identity_map: identity_map("CRMID", crm_id, &customer.email),
        segment_membership: memberships(&mut rng, &inputs),
        identities: legacy_identities(crm_id, &customer.email),
        person: Person {
            name: PersonName {
                first_name: customer.first_name,
                last_name: customer.last_name,
                full_name: Some(customer.full_name()),
            },
            birth_date: rng.random_bool(0.9).then(|| date(BIRTH_DATES.sample(&mut rng))),
            gender: rng.random_bool(0.85).then_some(customer.gender),
        },
        personal_email: PersonalEmail {
            address: customer.email.clone(),
            primary: Some(true),
            kind: Some("personal"),
        },
        mobile_phone: rng.random_bool(0.8).then(|| mobile_phone(&mut rng, customer)),
        home_address: home_address(&mut rng, customer),
        crm,
    })
}

fn crm_details(rng: &mut impl Rng, crm_id: &str) -> CrmDetails {
    let (tier, mean_value) = weighted(rng, CRM_TIERS);
    let lifetime_value = cents(log_normal_with_mean(rng, mean_value, 0.6));
    let order_count = poisson(rng, lifetime_value / AVERAGE_ORDER_VALUE).max(1) as i64;
    let signup = CRM_SIGNUPS.sample(rng);
    CrmDetails {
        crm_id: crm_id.to_owned(),
        tier,
        lifetime_value,
        order_count,
        signup_date: date_time(signup),
        last_purchase_date: rng.random_bool(0.95).then(|| date_time(later_than(rng, signup))),
        preferred_channel: weighted(
            rng,
            &[("email", 55), ("sms", 20), ("phone", 10), ("mail", 5), ("none", 10)],
        ),
        preferences: preferences(rng),
        marketing_consent: MarketingConsent {
            email: rng.random_bool(0.7),
            sms: rng.random_bool(0.35),
            phone: rng.random_bool(0.2),
        },
        home_store: pick(rng, STORES),
        account_status: weighted(rng, &[("active", 92), ("inactive", 6), ("closed", 2)]),
    }
}

/// Zero to four distinct interests, in the vocabulary's order.
fn preferences(rng: &mut impl Rng) -> Vec<&'static str> {
    let wanted = weighted(rng, &[(0usize, 15), (1, 30), (2, 30), (3, 15), (4, 10)]);
    let mut chosen = [false; PREFERENCES.len()];
    let mut count = 0;
    while count < wanted {
        let index = rng.random_range(0..PREFERENCES.len());
        if !chosen[index] {
            chosen[index] = true;
            count += 1;
        }
    }
    PREFERENCES
        .iter()
        .zip(chosen)
        .filter_map(|(name, on)| on.then_some(*name))
        .collect()
}

/// The customer's memberships, one per audience it ever qualified for, by namespace.
fn memberships(rng: &mut impl Rng, inputs: &AudienceInputs) -> SegmentMembership {
    let mut by_namespace: SegmentMembership = OrderedMap::default();
    for audience in AUDIENCES {
        let Some(status) = audience.status_of(inputs, rng) else {
            continue;
        };
        let entry = (audience.segment_id, audience.membership(status, rng));
        match by_namespace.0.iter_mut().find(|(ns, _)| *ns == audience.namespace) {
            Some((_, segments)) => segments.0.push(entry),
            None => by_namespace.0.push((audience.namespace, OrderedMap(vec![entry]))),
        }
    }
    by_namespace
}

fn legacy_identities(crm_id: &str, email: &str) -> Vec<LegacyIdentity> {
    vec![
        LegacyIdentity {
            id: crm_id.to_owned(),
            namespace: NamespaceCode { code: "CRMID" },
            primary: true,
        },
        LegacyIdentity {
            id: email.to_owned(),
            namespace: NamespaceCode { code: "Email" },
            primary: false,
        },
    ]
}

/// A number in the customer's country; US and Canadian numbers use the 555-01xx range that is
/// reserved for fiction.
fn mobile_phone(rng: &mut impl Rng, customer: &Customer) -> MobilePhone {
    let country = customer.country;
    let number = if country.phone_prefix == "+1" {
        format!(
            "+1-{}-555-01{:02}",
            rng.random_range(201..990),
            rng.random_range(0..100)
        )
    } else {
        format!(
            "{} {:09}",
            country.phone_prefix,
            rng.random_range(100_000_000..1_000_000_000u64)
        )
    };
    MobilePhone { number, primary: true }
}

fn home_address(rng: &mut impl Rng, customer: &Customer) -> HomeAddress {
    let place = customer.place;
    HomeAddress {
        street1: format!("{} {}", rng.random_range(1..9_999), pick(rng, STREET_NAMES)),
        city: place.city,
        postal_code: format!("{}{:02}", place.postal_prefix, rng.random_range(0..100)),
        state_province: place.state,
        country: customer.country.name,
        country_code: customer.country.code,
    }
}

/// The loyalty record of `customer`, if it is a member.
pub fn loyalty_record(seed: u64, streams: &Streams, customer: &Customer) -> Option<LoyaltyRecord> {
    let member_id = customer.loyalty_id.as_ref()?;
    let mut rng = streams.stream(customer.index, Purpose::Loyalty);
    Some(LoyaltyRecord {
        id: unique_hex(seed, id_kind::LOYALTY_RECORD, customer.index),
        identity_map: identity_map("LoyaltyID", member_id, &customer.email),
        person: Person {
            name: PersonName {
                first_name: customer.first_name,
                last_name: customer.last_name,
                full_name: None,
            },
            birth_date: None,
            gender: None,
        },
        personal_email: PersonalEmail {
            address: customer.email.clone(),
            primary: None,
            kind: None,
        },
        loyalty: loyalty_details(&mut rng, member_id),
    })
}

fn loyalty_details(rng: &mut impl Rng, member_id: &str) -> LoyaltyDetails {
    let lifetime_points = log_normal_with_mean(rng, 8_000.0, 1.0).round() as i64;
    let points = (lifetime_points as f64 * rng.random_range(0.05..0.9)).round() as i64;
    let enrolled = LOYALTY_ENROLMENTS.sample(rng);
    LoyaltyDetails {
        member_id: member_id.to_owned(),
        points,
        lifetime_points,
        tier: loyalty_tier(lifetime_points),
        enrolled: date_time(enrolled),
        last_activity: date_time(later_than(rng, enrolled)),
        status: weighted(rng, &[("active", 90), ("lapsed", 7), ("suspended", 3)]),
        preferred_store: pick(rng, STORES),
    }
}

/// Loyalty tiers follow lifetime points, as programs define them.
fn loyalty_tier(lifetime_points: i64) -> &'static str {
    match lifetime_points {
        ..5_000 => "member",
        5_000..15_000 => "silver",
        15_000..40_000 => "gold",
        _ => "platinum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_exist_only_for_their_source() {
        let streams = Streams::new(5);
        for index in 0..500 {
            let customer = Customer::new(5, &streams, index);
            assert_eq!(crm_record(5, &streams, &customer).is_some(), customer.crm_id.is_some());
            assert_eq!(
                loyalty_record(5, &streams, &customer).is_some(),
                customer.loyalty_id.is_some()
            );
        }
    }

    #[test]
    fn stitched_customers_share_the_email_across_sources() {
        let streams = Streams::new(5);
        let customer = (0..)
            .map(|i| Customer::new(5, &streams, i))
            .find(Customer::is_stitched)
            .unwrap();
        let crm = crm_record(5, &streams, &customer).unwrap();
        let loyalty = loyalty_record(5, &streams, &customer).unwrap();
        assert_eq!(crm.identity_map.get("Email"), loyalty.identity_map.get("Email"));
        assert!(crm.crm.lifetime_value > 0.0);
        assert!(loyalty.loyalty.points <= loyalty.loyalty.lifetime_points);
    }
}
