//! The client side of the cluster: a session whose queries run on the Ballista scheduler at a
//! `df://HOST:PORT` URL, with the lake and Dossier's functions registered for planning.

use std::time::Duration;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use dossier_storage::Lake;

/// How long [`connect`] waits for the scheduler to answer: a scheduler on the network answers
/// in milliseconds, and a server should not hang at start-up on one that is gone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a session on the cluster could not be had. Each names the URL and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cluster_url = \"{url}\": {reason}; write it as df://HOST:PORT, the --listen of `dossier cluster scheduler`"
    )]
    BadUrl { url: String, reason: &'static str },
    #[error(
        "cluster_url = \"{url}\": no Ballista scheduler answers there ({reason}); start one with `dossier cluster scheduler --listen {address}` or fix the URL"
    )]
    Unreachable {
        url: String,
        address: String,
        reason: String,
    },
    #[error(
        "cluster_url = \"{url}\": setting {key} = {value}: {reason}; name a DataFusion or Ballista setting (datafusion.*, ballista.*) with a value of its type"
    )]
    BadSetting {
        url: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("cluster_url = \"{url}\": cannot build a session on the scheduler: {source}")]
    Session {
        url: String,
        #[source]
        source: DataFusionError,
    },
}

/// A session whose queries run on the scheduler at `url` (`df://HOST:PORT[?KEY=VALUE&...]`),
/// with `lake` registered under [`crate::session::LAKE_URL`] and Dossier's functions. The
/// query's pairs are DataFusion and Ballista settings applied over Dossier's defaults, for every
/// job of the session. Fails within [`CONNECT_TIMEOUT`] when no scheduler answers there, rather
/// than at the first query.
pub async fn connect(url: &str, lake: &Lake) -> Result<SessionContext, ClusterError> {
    let (address, settings) = parse_with_settings(url)?;
    let config = session_config(url, &settings)?;
    probe(url, &address).await?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://{address}"), state)
        .await
        .map_err(|source| ClusterError::Session {
            url: url.to_owned(),
            source,
        })?;
    // After the upgrade to a Ballista session, which resets the function lists.
    super::with_dossier(&ctx, lake);
    Ok(ctx)
}

/// The session's settings: Dossier's defaults, then the URL's `settings` over them. Ballista
/// sends the client's settings with each job, so the scheduler and the executors plan and run
/// with these too.
fn session_config(url: &str, settings: &[(&str, &str)]) -> Result<SessionConfig, ClusterError> {
    let mut config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(crate::codec::logical())
        .with_ballista_physical_extension_codec(crate::codec::physical())
        // Ballista 55's adaptive planner (its default) never ends a job in which an exchange's
        // input comes out empty: it replaces the input with an `EmptyExec` and plans a new
        // stage over it, again and again (hundreds of stages a minute, the job RUNNING for
        // ever). An export whose segment has no member did that. The static planner runs the
        // same plans to their end; a URL may still ask for the adaptive one.
        .with_ballista_adaptive_query_planner(false);
    // As in every Dossier session (`session::session_config`): plain string types, which the
    // engine's functions read.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    for (key, value) in settings {
        config
            .options_mut()
            .set(key, value)
            .map_err(|error| ClusterError::BadSetting {
                url: url.to_owned(),
                key: (*key).to_owned(),
                value: (*value).to_owned(),
                reason: error.strip_backtrace(),
            })?;
    }
    Ok(config)
}

/// The `KEY=VALUE` pairs of a cluster URL's query, in order.
type Settings<'a> = Vec<(&'a str, &'a str)>;

/// `HOST:PORT` of a `df://HOST:PORT[?KEY=VALUE&...]` URL, and the query's settings in order.
fn parse_with_settings(url: &str) -> Result<(String, Settings<'_>), ClusterError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let address = parse(base).map_err(|error| match error {
        ClusterError::BadUrl { reason, .. } => ClusterError::BadUrl {
            url: url.to_owned(),
            reason,
        },
        other => other,
    })?;
    let settings = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=').ok_or_else(|| ClusterError::BadUrl {
                url: url.to_owned(),
                reason: "a query pair is not KEY=VALUE",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((address, settings))
}

/// `HOST:PORT` of a `df://HOST:PORT` URL.
fn parse(url: &str) -> Result<String, ClusterError> {
    let bad = |reason| ClusterError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("df://")
        .ok_or_else(|| bad("the scheme is not df://"))?;
    let address = rest.trim_end_matches('/');
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("it names no port"))?;
    if host.is_empty() || address.contains('/') {
        return Err(bad("it names no host, or more than HOST:PORT"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    Ok(address.to_owned())
}

/// Opens one gRPC connection to the scheduler: Ballista's own session creation never dials, so
/// without this a wrong URL would only show at the first query.
async fn probe(url: &str, address: &str) -> Result<(), ClusterError> {
    answers(address).await.map_err(|reason| ClusterError::Unreachable {
        url: url.to_owned(),
        address: address.to_owned(),
        reason,
    })
}

/// Whether a gRPC server answers at `address` (`HOST:PORT`) within [`CONNECT_TIMEOUT`]; why
/// not when it does not.
pub(crate) async fn answers(address: &str) -> Result<(), String> {
    let endpoint = ballista_core::utils::create_grpc_client_endpoint(format!("http://{address}"), None)
        .map_err(|error| describe(&error))?
        .connect_timeout(CONNECT_TIMEOUT);
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(_channel)) => Ok(()),
        Ok(Err(error)) => Err(describe(&error)),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// The error with its causes: tonic's own text is only "transport error".
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_df_host_port_is_a_cluster_url() {
        assert_eq!(parse("df://10.0.0.5:50050").unwrap(), "10.0.0.5:50050");
        assert_eq!(parse("df://scheduler:50050/").unwrap(), "scheduler:50050");
        for bad in [
            "http://a:1",
            "df://a",
            "df://:1",
            "df://a:0",
            "df://a:x",
            "df://a:1/b",
            "a:1",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad) && error.contains("df://HOST:PORT"), "{error}");
        }
    }

    #[test]
    fn sessions_plan_statically_unless_the_url_asks_for_the_adaptive_planner() {
        let url = "df://a:1";
        assert!(
            !session_config(url, &[])
                .unwrap()
                .ballista_adaptive_query_planner_enabled()
        );
        let asked = [("ballista.planner.adaptive.enabled", "true")];
        assert!(
            session_config(url, &asked)
                .unwrap()
                .ballista_adaptive_query_planner_enabled()
        );
        let error = session_config(url, &[("datafusion.execution.target_partitionz", "4")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("target_partitionz = 4"), "{error}");
    }

    #[test]
    fn a_cluster_url_query_carries_settings() {
        let url = "df://a:1?datafusion.execution.target_partitions=4&ballista.job.name=x";
        let (address, settings) = parse_with_settings(url).unwrap();
        assert_eq!(address, "a:1");
        assert_eq!(
            settings,
            [
                ("datafusion.execution.target_partitions", "4"),
                ("ballista.job.name", "x")
            ]
        );
        let error = parse_with_settings("df://a:1?target_partitions")
            .unwrap_err()
            .to_string();
        assert!(error.contains("KEY=VALUE"), "{error}");
        let error = parse_with_settings("df://a?x=1").unwrap_err().to_string();
        assert!(error.contains("df://a?x=1") && error.contains("no port"), "{error}");
    }
}
