//! Dossier beyond one machine: the export, segment evaluation and the identity graph's
//! connected components as Apache DataFusion plans, run on an Apache DataFusion Ballista cluster
//! (scheduler + executors) that reads the same lake; and the scheduler and executor processes
//! themselves, with Dossier's functions, codecs and the lake's object store registered.
//!
//! Built only with the `cluster` feature of the `dossier` crate: DataFusion and Ballista add many
//! minutes to a clean build, and one machine needs neither.

pub mod codec;
pub mod event_list;
pub mod export;
pub mod functions;
pub mod graph;
pub mod memberships;
pub mod node;
pub mod profiles;
pub mod segments;
pub mod session;

// The DataFusion this crate plans with, for callers that inspect or ship its plans (tests
// serialize them as Ballista does) without a second dependency declaration.
pub use datafusion;
pub use datafusion_proto;
