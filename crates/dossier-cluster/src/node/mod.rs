//! The processes of a Dossier cluster: Ballista's scheduler ([`scheduler`]) and executors
//! ([`executor`]) run inside the `dossier` binary, and [`client`] connects a server to them.
//!
//! Every process builds its sessions the same way ([`session_state`]): the lake's object store
//! under [`crate::session::LAKE_URL`], Dossier's functions, and the codecs of [`crate::codec`].
//! That sameness is what lets a plan written on one process run on another: a file is named by
//! the same URL and a function by the same name everywhere.

pub mod client;
pub mod executor;
pub mod scheduler;

use std::net::SocketAddr;

use ballista_core::error::BallistaError;
use ballista_core::utils::default_session_builder;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use dossier_storage::Lake;

pub use client::{ClusterError, connect};

/// Why a scheduler or an executor did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {address}: {source}; pick a free port or another address")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--listen {address}: an executor needs a fixed port (not 0), because it tells the scheduler where to fetch its shuffle files"
    )]
    NoPort { address: SocketAddr },
    #[error("cannot create the work dir {}: {source}; give another with --work-dir", path.display())]
    WorkDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--grpc-port {port} is the executor's Flight port too; pick another")]
    SamePorts { port: u16 },
    #[error(
        "--scheduler {scheduler}: no scheduler answered there within {waited:?} ({reason}); start it (`dossier cluster scheduler --listen {scheduler}`) or fix the address"
    )]
    SchedulerUnreachable {
        scheduler: String,
        waited: std::time::Duration,
        reason: String,
    },
    #[error("the scheduler on {address} stopped: {source}")]
    Scheduler {
        address: SocketAddr,
        #[source]
        source: BallistaError,
    },
    #[error("the executor on {address} (scheduler {scheduler}) stopped: {source}")]
    Executor {
        address: SocketAddr,
        scheduler: String,
        #[source]
        source: BallistaError,
    },
}

/// The session state of every process of the cluster: Ballista's default (its optimizer rules
/// and functions) with the lake registered under [`crate::session::LAKE_URL`] and Dossier's
/// functions.
pub fn session_state(config: SessionConfig, lake: &Lake) -> Result<SessionState, DataFusionError> {
    let ctx = SessionContext::new_with_state(default_session_builder(config)?);
    with_dossier(&ctx, lake);
    Ok(ctx.state())
}

/// Registers what a Dossier plan needs in `ctx`: the lake and the functions.
fn with_dossier(ctx: &SessionContext, lake: &Lake) {
    crate::session::register_lake(ctx, lake);
    crate::functions::register(ctx);
}
