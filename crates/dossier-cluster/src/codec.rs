//! The plan codecs of the cluster: how a plan crosses from the client to the scheduler and from
//! the scheduler to the executors.
//!
//! Ballista's default codecs carry every plan node Dossier's plans use today (Parquet scans,
//! shuffles, joins, aggregates). Dossier's functions need no codec of their own: a plan names a
//! function and each process looks the name up in the function registry it built with
//! [`crate::functions::register`], which is why every process (client, scheduler, executor)
//! registers the same list. A Dossier plan node or table provider of its own would get its
//! encoding here, wrapping these defaults, and every process would pick it up through these two
//! functions.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;

/// The codec of logical plans (client to scheduler).
pub fn logical() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(BallistaLogicalExtensionCodec::default())
}

/// The codec of physical plans (scheduler to executors, and shuffle stages between them).
pub fn physical() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(BallistaPhysicalExtensionCodec::default())
}
