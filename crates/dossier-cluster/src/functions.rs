//! Dossier's own functions (scalar and aggregate), registered in every session: the client's,
//! the scheduler's and each executor's, so a plan that names them runs anywhere in the cluster.
//! One list, here; each module that defines a function adds it to [`register`].

pub mod identity_hash;

use datafusion::prelude::SessionContext;

/// Registers every Dossier function in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(identity_hash::udf());
}
