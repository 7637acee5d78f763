//! Reading one shard's spilled fragments back as the keyed sources of its profiles.

use dossier_model::xdm::SchemaClass;

use super::super::keys::{KeyedFile, KeyedSources, ProfileFacts};
use super::super::spill::fragment_rows;
use super::ShardedKeys;
use crate::EngineError;
use crate::identity::Identity;
use crate::segments::MembershipOverlay;
use crate::segments::memberships::ProfileIndex;

impl ShardedKeys {
    /// The keyed sources of shard `index` (each shard can be taken once), and the evaluated
    /// memberships of its profiles.
    pub fn shard(&mut self, index: usize) -> Result<(KeyedSources, MembershipOverlay), EngineError> {
        let spill = self.shards[index]
            .take()
            .ok_or_else(|| EngineError::Invalid(format!("shard {index} was already read")))?;
        let mut files: Vec<KeyedFile> = self.files.iter().cloned().map(KeyedFile::new).collect();
        let mut numbers: foldhash::HashMap<u128, u32> = foldhash::HashMap::default();
        let mut profiles: Vec<Identity> = Vec::new();
        let mut facts: Vec<ProfileFacts> = Vec::new();
        for batch in spill.into_batches()? {
            let batch = batch?;
            let (rows, key_ids) = fragment_rows(&batch);
            for (i, row) in rows.iter().enumerate() {
                let profile = *numbers.entry(row.key).or_insert_with(|| {
                    // `none`: the profile's key is its primary identity. `pdg` needs no key: the
                    // evaluated memberships find their profiles by component.
                    let key = match key_ids {
                        Some(ids) => Identity::new(self.namespaces[row.namespace as usize].as_ref(), ids.value(i)),
                        None => Identity::new("", ""),
                    };
                    profiles.push(key);
                    facts.push(ProfileFacts::default());
                    (profiles.len() - 1) as u32
                });
                let keyed = &mut files[row.file as usize];
                keyed.push(row.row, profile, row.row_id);
                let is_record = self.datasets[keyed.file.dataset].schema.class == SchemaClass::Profile;
                let namespace = &self.namespaces[row.namespace as usize];
                facts[profile as usize].observe(is_record, &keyed.file, row.row_id, || namespace.clone());
            }
        }
        let (mut records, mut events) = (Vec::new(), Vec::new());
        for mut keyed in files {
            sort_by_row(&mut keyed);
            match self.datasets[keyed.file.dataset].schema.class {
                SchemaClass::Profile => records.push(keyed),
                _ => events.push(keyed),
            }
        }
        let overlay = if self.memberships.is_empty() {
            MembershipOverlay::default()
        } else {
            let index = match &self.resolved {
                Some(resolved) => {
                    ProfileIndex::by_component(resolved, numbers.iter().map(|(&c, &p)| (c as u32, p)).collect())
                }
                None => ProfileIndex::new(&profiles),
            };
            MembershipOverlay::of_segments(&self.memberships, &index, profiles.len())
        };
        let sources = KeyedSources {
            datasets: self.datasets.clone(),
            records,
            events,
            profiles,
            facts,
        };
        Ok((sources, overlay))
    }
}

/// Puts a file's entries in row order (a file's rows arrive bucket by bucket when the graph is
/// joined in several), as row selections need.
fn sort_by_row(keyed: &mut KeyedFile) {
    if keyed.rows.is_sorted() {
        return;
    }
    let mut entries: Vec<(u32, u32, i64)> = keyed
        .rows
        .iter()
        .zip(&keyed.profiles)
        .zip(&keyed.row_ids)
        .map(|((&r, &p), &id)| (r, p, id))
        .collect();
    entries.sort_unstable_by_key(|e| e.0);
    keyed.rows = entries.iter().map(|e| e.0).collect();
    keyed.profiles = entries.iter().map(|e| e.1).collect();
    keyed.row_ids = entries.iter().map(|e| e.2).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path as ObjectPath;

    use super::super::super::keys::SourceFile;

    #[test]
    fn entries_arriving_out_of_row_order_are_sorted_with_their_profiles() {
        let file = SourceFile {
            dataset: 0,
            location: ObjectPath::from("f.parquet"),
            ingested: 0,
            batch_seq: 0,
        };
        let mut keyed = KeyedFile::new(file);
        keyed.push(5, 1, 50);
        keyed.push(2, 0, 20);
        keyed.push(9, 2, 90);
        sort_by_row(&mut keyed);
        assert_eq!(keyed.rows, vec![2, 5, 9]);
        assert_eq!(keyed.profiles, vec![0, 1, 2]);
        assert_eq!(keyed.row_ids, vec![20, 50, 90]);
    }
}
