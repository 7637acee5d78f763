//! Segment filters decided before any attribute is read: only the `segmentMembership` column
//! of the record files is scanned, each profile's memberships for the filtered segments are
//! merged (latest `lastQualificationTime` wins, a later fragment wins a tie, as the profile
//! merge does), evaluated `ups` entries are laid over them, and each profile gets the set of
//! batches it goes to. Profiles that go nowhere are never read again.

use arrow::array::{Array, AsArray, MapArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStream;

use dossier_model::export_job::{ExportSpec, QualificationWindow, SegmentFilter};
use dossier_model::time::EpochMillis;
use dossier_storage::Lake;

use super::types::ExportRequest;
use crate::EngineError;
use crate::parquet_io::{LakeFileReader, decode_in_parallel};
use crate::profiles::build::keys::{KeyedFile, KeyedSources, keyed_selection};
use crate::profiles::merge::SEGMENT_MEMBERSHIP;
use crate::segments::MembershipOverlay;

/// A fast hash: the selection's maps hold an entry per candidate profile and filter.
type HashMap<K, V> = foldhash::HashMap<K, V>;

/// The namespace evaluated memberships are written under.
const UPS: &str = "ups";

/// The winning entry so far of one profile, filter and namespace spelling.
#[derive(Debug, Clone, Copy)]
struct Best {
    /// `lastQualificationTime` in milliseconds; `None` loses to any time.
    time: Option<EpochMillis>,
    /// Merge order of the fragment: (dataset rank, ingested, batch, row).
    rank: (i64, EpochMillis, i64, i64),
    status: Option<u8>,
}

/// Statuses as small numbers, to keep the per-entry state `Copy`.
fn status_code(status: &str) -> Option<u8> {
    match status {
        "realized" => Some(0),
        "existing" => Some(1),
        "exited" => Some(2),
        _ => None,
    }
}

fn wanted(filter: &SegmentFilter, status: u8) -> bool {
    filter.statuses.iter().any(|s| status_code(s.as_str()) == Some(status))
}

fn in_window(window: QualificationWindow, time: Option<EpochMillis>) -> bool {
    if window.start.is_none() && window.end.is_none() {
        return true;
    }
    time.is_some_and(|t| window.start.is_none_or(|s| t >= s) && window.end.is_none_or(|e| t <= e))
}

/// Entries keyed by (profile, filter index, namespace spelling): two spellings of a namespace
/// are two memberships in the merged profile, as the JSON merge keeps them.
#[derive(Default)]
struct Entries {
    namespaces: Vec<String>,
    best: HashMap<(u32, u16, u16), Best>,
}

impl Entries {
    fn namespace_id(&mut self, namespace: &str) -> u16 {
        match self.namespaces.iter().position(|n| n == namespace) {
            Some(i) => i as u16,
            None => {
                self.namespaces.push(namespace.to_owned());
                (self.namespaces.len() - 1) as u16
            }
        }
    }

    fn offer(&mut self, key: (u32, u16, u16), candidate: Best) {
        let slot = self.best.entry(key).or_insert(candidate);
        if (candidate.time, candidate.rank) >= (slot.time, slot.rank) {
            *slot = candidate;
        }
    }
}

/// A builder over the `segmentMembership` column of one record file, or `None` when the export
/// has no rows there or the file has no such column.
async fn membership_builder(
    lake: &Lake,
    keyed: &KeyedFile,
) -> Result<Option<ParquetRecordBatchStreamBuilder<LakeFileReader>>, EngineError> {
    if keyed.rows.is_empty() {
        return Ok(None);
    }
    let builder = LakeFileReader::new(lake, keyed.file.location.clone())
        .selective_builder()
        .await?;
    let Some(column) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == SEGMENT_MEMBERSHIP)
    else {
        return Ok(None);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    Ok(Some(builder.with_projection(mask)))
}

/// Streams over the membership column of `files` (index, builder), each over a consecutive part
/// of the file's `rows` and tagged with the file and the index of its first entry. A single
/// file is read as two halves, so that it decodes on both cores.
async fn membership_streams(
    lake: &Lake,
    sources: &KeyedSources,
    files: Vec<(usize, ParquetRecordBatchStreamBuilder<LakeFileReader>)>,
) -> Result<Vec<((usize, usize), ParquetRecordBatchStream<LakeFileReader>)>, EngineError> {
    let parts = if files.len() == 1 { 2 } else { 1 };
    let mut streams = Vec::new();
    for (index, builder) in files {
        let keyed = &sources.records[index];
        let per_part = keyed.rows.len().div_ceil(parts).max(1);
        let total_rows = builder.metadata().file_metadata().num_rows() as usize;
        let mut builder = Some(builder);
        for (part, rows) in keyed.rows.chunks(per_part).enumerate() {
            let builder = match builder.take() {
                Some(first) => first,
                None => membership_builder(lake, keyed).await?.ok_or_else(|| {
                    EngineError::Invalid(format!("{} changed while it was read", keyed.file.location))
                })?,
            };
            let selection = keyed_selection(rows, total_rows);
            streams.push(((index, part * per_part), builder.with_row_selection(selection).build()?));
        }
    }
    Ok(streams)
}

/// Scans decoded memberships of one record file, from its entry `first` on, into `entries`.
fn scan_file(
    keyed: &KeyedFile,
    (rank, first): (i64, usize),
    batches: &[RecordBatch],
    filters: &[SegmentFilter],
    entries: &mut Entries,
) {
    let mut row = first;
    for batch in batches {
        let Some(outer) = batch.column(0).as_map_opt() else {
            return;
        };
        for r in 0..batch.num_rows() {
            let profile = keyed.profiles[row + r];
            if outer.is_null(r) {
                continue;
            }
            let rank = (rank, keyed.file.ingested, keyed.file.batch_seq, keyed.row_ids[row + r]);
            scan_row(outer, r, profile, rank, filters, entries);
        }
        row += batch.num_rows();
    }
}

/// The entries of row `r` of a `segmentMembership` map that some filter names.
fn scan_row(
    outer: &MapArray,
    r: usize,
    profile: u32,
    rank: (i64, EpochMillis, i64, i64),
    filters: &[SegmentFilter],
    entries: &mut Entries,
) {
    let namespaces: &StringArray = outer.keys().as_string();
    let Some(inner) = outer.values().as_map_opt() else {
        return;
    };
    let segments: &StringArray = inner.keys().as_string();
    let values = inner.values().as_struct();
    let statuses = values.column_by_name("status").and_then(|c| c.as_string_opt::<i32>());
    let times = values
        .column_by_name("lastQualificationTime")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    let outer_offsets = outer.value_offsets();
    for n in outer_offsets[r] as usize..outer_offsets[r + 1] as usize {
        if namespaces.is_null(n) || inner.is_null(n) {
            continue;
        }
        let namespace = namespaces.value(n);
        let inner_offsets = inner.value_offsets();
        for s in inner_offsets[n] as usize..inner_offsets[n + 1] as usize {
            let segment = segments.value(s);
            for (f, filter) in filters.iter().enumerate() {
                if filter.segment_id != segment || !filter.segment_ns.eq_ignore_ascii_case(namespace) {
                    continue;
                }
                let present = values.is_valid(s);
                let best = Best {
                    time: times
                        .filter(|t| present && t.is_valid(s))
                        .map(|t| t.value(s).div_euclid(1000)),
                    rank,
                    status: statuses
                        .filter(|c| present && c.is_valid(s))
                        .and_then(|c| status_code(c.value(s))),
                };
                let ns = entries.namespace_id(namespace);
                entries.offer((profile, f as u16, ns), best);
            }
        }
    }
}

/// Evaluated entries win over a fragment's entry qualified at the same time or earlier.
fn lay_overlay(overlay: &MembershipOverlay, filters: &[SegmentFilter], entries: &mut Entries) {
    let ups = entries.namespace_id(UPS);
    for (profile, segments) in overlay.entries() {
        for (segment, entry) in segments {
            for (f, filter) in filters.iter().enumerate() {
                if filter.segment_id != segment.as_ref() || !filter.segment_ns.eq_ignore_ascii_case(UPS) {
                    continue;
                }
                let key = (profile, f as u16, ups);
                let newer = entries
                    .best
                    .get(&key)
                    .is_none_or(|current| current.time.is_none_or(|t| entry.time >= t));
                if newer {
                    entries.best.insert(
                        key,
                        Best {
                            time: Some(entry.time),
                            rank: (i64::MAX, i64::MAX, i64::MAX, i64::MAX),
                            status: status_code(entry.status.as_str()),
                        },
                    );
                }
            }
        }
    }
}

/// Per candidate profile, the indices of the batches it goes to; profiles that go to none are
/// left out.
pub async fn select(
    lake: &Lake,
    sources: &KeyedSources,
    request: &ExportRequest,
    overlay: &MembershipOverlay,
    candidates: Vec<u32>,
) -> Result<Vec<(u32, Vec<usize>)>, EngineError> {
    let spec: &ExportSpec = &request.spec;
    if spec.segments.is_empty() {
        let every_batch: Vec<usize> = (0..request.batches.len()).collect();
        return Ok(candidates.into_iter().map(|p| (p, every_batch.clone())).collect());
    }
    let mut files = Vec::new();
    for (index, keyed) in sources.records.iter().enumerate() {
        if sources.datasets[keyed.file.dataset].in_scope
            && let Some(builder) = membership_builder(lake, keyed).await?
        {
            files.push((index, builder));
        }
    }
    let streams = membership_streams(lake, sources, files).await?;
    let mut entries = Entries::default();
    for ((index, first), batches) in decode_in_parallel(streams).await? {
        let keyed = &sources.records[index];
        let rank = sources.datasets[keyed.file.dataset].rank;
        scan_file(keyed, (rank, first), &batches, &spec.segments, &mut entries);
    }
    lay_overlay(overlay, &spec.segments, &mut entries);
    let filters = spec.segments.len();
    let mut matched: HashMap<u32, Vec<bool>> = HashMap::default();
    for ((profile, f, _), best) in &entries.best {
        let filter = &spec.segments[*f as usize];
        let hit = best.status.is_some_and(|s| wanted(filter, s)) && in_window(spec.qualification, best.time);
        if hit {
            matched.entry(*profile).or_insert_with(|| vec![false; filters])[*f as usize] = true;
        }
    }
    Ok(candidates
        .into_iter()
        .filter_map(|p| {
            let hits = matched.get(&p)?;
            let targets: Vec<usize> = request
                .batches
                .iter()
                .enumerate()
                .filter(|(_, target)| match target.segment {
                    Some(index) => hits[index],
                    None => hits.iter().any(|&h| h),
                })
                .map(|(i, _)| i)
                .collect();
            (!targets.is_empty()).then_some((p, targets))
        })
        .collect())
}
