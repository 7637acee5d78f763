//! A customer: who the person is, which source systems know them, and the devices they browse
//! with. Every record and event of the customer is derived from it.

use rand::Rng;

use crate::random::{Purpose, Streams, pick, pick_ref, unique_u64, weighted, weighted_ref};
use crate::vocabulary::{BROWSERS, Browser, COUNTRIES, Country, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, Place};

/// Share of customers known to both the CRM and the loyalty system (stitched by email).
pub const BOTH_SHARE: f64 = 0.60;
/// Share known to the CRM only; the rest are known to the loyalty system only.
pub const CRM_ONLY_SHARE: f64 = 0.25;

/// Kinds of generated ids, so that ids of different kinds never share a value.
pub(crate) mod id_kind {
    pub const CRM_ID: u64 = 1;
    pub const LOYALTY_ID: u64 = 2;
    pub const EMAIL: u64 = 3;
    pub const ECID: u64 = 4;
    pub const CRM_RECORD: u64 = 5;
    pub const LOYALTY_RECORD: u64 = 6;
    pub const EVENT_CUSTOMER: u64 = 7;
    pub const EVENT_ORDINAL: u64 = 8;
    pub const PURCHASE: u64 = 9;
}

/// A browser on a device: each device keeps one browser, version and operating system.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub ecid: String,
    pub browser: &'static Browser,
    pub version: &'static str,
    pub operating_system: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub index: u64,
    pub first_name: &'static str,
    pub gender: &'static str,
    pub last_name: &'static str,
    pub email: String,
    pub country: &'static Country,
    pub place: &'static Place,
    /// The CRM's id, when the CRM knows the customer.
    pub crm_id: Option<String>,
    /// The loyalty member id, when the customer is a member.
    pub loyalty_id: Option<String>,
    pub devices: Vec<Device>,
}

impl Customer {
    /// Customer `index` of the population generated with `streams`' seed.
    pub fn new(seed: u64, streams: &Streams, index: u64) -> Self {
        let mut rng = streams.stream(index, Purpose::Persona);
        let (in_crm, in_loyalty) = sources(&mut rng);
        let (first_name, gender) = pick(&mut rng, FIRST_NAMES);
        let last_name = pick(&mut rng, LAST_NAMES);
        let domain = pick(&mut rng, EMAIL_DOMAINS);
        let country = weighted_ref(&mut rng, COUNTRIES);
        let place = pick_ref(&mut rng, country.places);
        let device_count = weighted(&mut rng, &[(1, 55), (2, 30), (3, 15)]);
        let devices = (0..device_count)
            .map(|device| new_device(&mut rng, seed, index * 4 + device))
            .collect();
        let email_tag = base36(unique_u64(seed, id_kind::EMAIL, index));
        Self {
            index,
            first_name,
            gender,
            last_name,
            email: format!(
                "{}.{}.{email_tag}@{domain}",
                mailbox_part(first_name),
                mailbox_part(last_name)
            ),
            country,
            place,
            crm_id: in_crm.then(|| format!("CRM-{:016x}", unique_u64(seed, id_kind::CRM_ID, index))),
            loyalty_id: in_loyalty.then(|| format!("LY-{:016x}", unique_u64(seed, id_kind::LOYALTY_ID, index))),
            devices,
        }
    }

    /// Whether both source systems know the customer, so its profile is stitched from two.
    pub fn is_stitched(&self) -> bool {
        self.crm_id.is_some() && self.loyalty_id.is_some()
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// (in CRM, in loyalty): both, CRM only or loyalty only.
fn sources(rng: &mut impl Rng) -> (bool, bool) {
    let draw: f64 = rng.random();
    if draw < BOTH_SHARE {
        (true, true)
    } else if draw < BOTH_SHARE + CRM_ONLY_SHARE {
        (true, false)
    } else {
        (false, true)
    }
}

fn new_device(rng: &mut impl Rng, seed: u64, device_index: u64) -> Device {
    let browser = weighted_ref(rng, BROWSERS);
    // ECIDs are 38 digits: 20 from a value unique to the device, 18 random.
    let unique = unique_u64(seed, id_kind::ECID, device_index);
    let tail = rng.random_range(0..1_000_000_000_000_000_000u64);
    Device {
        ecid: format!("{unique:020}{tail:018}"),
        browser,
        version: pick(rng, browser.versions),
        operating_system: pick(rng, browser.operating_systems),
    }
}

fn base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// A name as it appears before the `@`: lower case ASCII letters, accents folded.
fn mailbox_part(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            let folded = match c.to_ascii_lowercase() {
                'á' | 'à' | 'â' | 'ä' | 'Á' => 'a',
                'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
                'í' | 'ì' | 'î' | 'ï' => 'i',
                'ó' | 'ò' | 'ô' | 'ö' | 'Ö' => 'o',
                'ú' | 'ù' | 'û' | 'ü' | 'Ü' => 'u',
                'ç' => 'c',
                'ñ' => 'n',
                other => other,
            };
            folded.is_ascii_alphanumeric().then_some(folded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_the_same_for_the_same_seed_and_index() {
        let streams = Streams::new(9);
        assert_eq!(Customer::new(9, &streams, 12), Customer::new(9, &streams, 12));
        assert_ne!(
            Customer::new(9, &streams, 12).email,
            Customer::new(9, &streams, 13).email
        );
    }

    #[test]
    fn every_customer_has_a_source_and_ascii_email() {
        let streams = Streams::new(1);
        for index in 0..2_000 {
            let customer = Customer::new(1, &streams, index);
            assert!(customer.crm_id.is_some() || customer.loyalty_id.is_some());
            assert!(customer.email.is_ascii(), "{}", customer.email);
            assert!(!customer.devices.is_empty());
            assert!(customer.devices.iter().all(|d| d.ecid.len() == 38));
        }
    }

    #[test]
    fn names_fold_into_mailboxes() {
        assert_eq!(mailbox_part("Müller"), "muller");
        assert_eq!(mailbox_part("O'Brien"), "obrien");
        assert_eq!(mailbox_part("Lucía"), "lucia");
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36), "10");
    }
}
