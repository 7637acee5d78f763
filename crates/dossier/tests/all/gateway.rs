//! The gateway checks of api.md section 2, over HTTP, in their order and with their exact bodies.

use std::time::Duration;

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const DATASETS: &str = "/data/foundation/catalog/dataSets";

async fn get_with(server: &TestServer, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = server.http.get(format!("{}{DATASETS}", server.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    into_parts(request.send().await.unwrap()).await
}

#[tokio::test]
async fn every_gateway_error_in_order_with_its_exact_body() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let bearer = format!("Bearer {}", caller.token);
    let id = caller.credentials.client_id.as_str();

    // No Authorization at all: missing, even when everything else is wrong too.
    assert_eq!(
        get_with(&server, &[("x-api-key", "nope")]).await,
        (
            401,
            json!({"error_code": "403010", "message": "Oauth token is missing."})
        )
    );
    assert_eq!(
        get_with(&server, &[("authorization", "Bearer ")]).await,
        (
            401,
            json!({"error_code": "403010", "message": "Oauth token is missing."})
        )
    );
    // A token we did not sign, or garbage.
    for bad in [
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    ] {
        assert_eq!(
            get_with(&server, &[("authorization", bad), ("x-api-key", id)]).await,
            (
                401,
                json!({"error_code": "401013", "message": "Oauth token is not valid"})
            ),
            "{bad}"
        );
    }
    // Valid token, then the API key.
    assert_eq!(
        get_with(&server, &[("authorization", &bearer)]).await,
        (403, json!({"error_code": "403000", "message": "Api Key is required"}))
    );
    assert_eq!(
        get_with(&server, &[("authorization", &bearer), ("x-api-key", "someone-else")]).await,
        (403, json!({"error_code": "403003", "message": "Api Key is invalid"}))
    );
    // Then the organization.
    assert_eq!(
        get_with(&server, &[("authorization", &bearer), ("x-api-key", id)]).await,
        (400, json!({"error_code": "400003", "message": "Missing header"}))
    );
    assert_eq!(
        get_with(
            &server,
            &[
                ("authorization", &bearer),
                ("x-api-key", id),
                ("x-gw-ims-org-id", OTHER_ORG)
            ]
        )
        .await,
        (403, json!({"error_code": "403025", "message": "Profile is not valid"}))
    );
    // Then the sandbox: absent means prod.
    let (status, body) = get_with(
        &server,
        &[("authorization", &bearer), ("x-api-key", id), ("x-gw-ims-org-id", ORG)],
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn unknown_sandbox_is_a_404_in_the_services_shape() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "nowhere").await;

    let (status, body) = caller.get(DATASETS).await;
    assert_eq!(status, 404);
    assert_eq!(body["title"], "NotFoundError");
    assert_eq!(body["status"], 404);
    assert!(body["detail"].as_str().unwrap().contains("nowhere"), "{body}");

    let (status, body) = caller.get("/data/core/ups/export/jobs").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    let errors = &body["errors"]["404"][0];
    assert!(
        errors["message"].as_str().unwrap().contains("Sandbox 'nowhere'"),
        "{body}"
    );
    assert!(body["requestId"].is_string());
}

#[tokio::test]
async fn a_token_of_org_a_cannot_address_org_b_even_where_b_exists() {
    let server = TestServer::start().await;
    let a = server.caller(ORG, "prod").await;
    let b = server.caller(OTHER_ORG, "prod").await;
    let b_dataset = b.create_dataset("B's data").await;

    let mut a_as_b = a.clone();
    a_as_b.credentials.org = OTHER_ORG.to_owned();
    let (status, body) = a_as_b.get(&format!("{DATASETS}/{b_dataset}")).await;
    assert_eq!(
        (status, body),
        (403, json!({"error_code": "403025", "message": "Profile is not valid"}))
    );

    // And with its own org header, B's dataset simply does not exist for A.
    let (status, body) = a.get(&format!("{DATASETS}/{b_dataset}")).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn clients_limited_to_sandboxes_see_others_as_missing() {
    let server = TestServer::start().await;
    server.create_sandbox(ORG, "dev");
    let credentials = server.create_client(ORG, &["dev"]);
    let token = server.token(&credentials).await;
    let caller = Caller {
        base: server.base.clone(),
        http: server.http.clone(),
        token,
        credentials,
        sandbox: "dev".into(),
    };
    assert_eq!(caller.get(DATASETS).await.0, 200);
    let (status, body) = caller.in_sandbox("prod").get(DATASETS).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("Sandbox 'prod'"));
}

#[tokio::test]
async fn token_endpoint_answers_like_ims() {
    let server = TestServer::start().await;
    let credentials = server.create_client(ORG, &[]);

    let response = server.token_response(&credentials.client_id, &credentials.secret).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86399);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let wrong = server.token_response(&credentials.client_id, "dsk-wrong").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "invalid_client");

    let grant = server
        .http
        .post(format!("{}/ims/token/v3", server.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", credentials.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 400);
    assert_eq!(grant.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");

    let missing = server
        .http
        .post(format!("{}/ims/token/v3", server.base))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn revoking_a_client_kills_its_secret_and_its_tokens() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    assert_eq!(caller.get(DATASETS).await.0, 200);

    dossier(
        &server.data_dir(),
        &["clients", "revoke", &caller.credentials.client_id],
    );

    let (status, body) = caller.get(DATASETS).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error_code": "401013", "message": "Oauth token is not valid"})
        )
    );
    let again = server
        .token_response(&caller.credentials.client_id, &caller.credentials.secret)
        .await;
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn tokens_expire() {
    let server = TestServer::start_with(|config| config.options.token_ttl_secs = 1).await;
    let caller = server.caller(ORG, "prod").await;
    assert_eq!(caller.get(DATASETS).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = caller.get(DATASETS).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error_code": "401013", "message": "Oauth token is not valid"})
        )
    );
}

#[tokio::test]
async fn static_tokens_from_configuration_work_with_their_client_id() {
    let token = "ci-token-0123456789abcdef0123456789";
    let server =
        TestServer::start_with(|config| config.static_tokens = vec![static_token(token, "ci-client", ORG)]).await;
    let caller = Caller {
        base: server.base.clone(),
        http: server.http.clone(),
        token: token.to_owned(),
        credentials: Credentials {
            client_id: "ci-client".into(),
            secret: String::new(),
            org: ORG.into(),
        },
        sandbox: "prod".into(),
    };
    assert_eq!(caller.get(DATASETS).await.0, 200);
    let mut wrong_key = caller.clone();
    wrong_key.credentials.client_id = "other".into();
    assert_eq!(
        wrong_key.get(DATASETS).await,
        (403, json!({"error_code": "403003", "message": "Api Key is invalid"}))
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_appear_in_error_bodies() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let response = caller
        .request(Method::GET, DATASETS)
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "my-trace-42");

    let response = caller
        .request(Method::GET, &format!("{DATASETS}?limit=0"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!generated.is_empty());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["requestId"], generated);

    let health = server.http.get(format!("{}/health", server.base)).send().await.unwrap();
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json_and_need_a_token_under_data() {
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;

    let anonymous = server
        .http
        .get(format!("{}/data/foundation/catalog/nothing-here", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let (status, body) = caller.get("/data/foundation/catalog/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["title"], "NotFoundError");

    let (status, body) = caller.send_json(Method::PUT, DATASETS, &json!({})).await;
    assert_eq!(status, 405);
    assert!(body["detail"].as_str().unwrap().contains("PUT"), "{body}");

    let (status, body) = caller.get("/data/core/ups/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"]["404"][0]["code"], "DOSSIER-ROUTE-404", "{body}");
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let server = TestServer::start().await;
    let doc = server.openapi_document().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/ims/token/v3",
        "/data/foundation/catalog/dataSets",
        "/data/foundation/catalog/dataSets/{id}",
        "/data/foundation/catalog/batches/{id}",
        "/data/foundation/import/batches",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
}
