//! The few WebDriver commands the console's test needs (W3C WebDriver, as chromedriver speaks
//! it), over the suite's reqwest client.
//!
//! Why not a WebDriver crate: `fantoccini` (the well-kept one) brings `webdriver`, whose ICU
//! dependencies turn on a feature of `syn` that the rest of the workspace does not use; every
//! proc-macro and so every crate, DataFusion included, would then build twice. A dozen JSON
//! requests are cheaper than that.

use std::time::Duration;

use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver answer that is an error: `{"value": {"error", "message"}}`.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// One browser session.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element of the session's current page.
pub struct Element<'a> {
    session: &'a Session,
    id: String,
}

impl Session {
    /// Opens a session on the driver at `driver_url` with `capabilities` (`alwaysMatch`).
    pub async fn start(driver_url: &str, capabilities: Value) -> Result<Session, WebDriverError> {
        let http = reqwest::Client::new();
        let body = json!({"capabilities": {"alwaysMatch": capabilities}});
        let value = send(
            &http,
            reqwest::Method::POST,
            &format!("{driver_url}/session"),
            Some(body),
        )
        .await?;
        let id = value["sessionId"].as_str().unwrap_or_default();
        Ok(Session {
            http,
            base: format!("{driver_url}/session/{id}"),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        send(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    pub async fn current_url(&self) -> Result<String, WebDriverError> {
        let value = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS selector, now (no waiting).
    pub async fn find(&self, css: &str) -> Result<Element<'_>, WebDriverError> {
        self.find_by("css selector", css).await
    }

    /// The first link whose text is `text`.
    pub async fn find_link(&self, text: &str) -> Result<Element<'_>, WebDriverError> {
        self.find_by("link text", text).await
    }

    async fn find_by(&self, using: &str, value: &str) -> Result<Element<'_>, WebDriverError> {
        let body = json!({"using": using, "value": value});
        let found = self.call(reqwest::Method::POST, "/element", Some(body)).await?;
        Ok(Element {
            session: self,
            id: found[ELEMENT_KEY].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn execute(&self, script: &str) -> Result<Value, WebDriverError> {
        let body = json!({"script": script, "args": []});
        self.call(reqwest::Method::POST, "/execute/sync", Some(body)).await
    }

    /// The viewport as a PNG.
    pub async fn screenshot(&self) -> Result<Vec<u8>, WebDriverError> {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        Ok(decode_base64(value.as_str().unwrap_or_default()))
    }

    /// Ends the session, closing the browser.
    pub async fn close(self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::DELETE, "", None).await.map(drop)
    }
}

impl Element<'_> {
    async fn call(&self, method: reqwest::Method, what: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let path = format!("/element/{}{what}", self.id);
        self.session.call(method, &path, body).await
    }

    pub async fn click(&self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/click", Some(json!({})))
            .await
            .map(drop)
    }

    pub async fn clear(&self) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/clear", Some(json!({})))
            .await
            .map(drop)
    }

    pub async fn send_keys(&self, text: &str) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/value", Some(json!({"text": text})))
            .await
            .map(drop)
    }

    /// The rendered text (CSS `text-transform` applied, as the user reads it).
    pub async fn text(&self) -> Result<String, WebDriverError> {
        let value = self.call(reqwest::Method::GET, "/text", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    pub async fn attribute(&self, name: &str) -> Result<Option<String>, WebDriverError> {
        let value = self
            .call(reqwest::Method::GET, &format!("/attribute/{name}"), None)
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }
}

/// Sends one command; the answer's `value`, or its error.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    let mut request = http.request(method, url).timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let failed = |error: &str, message: String| WebDriverError {
        error: error.to_owned(),
        message,
    };
    let response = request
        .send()
        .await
        .map_err(|e| failed("no answer", format!("{url}: {e}")))?;
    let ok = response.status().is_success();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| failed("not JSON", format!("{url}: {e}")))?;
    let value = answer["value"].clone();
    match ok {
        true => Ok(value),
        false => Err(failed(
            value["error"].as_str().unwrap_or("unknown error"),
            value["message"].as_str().unwrap_or_default().to_owned(),
        )),
    }
}

/// Standard base64 (screenshots), ignoring padding and line breaks.
fn decode_base64(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(sextet).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, s)| acc | (u32::from(*s) << (18 - 6 * i)));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_what_the_standard_alphabet_encodes() {
    assert_eq!(decode_base64("UEFSMQ=="), b"PAR1");
    assert_eq!(decode_base64("UEFS"), b"PAR");
    assert_eq!(decode_base64("UEE="), b"PA");
    assert_eq!(decode_base64("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
