//! The fixed set of export jobs the benchmark runs, each as the body Dossier gets and the same
//! selection described for the peer engines (bench/peer_duckdb.py, bench/peer_polars.py).

use serde::Serialize;
use serde_json::{Value, json};

use dossier_bench::audiences::{GOLD_AND_PLATINUM, NEWSLETTER_SUBSCRIBERS, OUTDOOR_ENTHUSIASTS};

/// The eight profile fields of the projected jobs: names, email, address, tiers, values.
pub const EIGHT_FIELDS: [&str; 8] = [
    "person.name.firstName",
    "person.name.lastName",
    "personalEmail.address",
    "homeAddress.city",
    "homeAddress.countryCode",
    "crm.tier",
    "crm.lifetimeValue",
    "loyalty.points",
];

/// Event fields of the eventList job (`_id` and `timestamp` always come along).
pub const EVENT_FIELDS: [&str; 3] = ["eventType", "web.webPageDetails.name", "commerce.order.priceTotal"];

/// Every job's name, in the order they run.
pub const JOB_NAMES: [&str; 6] = [
    "all-profiles-all-fields",
    "one-segment-8-fields",
    "one-segment-eventlist",
    "segment-per-batch-3",
    "incremental-8-fields",
    TOUCH_JOB,
];

/// The job run after one more batch touching 1 % of the profiles, from just before it
/// (`touch.rs`): last, since its batch is ingested just before it runs.
pub const TOUCH_JOB: &str = "incremental-1pct";

#[derive(Debug, Clone, Serialize)]
pub struct PeerSegment {
    pub ns: String,
    pub id: String,
    pub statuses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerEventList {
    pub fields: Vec<String>,
}

/// One job as the peer script reads it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerJob {
    pub name: String,
    pub segments: Vec<PeerSegment>,
    pub per_segment: bool,
    pub from_ingest_ms: Option<i64>,
    pub event_list: Option<PeerEventList>,
    /// The Parquet files of each batch Dossier wrote, filled in once the job ran.
    pub our_batches: Vec<Vec<String>>,
    /// Sources ingested for this job alone, after the load (`incremental-1pct`'s batch).
    pub extra_sources: Vec<PeerSource>,
}

/// One dataset of the workload as the peer script reads it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerSource {
    pub key: String,
    /// `records` or `events`.
    pub kind: &'static str,
    pub files: Vec<String>,
    /// Its batch's commit time: the ingestion time of its fragments.
    pub ingested_ms: i64,
    /// Position in the load order: later wins a timestampOrdered merge.
    pub order: usize,
    /// The namespace of each row's primary identity (in `identityMap`), which keys it to a profile.
    pub primary_namespace: &'static str,
    /// Schema fields marked as identities: (path, namespace).
    pub identity_fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerPlan {
    pub threads: usize,
    pub runs: usize,
    /// Dossier's identity graph, its component bucket files: identity → component, the peer's
    /// profile key.
    pub identity_graph: Vec<String>,
    pub out_dir: String,
    pub sources: Vec<PeerSource>,
    pub jobs: Vec<PeerJob>,
}

/// A job: the request body (without destination and merge policy) and the peer's description.
pub struct BenchJob {
    pub body: Value,
    pub peer: PeerJob,
}

fn segment(audience: &dossier_bench::audiences::Audience, statuses: &[&str]) -> (Value, PeerSegment) {
    (
        json!({"segmentNs": audience.namespace, "segmentId": audience.segment_id, "status": statuses}),
        PeerSegment {
            ns: audience.namespace.into(),
            id: audience.segment_id.into(),
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
        },
    )
}

fn peer(name: &str, segments: Vec<PeerSegment>) -> PeerJob {
    PeerJob {
        name: name.into(),
        segments,
        per_segment: false,
        from_ingest_ms: None,
        event_list: None,
        our_batches: Vec::new(),
        extra_sources: Vec::new(),
    }
}

/// The jobs; `incremental_from_ms` is the ingestion time the incremental job starts after.
pub fn jobs(incremental_from_ms: i64) -> Vec<BenchJob> {
    let fields = EIGHT_FIELDS.join(",");
    let current = ["realized", "existing"];
    let (gold, gold_peer) = segment(&GOLD_AND_PLATINUM, &current);
    let (outdoor, outdoor_peer) = segment(&OUTDOOR_ENTHUSIASTS, &current);
    let (newsletter, newsletter_peer) = segment(&NEWSLETTER_SUBSCRIBERS, &["realized", "existing", "exited"]);
    let from = jiff::Timestamp::from_millisecond(incremental_from_ms).expect("a valid time");

    let mut with_events = peer(JOB_NAMES[2], vec![gold_peer.clone()]);
    with_events.event_list = Some(PeerEventList {
        fields: EVENT_FIELDS.iter().map(|f| f.to_string()).collect(),
    });
    let mut per_batch = peer(JOB_NAMES[3], vec![gold_peer.clone(), outdoor_peer, newsletter_peer]);
    per_batch.per_segment = true;
    let mut incremental = peer(JOB_NAMES[4], Vec::new());
    incremental.from_ingest_ms = Some(incremental_from_ms);
    // Its time and its batch are set when the batch is ingested (run.rs).
    let touched = peer(TOUCH_JOB, Vec::new());
    vec![
        BenchJob {
            body: json!({"filter": {}}),
            peer: peer(JOB_NAMES[0], Vec::new()),
        },
        BenchJob {
            body: json!({"fields": fields, "filter": {"segments": [gold.clone()]}}),
            peer: peer(JOB_NAMES[1], vec![gold_peer]),
        },
        BenchJob {
            body: json!({"fields": fields, "filter": {"segments": [gold.clone()]},
                         "additionalFields": {"eventList": {"fields": EVENT_FIELDS.join(",")}}}),
            peer: with_events,
        },
        BenchJob {
            body: json!({"fields": fields, "filter": {"segments": [gold, outdoor, newsletter]},
                         "destination": {"segmentPerBatch": true}}),
            peer: per_batch,
        },
        BenchJob {
            body: json!({"fields": fields, "filter": {"fromIngestTimestamp": from.to_string()}}),
            peer: incremental,
        },
        BenchJob {
            body: json!({"fields": fields, "filter": {}}),
            peer: touched,
        },
    ]
}
