//! One generation run: customers `0..profiles`, each written to the datasets it belongs to as it
//! is made, then the schemas and the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::GenerateError;
use crate::customer::Customer;
use crate::events::customer_events;
use crate::manifest::{DatasetEntry, Manifest, Tally};
use crate::profiles::{crm_record, loyalty_record};
use crate::random::Streams;
use crate::records::{CrmRecord, ExperienceEvent, LoyaltyRecord};
use crate::schemas::DatasetKind;
use crate::sink::{DatasetWriter, OutputFormat, WrittenFile};

/// Files split at one million records by default, the export's own default row limit.
pub const DEFAULT_RECORDS_PER_FILE: u64 = 1_000_000;

/// Progress is reported every this many customers.
const PROGRESS_EVERY: u64 = 4096;

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// The number of customers (people); each is one profile under an identity graph.
    pub profiles: u64,
    pub seed: u64,
    pub out: PathBuf,
    pub format: OutputFormat,
    pub records_per_file: u64,
    /// Replace the output of an earlier run in `out` instead of refusing.
    pub overwrite: bool,
}

impl GenerateOptions {
    pub fn new(profiles: u64, seed: u64, out: impl Into<PathBuf>) -> Self {
        Self {
            profiles,
            seed,
            out: out.into(),
            format: OutputFormat::default(),
            records_per_file: DEFAULT_RECORDS_PER_FILE,
            overwrite: false,
        }
    }
}

/// The name of the manifest in the output folder.
pub const MANIFEST_FILE: &str = "manifest.json";
const SCHEMA_FOLDER: &str = "schemas";

/// Generates the datasets, schemas and manifest into `options.out`. `progress` is called with the
/// number of customers done so far, now and then and once at the end.
pub fn generate(options: &GenerateOptions, mut progress: impl FnMut(u64)) -> Result<Manifest, GenerateError> {
    if options.records_per_file == 0 {
        return Err(GenerateError::Invalid("records per file must be at least 1".into()));
    }
    prepare_output(&options.out, options.overwrite)?;
    let schema_files = write_schemas(&options.out)?;
    let mut writers = Writers::new(options)?;
    let streams = Streams::new(options.seed);
    let mut tally = Tally::new();
    for index in 0..options.profiles {
        let customer = Customer::new(options.seed, &streams, index);
        let crm = crm_record(options.seed, &streams, &customer);
        let loyalty = loyalty_record(options.seed, &streams, &customer);
        let (events, event_tally) = customer_events(options.seed, &streams, &customer);
        tally.add(&customer, crm.as_ref(), &event_tally);
        writers.write(crm, loyalty, events)?;
        if (index + 1) % PROGRESS_EVERY == 0 {
            progress(index + 1);
        }
    }
    progress(options.profiles);
    let files = writers.finish()?;
    let manifest = build_manifest(options, schema_files, files, tally);
    write_json(&options.out.join(MANIFEST_FILE), &manifest)?;
    Ok(manifest)
}

/// The three dataset writers of a run.
struct Writers {
    crm: DatasetWriter<CrmRecord>,
    loyalty: DatasetWriter<LoyaltyRecord>,
    events: DatasetWriter<ExperienceEvent>,
}

impl Writers {
    fn new(options: &GenerateOptions) -> Result<Self, GenerateError> {
        fn writer<R: Serialize>(
            options: &GenerateOptions,
            kind: DatasetKind,
        ) -> Result<DatasetWriter<R>, GenerateError> {
            let schema = kind.xdm_schema().arrow_schema();
            DatasetWriter::new(
                &options.out,
                kind.key(),
                options.format,
                options.records_per_file,
                schema,
            )
        }
        Ok(Self {
            crm: writer(options, DatasetKind::Crm)?,
            loyalty: writer(options, DatasetKind::Loyalty)?,
            events: writer(options, DatasetKind::Events)?,
        })
    }

    fn write(
        &mut self,
        crm: Option<CrmRecord>,
        loyalty: Option<LoyaltyRecord>,
        events: Vec<ExperienceEvent>,
    ) -> Result<(), GenerateError> {
        if let Some(record) = crm {
            self.crm.write(record)?;
        }
        if let Some(record) = loyalty {
            self.loyalty.write(record)?;
        }
        for event in events {
            self.events.write(event)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<BTreeMap<DatasetKind, Vec<WrittenFile>>, GenerateError> {
        Ok(BTreeMap::from([
            (DatasetKind::Crm, self.crm.finish()?),
            (DatasetKind::Loyalty, self.loyalty.finish()?),
            (DatasetKind::Events, self.events.finish()?),
        ]))
    }
}

/// The paths a run writes besides the manifest, relative to the output folder.
fn owned_entries() -> Vec<&'static str> {
    let mut entries = vec![MANIFEST_FILE, SCHEMA_FOLDER];
    entries.extend(DatasetKind::ALL.map(DatasetKind::key));
    entries
}

/// Creates the output folder. Output of an earlier run is removed only when asked, and then only
/// what a run writes (other files in the folder are left alone).
fn prepare_output(out: &Path, overwrite: bool) -> Result<(), GenerateError> {
    std::fs::create_dir_all(out).map_err(|e| GenerateError::io(out, e))?;
    for entry in owned_entries() {
        let path = out.join(entry);
        if !path.exists() {
            continue;
        }
        if !overwrite {
            return Err(GenerateError::Invalid(format!(
                "{} already holds generated data ({} exists); choose another folder or pass --overwrite",
                out.display(),
                path.display()
            )));
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| GenerateError::io(&path, e))?;
    }
    Ok(())
}

/// (schema file, descriptors file) of a dataset, relative to the output folder.
type SchemaFiles = BTreeMap<DatasetKind, (String, String)>;

/// Writes each dataset's schema body and its identity descriptors. Descriptors name their schema
/// by a placeholder, since the `$id` is known only once the registry has the schema.
fn write_schemas(out: &Path) -> Result<SchemaFiles, GenerateError> {
    let folder = out.join(SCHEMA_FOLDER);
    std::fs::create_dir_all(&folder).map_err(|e| GenerateError::io(&folder, e))?;
    let mut files = SchemaFiles::new();
    for kind in DatasetKind::ALL {
        let schema = format!("{SCHEMA_FOLDER}/{}.schema.json", kind.key());
        let descriptors = format!("{SCHEMA_FOLDER}/{}.descriptors.json", kind.key());
        write_json(&out.join(&schema), &kind.schema_body())?;
        write_json(
            &out.join(&descriptors),
            &kind.identity_descriptors(SCHEMA_ID_PLACEHOLDER),
        )?;
        files.insert(kind, (schema, descriptors));
    }
    Ok(files)
}

/// What `xdm:sourceSchema` says in written descriptors: replace it with the schema's `$id`.
pub const SCHEMA_ID_PLACEHOLDER: &str = "{SCHEMA_ID}";

fn build_manifest(
    options: &GenerateOptions,
    mut schema_files: SchemaFiles,
    mut files: BTreeMap<DatasetKind, Vec<WrittenFile>>,
    tally: Tally,
) -> Manifest {
    let datasets = DatasetKind::ALL
        .into_iter()
        .map(|kind| {
            let (schema, descriptors) = schema_files.remove(&kind).expect("every schema is written");
            let files = files.remove(&kind).expect("every dataset is written");
            let entry = DatasetEntry {
                name: kind.dataset_name(),
                class: kind.xdm_schema().class.class_id(),
                schema,
                descriptors,
                records: files.iter().map(|file| file.records).sum(),
                files,
            };
            (kind.key(), entry)
        })
        .collect();
    Manifest {
        generator: format!("dossier-bench {}", env!("CARGO_PKG_VERSION")),
        seed: options.seed,
        profiles: options.profiles,
        format: options.format.name(),
        records_per_file: options.records_per_file,
        datasets,
        expected: tally.finish(options.profiles),
    }
}

/// Pretty JSON with a final newline, so the files read well and diff cleanly.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), GenerateError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| GenerateError::io(path, e))
}
