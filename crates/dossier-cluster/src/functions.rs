//! Dossier's own functions (scalar and aggregate), registered in every session: the client's,
//! the scheduler's and each executor's, so a plan that names them runs anywhere in the cluster.
//! One list, here; each module that defines a function adds it to [`register`].

use datafusion::prelude::SessionContext;

/// Registers every Dossier function in `ctx`.
pub fn register(ctx: &SessionContext) {
    let _ = ctx;
}
