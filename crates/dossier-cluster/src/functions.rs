//! Dossier's own functions (scalar and aggregate), registered in every session: the client's,
//! the scheduler's and each executor's, so a plan that names them runs anywhere in the cluster.
//! One list, here; each module that defines a function adds it to [`register`].

pub mod align;
pub mod identities;
pub mod identity_hash;
pub mod identity_links;
pub mod mentions;
pub mod merge_profile;

use datafusion::prelude::SessionContext;

/// Registers every Dossier function in `ctx`.
pub fn register(ctx: &SessionContext) {
    // Profiles: aligning fragments to the union, their identities, merging them (`profiles`).
    ctx.register_udf(align::udf());
    ctx.register_udf(identities::udf());
    ctx.register_udf(merge_profile::udf());
    // Identities: the engine's identity hash (`node` tests its registration on every process).
    ctx.register_udf(identity_hash::udf());
    ctx.register_udf(mentions::udf());
    // The graph rebuild's link extraction (`graph::links`).
    ctx.register_udf(identity_links::udf());
}
