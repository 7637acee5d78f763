//! A customer's experience events: page views and commerce events on the web shop.
//!
//! How many: a Poisson count around a per-customer rate drawn from a log-normal with mean 5 and a
//! wide spread, so the average is 5 while most customers have a handful or none and a few have
//! hundreds (the long tail that makes some profiles expensive to export).
//!
//! Identities: each event comes from one of the customer's devices and always carries its ECID
//! (primary). When the visitor is signed in, it also carries the customer's CRMID or LoyaltyID,
//! which links that device to the profile. A device that never signs in stays anonymous: its
//! events make an empty profile of their own under an identity graph.

use rand::Rng;

use crate::clock::{Span, date_time};
use crate::customer::{Customer, Device, id_kind};
use crate::profiles::{cents, identity};
use crate::random::{Purpose, Streams, log_normal_with_mean, pick, pick_ref, poisson, unique_u64, weighted};
use crate::records::{
    BrowserDetails, Commerce, Environment, ExperienceEvent, IdentityEntry, IdentityMap, Measure, Order, OrderedMap,
    ProductListItem, Web, WebPageDetails, WebReferrer,
};
use crate::vocabulary::{PAGES, PRODUCTS, Product, REFERRERS, SITE};

pub const MEAN_EVENTS_PER_CUSTOMER: f64 = 5.0;
/// The spread of customers' activity rates (log-normal sigma): large, for a long tail.
const ACTIVITY_SPREAD: f64 = 1.2;
/// When events happened: the quarter before the sources were exported.
pub const EVENT_SPAN: Span = Span::days((2019, 7, 1), (2019, 10, 1));
/// How often a visit is signed in, which links the device to the customer's known identity.
const SIGNED_IN_SHARE: f64 = 0.35;
const CURRENCY: &str = "USD";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    PageView,
    ProductView,
    ProductListAdd,
    Checkout,
    Purchase,
}

const EVENT_TYPES: &[(EventType, u32)] = &[
    (EventType::PageView, 55),
    (EventType::ProductView, 20),
    (EventType::ProductListAdd, 10),
    (EventType::Checkout, 5),
    (EventType::Purchase, 10),
];

impl EventType {
    /// XDM's `eventType` value.
    fn name(self) -> &'static str {
        match self {
            Self::PageView => "web.webpagedetails.pageViews",
            Self::ProductView => "commerce.productViews",
            Self::ProductListAdd => "commerce.productListAdds",
            Self::Checkout => "commerce.checkouts",
            Self::Purchase => "commerce.purchases",
        }
    }
}

/// What a customer's events add up to, for the manifest's expected counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTally {
    pub events: u64,
    /// Events from devices that signed in at least once (they belong to the customer's profile).
    pub linked_events: u64,
    /// Devices with events that never signed in: each is an empty profile under an identity graph.
    pub anonymous_devices: u64,
    /// Devices with at least one event: each is a profile of its own (keyed by ECID) without a graph.
    pub active_devices: u64,
}

/// The events of `customer`, with what they add up to.
pub fn customer_events(seed: u64, streams: &Streams, customer: &Customer) -> (Vec<ExperienceEvent>, EventTally) {
    let mut rng = streams.stream(customer.index, Purpose::Events);
    let rate = log_normal_with_mean(&mut rng, MEAN_EVENTS_PER_CUSTOMER, ACTIVITY_SPREAD);
    let count = poisson(&mut rng, rate);
    let mut per_device = vec![(0u64, false); customer.devices.len()];
    let id_prefix = unique_u64(seed, id_kind::EVENT_CUSTOMER, customer.index);
    let events = (0..count)
        .map(|ordinal| {
            let device = pick_device(&mut rng, customer.devices.len());
            let known = signed_in_identity(&mut rng, customer);
            per_device[device].0 += 1;
            per_device[device].1 |= known.is_some();
            // Unique: the prefix is unique per customer, the suffix per event of the customer.
            let id = format!(
                "{id_prefix:016x}{:016x}",
                unique_u64(id_prefix, id_kind::EVENT_ORDINAL, ordinal)
            );
            event(&mut rng, seed, id, &customer.devices[device], known)
        })
        .collect();
    (events, tally(&per_device))
}

fn tally(per_device: &[(u64, bool)]) -> EventTally {
    let mut tally = EventTally::default();
    for &(events, signed_in) in per_device.iter().filter(|(events, _)| *events > 0) {
        tally.events += events;
        tally.active_devices += 1;
        if signed_in {
            tally.linked_events += events;
        } else {
            tally.anonymous_devices += 1;
        }
    }
    tally
}

/// The first device is the customer's main one; later ones are used less and less.
fn pick_device(rng: &mut impl Rng, devices: usize) -> usize {
    weighted(rng, &[(0, 60), (1, 30), (2, 10)][..devices])
}

/// The identity a signed-in visit adds: CRMID when the CRM knows the customer (most of the time
/// for customers known to both), else LoyaltyID.
fn signed_in_identity(rng: &mut impl Rng, customer: &Customer) -> Option<(&'static str, String)> {
    if !rng.random_bool(SIGNED_IN_SHARE) {
        return None;
    }
    match (&customer.crm_id, &customer.loyalty_id) {
        (Some(crm), Some(_)) if rng.random_bool(0.7) => Some(("CRMID", crm.clone())),
        (_, Some(loyalty)) => Some(("LoyaltyID", loyalty.clone())),
        (Some(crm), None) => Some(("CRMID", crm.clone())),
        (None, None) => None,
    }
}

fn event_identity_map(device: &Device, known: Option<(&'static str, String)>) -> IdentityMap {
    let signed_in = known.is_some();
    let ecid = IdentityEntry {
        id: device.ecid.clone(),
        primary: true,
        authenticated_state: if signed_in { "authenticated" } else { "ambiguous" },
    };
    let mut map = OrderedMap(vec![("ECID", vec![ecid])]);
    if let Some((namespace, id)) = known {
        map.0.push((namespace, vec![identity(&id, false)]));
    }
    map
}

fn event(
    rng: &mut impl Rng,
    seed: u64,
    id: String,
    device: &Device,
    known: Option<(&'static str, String)>,
) -> ExperienceEvent {
    let kind = weighted(rng, EVENT_TYPES);
    let timestamp = date_time(EVENT_SPAN.sample(rng));
    let items = (kind != EventType::PageView).then(|| product_list(rng, kind));
    let web = Web {
        web_page_details: page(rng, kind, items.as_deref()),
        web_referrer: rng.random_bool(0.3).then(|| {
            let (url, kind) = weighted(rng, REFERRERS);
            WebReferrer { url, kind }
        }),
    };
    let commerce = items.as_deref().map(|items| commerce(rng, seed, kind, items));
    ExperienceEvent {
        id,
        timestamp,
        event_type: kind.name(),
        identity_map: event_identity_map(device, known),
        web,
        commerce,
        product_list_items: items,
        environment: Environment {
            browser_details: BrowserDetails {
                name: device.browser.name,
                version: device.version,
                vendor: device.browser.vendor,
            },
            operating_system: device.operating_system,
            kind: "browser",
        },
    }
}

/// One product viewed or added; one to four in a checkout or purchase.
fn product_list(rng: &mut impl Rng, kind: EventType) -> Vec<ProductListItem> {
    let lines = match kind {
        EventType::Checkout | EventType::Purchase => weighted(rng, &[(1, 50), (2, 30), (3, 12), (4, 8)]),
        _ => 1,
    };
    (0..lines)
        .map(|_| {
            let product: &Product = pick_ref(rng, PRODUCTS);
            let quantity = if lines == 1 && kind != EventType::Purchase {
                1
            } else {
                weighted(rng, &[(1i64, 80), (2, 15), (3, 5)])
            };
            ProductListItem {
                sku: product.sku,
                name: product.name,
                quantity,
                price_total: cents(product.price * quantity as f64),
                currency_code: CURRENCY,
            }
        })
        .collect()
}

fn page(rng: &mut impl Rng, kind: EventType, items: Option<&[ProductListItem]>) -> WebPageDetails {
    let (name, url, section) = match (kind, items) {
        (EventType::PageView, _) | (_, None) => {
            let (name, path, section) = pick(rng, PAGES);
            (name, format!("{SITE}{path}"), section)
        }
        (EventType::ProductView | EventType::ProductListAdd, Some(items)) => {
            let sku = items[0].sku;
            (
                items[0].name,
                format!("{SITE}/p/{}", sku.to_ascii_lowercase()),
                "product",
            )
        }
        (EventType::Checkout, Some(_)) => ("Checkout", format!("{SITE}/checkout"), "checkout"),
        (EventType::Purchase, Some(_)) => ("Order confirmation", format!("{SITE}/checkout/done"), "checkout"),
    };
    WebPageDetails {
        name,
        url,
        site_section: section,
    }
}

fn commerce(rng: &mut impl Rng, seed: u64, kind: EventType, items: &[ProductListItem]) -> Commerce {
    let one = || Some(Measure { value: 1.0 });
    match kind {
        EventType::PageView => Commerce::default(),
        EventType::ProductView => Commerce {
            product_views: one(),
            ..Commerce::default()
        },
        EventType::ProductListAdd => Commerce {
            product_list_adds: one(),
            ..Commerce::default()
        },
        EventType::Checkout => Commerce {
            checkouts: one(),
            ..Commerce::default()
        },
        EventType::Purchase => Commerce {
            purchases: one(),
            order: Some(Order {
                price_total: cents(items.iter().map(|item| item.price_total).sum()),
                currency_code: CURRENCY,
                // Random rather than derived from the event, like an order system's own ids.
                purchase_id: format!("ORD-{:016x}", unique_u64(seed, id_kind::PURCHASE, rng.random())),
            }),
            ..Commerce::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_an_ecid_and_sometimes_a_known_identity() {
        let streams = Streams::new(11);
        let mut signed_in = 0;
        let mut total = 0;
        for index in 0..300 {
            let customer = Customer::new(11, &streams, index);
            let (events, tally) = customer_events(11, &streams, &customer);
            assert_eq!(tally.events, events.len() as u64);
            for event in &events {
                let ecids = event.identity_map.get("ECID").unwrap();
                assert!(ecids[0].primary);
                total += 1;
                signed_in += usize::from(event.identity_map.0.len() == 2);
                let is_purchase = event.event_type == "commerce.purchases";
                assert_eq!(is_purchase, event.commerce.as_ref().is_some_and(|c| c.order.is_some()));
            }
        }
        let share = signed_in as f64 / total as f64;
        assert!((0.3..0.4).contains(&share), "{share}");
    }

    #[test]
    fn tallies_count_linked_and_anonymous_devices() {
        let tally = tally(&[(3, true), (2, false), (0, false)]);
        assert_eq!(
            tally,
            EventTally {
                events: 5,
                linked_events: 3,
                anonymous_devices: 1,
                active_devices: 2
            }
        );
    }
}
