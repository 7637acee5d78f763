//! `dossier sandboxes create | list`.

use clap::Subcommand;
use serde_json::json;

use dossier_model::tenancy::{OrgId, SandboxName};

use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum SandboxesCommand {
    /// Create a sandbox in an organization (every organization starts with `prod`).
    Create {
        #[arg(long)]
        org: String,
        name: String,
    },
    /// List sandboxes.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: SandboxesCommand, settings: &Settings) -> anyhow::Result<()> {
    let meta = settings.storage.open_metadata().await?;
    match command {
        SandboxesCommand::Create { org, name } => {
            let org = OrgId::parse(&org)?;
            let name = SandboxName::parse(&name)?;
            meta.create_sandbox(&org, &name).await?;
            println!("Created sandbox {name} in {org}.");
        }
        SandboxesCommand::List { org, json } => {
            let org = org.as_deref().map(OrgId::parse).transpose()?;
            let sandboxes = meta.list_sandboxes(org.as_ref()).await?;
            if json {
                let list: Vec<_> = sandboxes
                    .iter()
                    .map(|(t, created)| json!({"org": t.org, "name": t.sandbox, "created": created}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<40} NAME", "ORG");
                for (tenant, _) in &sandboxes {
                    println!("{:<40} {}", tenant.org.as_str(), tenant.sandbox.as_str());
                }
            }
        }
    }
    meta.close().await;
    Ok(())
}
