//! The three audiences whose memberships are ingested with CRM records, and how a customer comes
//! to be in one.
//!
//! Membership follows the customer's attributes where a real audience would (tier, interests,
//! consent), so a segment evaluated later over the same data selects plausibly the same people.
//! Qualification times spread over four months, with a share on 2019-09-01: the day the
//! tutorial's export job filters on (`segmentQualificationTime` 2019-09-01..2019-09-02).

use rand::Rng;

use crate::clock::{MILLIS_PER_DAY, Span, date_time};
use crate::records::Membership;
use crate::vocabulary::PREFERENCES;

/// The statuses an ingested membership can have, in the order the manifest lists them.
pub const STATUSES: [&str; 3] = ["realized", "existing", "exited"];

/// When memberships were last qualified: June to September 2019.
pub const QUALIFICATION_SPAN: Span = Span::days((2019, 6, 1), (2019, 10, 1));

/// The tutorial's qualification window, `[2019-09-01, 2019-09-02)`.
pub const TUTORIAL_WINDOW: Span = Span::days((2019, 9, 1), (2019, 9, 2));

/// Share of memberships qualified inside the tutorial's window, on top of the few the uniform
/// spread puts there, so that the tutorial's job selects a useful number of profiles.
const TUTORIAL_WINDOW_SHARE: f64 = 0.08;

/// What decides a customer's memberships.
#[derive(Debug, Clone, Copy)]
pub struct AudienceInputs<'a> {
    pub tier: &'a str,
    pub preferences: &'a [&'static str],
    pub email_consent: bool,
}

/// An audience whose memberships arrive with profile records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    pub namespace: &'static str,
    pub segment_id: &'static str,
    pub name: &'static str,
    /// The audience definition's version, written in each membership.
    pub version: &'static str,
    /// External audiences expire: `validUntil` is this many days after qualification.
    pub valid_days: Option<i64>,
    rule: Rule,
}

/// Who is in an audience, and with which status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    GoldAndPlatinum,
    OutdoorEnthusiast,
    NewsletterSubscriber,
}

/// The tutorial's UPS segment id (deliberately not a valid UUID, as in the tutorial).
pub const GOLD_AND_PLATINUM: Audience = Audience {
    namespace: "ups",
    segment_id: "1rfe8422-334d-12f4-3sd4-12cf6g990g51",
    name: "Gold and platinum customers",
    version: "3",
    valid_days: None,
    rule: Rule::GoldAndPlatinum,
};

/// The tutorial's Audience Manager segment.
pub const OUTDOOR_ENTHUSIASTS: Audience = Audience {
    namespace: "AAM",
    segment_id: "4edc8488-2c35-4f6d-b4c6-9075c68d2df4",
    name: "Outdoor enthusiasts (Audience Manager)",
    version: "1",
    valid_days: Some(30),
    rule: Rule::OutdoorEnthusiast,
};

pub const NEWSLETTER_SUBSCRIBERS: Audience = Audience {
    namespace: "EmailPlatform",
    segment_id: "6a3d1f0e-8c2b-4e7a-9f15-2b7c9d40e8a1",
    name: "Newsletter subscribers (email platform)",
    version: "2",
    valid_days: Some(90),
    rule: Rule::NewsletterSubscriber,
};

pub const AUDIENCES: [Audience; 3] = [GOLD_AND_PLATINUM, OUTDOOR_ENTHUSIASTS, NEWSLETTER_SUBSCRIBERS];

/// Picks `realized` with probability `realized`, else `existing`.
fn current_member(rng: &mut impl Rng, realized: f64) -> &'static str {
    if rng.random_bool(realized) {
        "realized"
    } else {
        "existing"
    }
}

impl Audience {
    /// The customer's status in this audience, or `None` when it never qualified.
    pub fn status_of(&self, inputs: &AudienceInputs, rng: &mut impl Rng) -> Option<&'static str> {
        match self.rule {
            Rule::GoldAndPlatinum => gold_and_platinum(inputs, rng),
            Rule::OutdoorEnthusiast => outdoor_enthusiast(inputs, rng),
            Rule::NewsletterSubscriber => newsletter_subscriber(inputs, rng),
        }
    }

    /// The membership written for `status`, with its qualification time.
    pub fn membership(&self, status: &'static str, rng: &mut impl Rng) -> Membership {
        let qualified = qualification_time(rng);
        Membership {
            status,
            last_qualification_time: date_time(qualified),
            version: self.version,
            valid_until: self.valid_days.map(|days| date_time(qualified + days * MILLIS_PER_DAY)),
        }
    }
}

/// Gold and platinum customers are members; some silver customers left when they were
/// downgraded (exited); bronze customers never qualified.
fn gold_and_platinum(inputs: &AudienceInputs, rng: &mut impl Rng) -> Option<&'static str> {
    match inputs.tier {
        "gold" | "platinum" => Some(current_member(rng, 0.35)),
        "silver" => rng.random_bool(0.3).then_some("exited"),
        _ => None,
    }
}

/// Audience Manager's outdoor segment: likelier for customers whose CRM preferences say outdoor.
fn outdoor_enthusiast(inputs: &AudienceInputs, rng: &mut impl Rng) -> Option<&'static str> {
    let likes_outdoor = inputs.preferences.contains(&PREFERENCES[0]);
    let qualified = rng.random_bool(if likes_outdoor { 0.7 } else { 0.25 });
    if !qualified {
        return None;
    }
    Some(if rng.random_bool(0.15) {
        "exited"
    } else {
        current_member(rng, 0.53)
    })
}

/// The email platform's subscribers: most customers who consent to email, and those who withdrew
/// consent show as exited.
fn newsletter_subscriber(inputs: &AudienceInputs, rng: &mut impl Rng) -> Option<&'static str> {
    if inputs.email_consent {
        rng.random_bool(0.85).then(|| current_member(rng, 0.15))
    } else {
        rng.random_bool(0.4).then_some("exited")
    }
}

/// A qualification time, never exactly on the tutorial window's bounds: whether a bound is
/// inside the window is the one thing implementations may read differently, and expected counts
/// must not depend on it.
fn qualification_time(rng: &mut impl Rng) -> i64 {
    loop {
        let time = if rng.random_bool(TUTORIAL_WINDOW_SHARE) {
            TUTORIAL_WINDOW.sample(rng)
        } else {
            QUALIFICATION_SPAN.sample(rng)
        };
        if time != TUTORIAL_WINDOW.start && time != TUTORIAL_WINDOW.end {
            return time;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{Purpose, Streams};

    #[test]
    fn the_tutorial_audiences_are_among_them() {
        let ids: Vec<(&str, &str)> = AUDIENCES.iter().map(|a| (a.namespace, a.segment_id)).collect();
        assert!(ids.contains(&("AAM", "4edc8488-2c35-4f6d-b4c6-9075c68d2df4")));
        assert!(ids.contains(&("ups", "1rfe8422-334d-12f4-3sd4-12cf6g990g51")));
    }

    #[test]
    fn each_audience_has_every_status() {
        let mut rng = Streams::new(3).stream(0, Purpose::Crm);
        let inputs = [
            AudienceInputs {
                tier: "gold",
                preferences: &["outdoor"],
                email_consent: true,
            },
            AudienceInputs {
                tier: "silver",
                preferences: &[],
                email_consent: false,
            },
        ];
        for audience in AUDIENCES {
            let mut seen = std::collections::BTreeSet::new();
            for i in 0..2_000 {
                seen.extend(audience.status_of(&inputs[i % 2], &mut rng));
            }
            assert_eq!(seen.len(), 3, "{}: {seen:?}", audience.name);
        }
    }
}
