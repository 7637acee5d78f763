//! Every integration test of the `dossier` binary in one test binary (one link instead of one per
//! file): each module drives a real server over HTTP, or the real command line.

mod support;

mod api_edges;
mod api_fuzz;
mod bench;
mod catalog;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "cluster")]
mod cluster_export;
#[cfg(feature = "cluster")]
mod cluster_graph;
#[cfg(feature = "cluster")]
mod cluster_segments;
#[cfg(feature = "cluster")]
mod cluster_serve;
mod connections;
mod console;
mod crash;
mod export_engine;
mod export_jobs;
mod export_keys;
mod export_members;
mod export_selection;
mod export_wide;
mod gateway;
mod identity_graph;
mod ingestion;
mod merge_policies;
mod merge_properties;
mod metrics;
mod nodes;
mod profiles;
mod readme;
mod s3_lake;
mod schedules;
mod schemas;
mod segment_definitions;
mod segment_jobs;
mod tutorial;
