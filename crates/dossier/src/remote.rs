//! A client of a running Dossier server, for the commands that work over HTTP (`ingest`, later
//! `export`): it fetches a token with a client id and secret and sends AEP's headers.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// Where the server is and who is calling. Flags or environment.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The server's base URL
    #[arg(long, env = "DOSSIER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API client id (from `dossier clients create`)
    #[arg(long, env = "DOSSIER_CLIENT_ID")]
    pub client_id: String,
    /// API client secret
    #[arg(long, env = "DOSSIER_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// The IMS organization
    #[arg(long, env = "DOSSIER_ORG")]
    pub org: String,
    /// The sandbox
    #[arg(long, env = "DOSSIER_SANDBOX", default_value = "prod")]
    pub sandbox: String,
}

pub struct Remote {
    http: reqwest::Client,
    args: RemoteArgs,
    token: String,
}

/// A response's body as JSON, or an error quoting the server's own words.
pub async fn json_or_error(response: Response, doing: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{doing}: the answer broke off"))?;
    if !status.is_success() {
        bail!("{doing}: the server answered {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{doing}: the answer is not JSON: {text}"))
}

impl Remote {
    /// Exchanges the client id and secret for a token.
    pub async fn connect(args: RemoteArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let url = args.url.trim_end_matches('/').to_owned();
        let response = http
            .post(format!("{url}/ims/token/v3"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", args.client_id.as_str()),
                ("client_secret", args.client_secret.as_str()),
                ("scope", "openid"),
            ])
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {url}; is `dossier serve` running?"))?;
        let body = json_or_error(response, "getting a token").await?;
        let token = body["access_token"]
            .as_str()
            .context("the token answer has no access_token")?
            .to_owned();
        Ok(Self {
            http,
            args: RemoteArgs { url, ..args },
            token,
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.args.url))
            .bearer_auth(&self.token)
            .header("x-api-key", &self.args.client_id)
            .header("x-gw-ims-org-id", &self.args.org)
            .header("x-sandbox-name", &self.args.sandbox)
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.request(Method::GET, path).send().await?;
        json_or_error(response, &format!("GET {path}")).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.request(Method::POST, path).json(body).send().await?;
        json_or_error(response, &format!("POST {path}")).await
    }
}
