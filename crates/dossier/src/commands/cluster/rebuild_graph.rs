//! `dossier cluster rebuild-graph --cluster-url df://HOST:PORT --org ORG --sandbox NAME`: rebuilds
//! a sandbox's identity graph as a distributed connected-components job on the cluster and
//! makes it the sandbox's next graph version, in the store and lake of the global
//! `--metadata-url`, `--data-dir` and `--lake-url` settings (which the executors must read too).

use anyhow::Context;

use dossier_cluster::graph::{RebuiltGraph, SessionContext, rebuild_graph};
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::Lake;

use crate::config::Settings;

/// The options of `dossier cluster rebuild-graph`.
#[derive(Debug, clap::Args)]
pub struct RebuildGraphArgs {
    /// The Ballista scheduler the job runs on: df://HOST:PORT (the --listen of `dossier cluster scheduler`)
    #[arg(long, env = "DOSSIER_CLUSTER_URL")]
    pub cluster_url: String,
    /// The organization of the sandbox
    #[arg(long)]
    pub org: String,
    /// The sandbox whose graph is rebuilt
    #[arg(long, default_value = "prod")]
    pub sandbox: String,
}

/// The session of the cluster at `url`, with the lake registered on the client side.
async fn cluster_session(url: &str, lake: &Lake) -> anyhow::Result<SessionContext> {
    Ok(dossier_cluster::node::connect(url, lake).await?)
}

fn report(rebuilt: &RebuiltGraph) {
    let version = &rebuilt.version;
    println!("Identity graph version {} written: {}", version.version, version.path);
    println!("  identities  {}", version.nodes);
    println!("  components  {}", version.components);
    println!(
        "  batches     {} ({} files, {} links)",
        rebuilt.batches, rebuilt.files, rebuilt.links
    );
    println!("  rounds      {}", rebuilt.rounds);
    println!("  time        {:.1} s", rebuilt.elapsed.as_secs_f64());
}

pub async fn run(args: RebuildGraphArgs, settings: &Settings) -> anyhow::Result<()> {
    let tenant = Tenant {
        org: OrgId::parse(&args.org)?,
        sandbox: SandboxName::parse(&args.sandbox)?,
    };
    let storage = settings.storage.open().await?;
    let ctx = cluster_session(&args.cluster_url, &storage.lake).await?;
    let rebuilt = rebuild_graph(&ctx, &storage.meta, &storage.lake, &tenant)
        .await
        .with_context(|| format!("cannot rebuild the identity graph of {}/{}", tenant.org, tenant.sandbox))?;
    report(&rebuilt);
    storage.meta.close().await;
    Ok(())
}
