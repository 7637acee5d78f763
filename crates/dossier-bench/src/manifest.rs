//! `manifest.json`: what a generation run wrote and the counts an export of it must reproduce.
//!
//! The expected counts are computed while generating, from the same values written to the files,
//! so a benchmark or a test can check an export without reading the data again.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audiences::{AUDIENCES, Audience, GOLD_AND_PLATINUM, OUTDOOR_ENTHUSIASTS, STATUSES, TUTORIAL_WINDOW};
use crate::clock::date_time;
use crate::customer::Customer;
use crate::events::EventTally;
use crate::records::{CrmRecord, SegmentMembership};
use crate::sink::WrittenFile;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `dossier-bench <version>`: the same seed gives the same files only with the same version.
    pub generator: String,
    pub seed: u64,
    pub profiles: u64,
    pub format: &'static str,
    pub records_per_file: u64,
    /// By dataset key (`crm`, `loyalty`, `events`).
    pub datasets: BTreeMap<&'static str, DatasetEntry>,
    pub expected: Expected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetEntry {
    /// A name for the Catalog dataset.
    pub name: &'static str,
    /// The schema's `meta:class`.
    pub class: &'static str,
    /// The `POST /tenant/schemas` body, relative to the output folder.
    pub schema: String,
    /// The identity descriptors to post once the schema has its `$id`.
    pub descriptors: String,
    pub records: u64,
    pub files: Vec<WrittenFile>,
}

/// Counts an export of the generated data must reproduce.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    /// Customers known to both sources: their CRM and loyalty records stitch into one profile.
    pub stitched: u64,
    pub crm_only: u64,
    pub loyalty_only: u64,
    pub events: EventCounts,
    /// Profiles by merge-policy identity graph (`none`, `pdg`).
    pub profiles_by_identity_graph: BTreeMap<&'static str, ProfileCounts>,
    pub audiences: Vec<AudienceCounts>,
    /// The tutorial's export job (AAM realized or UPS exited, qualified on 2019-09-01).
    pub tutorial_export: TutorialExport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub total: u64,
    /// Events of devices that signed in at least once: part of a customer's profile under `pdg`.
    pub linked_to_customers: u64,
    /// Events of devices that never signed in: their own empty profiles under `pdg`.
    pub anonymous: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCounts {
    /// Profiles with at least one profile record (exported with `emptyProfiles: false`).
    pub with_records: u64,
    /// Profiles made of events only (added by `emptyProfiles: true`).
    pub empty: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceCounts {
    pub namespace: &'static str,
    pub segment_id: &'static str,
    pub name: &'static str,
    /// Profiles by membership status (`realized`, `existing`, `exited`); the same under both
    /// identity graphs, since memberships come with CRM records, one per customer.
    pub profiles: BTreeMap<&'static str, u64>,
    /// The same, for memberships qualified inside `[2019-09-01, 2019-09-02)`.
    pub qualified_in_tutorial_window: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TutorialExport {
    /// Rows of each batch with `segmentPerBatch: true`: AAM realized, then UPS exited.
    pub per_segment: Vec<u64>,
    /// Rows of the single batch with `segmentPerBatch: false`: profiles matching either entry.
    pub distinct_profiles: u64,
}

impl AudienceCounts {
    fn new(audience: &Audience) -> Self {
        let zeros: BTreeMap<&'static str, u64> = STATUSES.iter().map(|s| (*s, 0)).collect();
        Self {
            namespace: audience.namespace,
            segment_id: audience.segment_id,
            name: audience.name,
            profiles: zeros.clone(),
            qualified_in_tutorial_window: zeros,
        }
    }
}

/// Adds up the expected counts customer by customer.
pub struct Tally {
    expected: Expected,
    window: (String, String),
    profile_records: u64,
    active_devices: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Self {
            expected: Expected {
                audiences: AUDIENCES.iter().map(AudienceCounts::new).collect(),
                tutorial_export: TutorialExport {
                    per_segment: vec![0, 0],
                    distinct_profiles: 0,
                },
                ..Expected::default()
            },
            // Qualification times are written in one fixed RFC 3339 form, so comparing the text
            // compares the instants.
            window: (date_time(TUTORIAL_WINDOW.start), date_time(TUTORIAL_WINDOW.end)),
            profile_records: 0,
            active_devices: 0,
        }
    }

    pub fn add(&mut self, customer: &Customer, crm: Option<&CrmRecord>, events: &EventTally) {
        match (customer.crm_id.is_some(), customer.loyalty_id.is_some()) {
            (true, true) => self.expected.stitched += 1,
            (true, false) => self.expected.crm_only += 1,
            _ => self.expected.loyalty_only += 1,
        }
        self.profile_records += u64::from(customer.crm_id.is_some()) + u64::from(customer.loyalty_id.is_some());
        self.active_devices += events.active_devices;
        let counts = &mut self.expected.events;
        counts.total += events.events;
        counts.linked_to_customers += events.linked_events;
        counts.anonymous += events.events - events.linked_events;
        self.pdg_empty(events.anonymous_devices);
        if let Some(record) = crm {
            self.add_memberships(&record.segment_membership);
        }
    }

    fn pdg_empty(&mut self, anonymous_devices: u64) {
        self.expected.profiles_by_identity_graph.entry("pdg").or_default().empty += anonymous_devices;
    }

    fn add_memberships(&mut self, memberships: &SegmentMembership) {
        let mut tutorial_match = false;
        for (audience, counts) in AUDIENCES.iter().zip(&mut self.expected.audiences) {
            let Some(membership) = memberships
                .get(audience.namespace)
                .and_then(|segments| segments.get(audience.segment_id))
            else {
                continue;
            };
            *counts.profiles.get_mut(membership.status).expect("a known status") += 1;
            let time = membership.last_qualification_time.as_str();
            if !(self.window.0.as_str() <= time && time < self.window.1.as_str()) {
                continue;
            }
            *counts
                .qualified_in_tutorial_window
                .get_mut(membership.status)
                .expect("a known status") += 1;
            let tutorial_entry = match (audience.segment_id, membership.status) {
                (id, "realized") if id == OUTDOOR_ENTHUSIASTS.segment_id => Some(0),
                (id, "exited") if id == GOLD_AND_PLATINUM.segment_id => Some(1),
                _ => None,
            };
            if let Some(entry) = tutorial_entry {
                self.expected.tutorial_export.per_segment[entry] += 1;
                tutorial_match = true;
            }
        }
        self.expected.tutorial_export.distinct_profiles += u64::from(tutorial_match);
    }

    /// The totals, once every customer has been added.
    pub fn finish(mut self, customers: u64) -> Expected {
        let graphs = &mut self.expected.profiles_by_identity_graph;
        // With a graph, each customer is one profile; anonymous devices are empty profiles.
        graphs.entry("pdg").or_default().with_records = customers;
        // Without one, each record is its own profile (keyed by CRMID or LoyaltyID), and each
        // device with events is an empty profile keyed by its ECID.
        let none = graphs.entry("none").or_default();
        none.with_records = self.profile_records;
        none.empty = self.active_devices;
        self.expected
    }
}
