//! `dossier clients create | list | revoke`.

use clap::Subcommand;
use serde_json::json;

use dossier_model::tenancy::{OrgId, SandboxName};
use dossier_storage::meta::ApiClient;

use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client and print its id and secret (the secret is shown only this once).
    Create {
        /// The IMS organization, e.g. 1BD6382559DF0C130A49422D@AdobeOrg
        #[arg(long)]
        org: String,
        /// A sandbox the client may use (repeat for several); without it, every sandbox of the org
        #[arg(long = "sandbox")]
        sandboxes: Vec<String>,
        /// Print {"clientId","clientSecret","org","sandboxes"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client: its secret and every token issued to it stop working at once.
    Revoke { client_id: String },
}

fn sandboxes_json(client: &ApiClient) -> serde_json::Value {
    match &client.sandboxes {
        Some(names) => json!(names),
        None => json!("*"),
    }
}

fn sandboxes_text(client: &ApiClient) -> String {
    match &client.sandboxes {
        Some(names) => names.iter().map(SandboxName::as_str).collect::<Vec<_>>().join(","),
        None => "all".to_owned(),
    }
}

pub async fn run(command: ClientsCommand, settings: &Settings) -> anyhow::Result<()> {
    let meta = settings.storage.open_metadata().await?;
    match command {
        ClientsCommand::Create { org, sandboxes, json } => {
            let org = OrgId::parse(&org)?;
            let sandboxes = if sandboxes.is_empty() {
                None
            } else {
                Some(
                    sandboxes
                        .iter()
                        .map(|s| SandboxName::parse(s))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let issued = meta.create_client(&org, sandboxes).await?;
            if json {
                println!(
                    "{}",
                    json!({
                        "clientId": issued.client.client_id,
                        "clientSecret": issued.secret,
                        "org": issued.client.org,
                        "sandboxes": sandboxes_json(&issued.client),
                    })
                );
            } else {
                println!(
                    "Created an API client for {org} (sandboxes: {}).",
                    sandboxes_text(&issued.client)
                );
                println!("client id:     {}", issued.client.client_id);
                println!("client secret: {}", issued.secret);
                println!("The secret is shown only now; store it. Exchange both for a token at POST /ims/token/v3.");
            }
        }
        ClientsCommand::List { org, json } => {
            let org = org.as_deref().map(OrgId::parse).transpose()?;
            let clients = meta.list_clients(org.as_ref()).await?;
            if json {
                let list: Vec<_> = clients
                    .iter()
                    .map(|c| json!({"clientId": c.client_id, "org": c.org, "sandboxes": sandboxes_json(c), "created": c.created, "revoked": c.revoked}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!("{:<34} {:<40} {:<20} STATUS", "CLIENT ID", "ORG", "SANDBOXES");
                for c in &clients {
                    let status = if c.revoked.is_some() { "revoked" } else { "active" };
                    println!(
                        "{:<34} {:<40} {:<20} {status}",
                        c.client_id.as_str(),
                        c.org.as_str(),
                        sandboxes_text(c)
                    );
                }
            }
        }
        ClientsCommand::Revoke { client_id } => {
            let client = meta.revoke_client(&client_id).await?;
            println!(
                "Revoked client {} of {}; its tokens no longer work.",
                client.client_id, client.org
            );
        }
    }
    meta.close().await;
    Ok(())
}
