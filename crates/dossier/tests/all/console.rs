//! The web console (`/console`, docs/console.md): its embedded files over plain HTTP, then the
//! whole flow in headless Chromium driven through chromedriver — sign in (a wrong secret first),
//! datasets, batches and their files, segment counts, schedules, an export created through the
//! form with the JSON it shows, the job followed live to SUCCEEDED, and a file downloaded and read
//! as Parquet.
//!
//! The browser test skips when Chromium is not installed, saying what to install, and fails under
//! `CI=true` (dossier_testkit::chromium). With `DOSSIER_CONSOLE_SCREENSHOTS=<dir>` it writes a PNG
//! of each page there (docs/console/ holds the ones the docs show).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod webdriver;

use crate::support::*;
use arrow::array::AsArray;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

const JOBS: &str = "/data/core/ups/export/jobs";
/// How long the browser may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_console_is_three_embedded_files_with_a_strict_policy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {}",
            header("content-type")
        );
        assert!(
            header("content-security-policy").contains("default-src 'self'"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.text().await.unwrap();
        // Nothing is loaded from elsewhere: no CDN, no font service.
        for external in ["src=\"http", "href=\"http", "url(http", "import "] {
            assert!(!body.contains(external), "{path} refers to {external}");
        }
    }
    let (status, body) = into_parts(
        http.get(format!("{}/console/app.js", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.to_string().contains("/console/app.js"), "{body}");
}

/// Five CRM customers, three of them gold; "Gold" evaluated once (3 members); an empty export
/// dataset. Returns (the Gold definition's id, the export dataset's id).
async fn populate(caller: &Caller) -> (String, String) {
    let crm_schema = json!({"crm": {"type": "object", "properties": {"tier": {"type": "string"}}}});
    let crm = caller
        .create_dataset_with_groups("CRM", "profile", &["profile-personal-details"], crm_schema)
        .await;
    let customer = |n: u32, tier: &str| {
        json!({"_id": format!("crm-{n}"), "identityMap": {"CRMID": [{"id": format!("c{n}"), "primary": true}]},
               "personalEmail": {"address": format!("c{n}@example.com")}, "crm": {"tier": tier}})
    };
    let tiers = ["gold", "silver", "gold", "bronze", "gold"];
    let records: Vec<Value> = (1..).zip(tiers).map(|(n, tier)| customer(n, tier)).collect();
    let batch = caller.ingest_json_lines(&crm, &records).await;
    assert_eq!(batch["status"], "success", "{batch}");
    let definition =
        json!({"name": "Gold", "expression": {"type": "PQL", "format": "pql/text", "value": "crm.tier = \"gold\""}});
    let gold = id_of(
        &caller
            .create_at("/data/core/ups/segment/definitions", &definition)
            .await,
    );
    let job = caller
        .create_at("/data/core/ups/segment/jobs", &json!([{"segmentId": gold}]))
        .await;
    wait_for_job(caller, &format!("/data/core/ups/segment/jobs/{}", id_of(&job))).await;
    let export_dataset = caller.create_dataset("Profile Data Export").await;
    (gold, export_dataset)
}

async fn wait_for_job(caller: &Caller, path: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, job) = caller.get(path).await;
        assert_eq!(status, 200, "{job}");
        if !["NEW", "PROCESSING"].contains(&job["status"].as_str().unwrap()) {
            assert_eq!(job["status"], "SUCCEEDED", "{job}");
            return job;
        }
        assert!(Instant::now() < deadline, "{path} still {}", job["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the sandbox has `count` segment jobs, all ended; returns them, newest first.
async fn wait_for_segment_jobs(caller: &Caller, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, listing) = caller.get("/data/core/ups/segment/jobs").await;
        assert_eq!(status, 200, "{listing}");
        let jobs = listing["children"].as_array().unwrap().clone();
        if jobs.len() == count && jobs.iter().all(|j| j["status"] == "SUCCEEDED") {
            return jobs;
        }
        assert!(Instant::now() < deadline, "segment jobs: {listing}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an inactive nightly schedule (docs/schedules.md) for the schedules page to list.
async fn create_schedule(caller: &Caller) {
    let body = json!({"name": "Nightly segmentation", "type": "batch_segmentation",
                      "properties": {"segments": ["*"]}, "schedule": "0 0 1 * * ?", "state": "inactive"});
    let (status, answer) = caller
        .send_json(reqwest::Method::POST, "/data/core/ups/config/schedules", &body)
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// The sandbox's default merge policy as the form's select holds it: `{"id":..,"version":..}`.
async fn default_policy(caller: &Caller) -> (String, String) {
    let (status, policies) = caller.get("/data/core/ups/config/mergePolicies").await;
    assert_eq!(status, 200, "{policies}");
    let policy = policies["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["default"] == true)
        .expect("every sandbox has a default policy")
        .clone();
    let id = policy["id"].as_str().unwrap().to_owned();
    let option = format!(r#"{{"id":"{id}","version":{}}}"#, policy["version"]);
    (id, option)
}

/// A browser session on a running chromedriver, and where its screenshots go.
struct Browser {
    client: webdriver::Session,
    screenshots: Option<PathBuf>,
}

impl Browser {
    async fn open(driver: &dossier_testkit::chromium::ChromeDriver, downloads: &Path) -> Browser {
        let options = json!({
            "binary": driver.chromium,
            // Root in a container has no user namespace for Chromium's sandbox.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,820", "--hide-scrollbars"],
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
        });
        let capabilities = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let client = webdriver::Session::start(&driver.url(), capabilities)
            .await
            .unwrap_or_else(|e| panic!("no browser session ({e}); chromedriver's log: {}", driver.log.display()));
        let screenshots = std::env::var_os("DOSSIER_CONSOLE_SCREENSHOTS").map(PathBuf::from);
        Browser { client, screenshots }
    }

    /// The first element matching `css`, waiting for the page to draw it.
    async fn find(&self, css: &str) -> webdriver::Element<'_> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.client.find(css).await {
                Ok(element) => return element,
                Err(e) if Instant::now() > deadline => panic!("no '{css}' on the page: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Waits until the text of `css` satisfies `done`; returns it.
    async fn text_until(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(css).await {
                last = element.text().await.unwrap_or_default();
                if done(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("'{css}' never showed what was expected; it last read: {last:?}");
    }

    /// Chooses the option of the select `css` whose value is `value` (a JSON text here, so
    /// not a CSS attribute selector), as a user's choice does: `change` and `input` fire.
    async fn select_by_value(&self, css: &str, value: &str) {
        let script = format!(
            "const s = document.querySelector({css}); s.value = {value}; \
             s.dispatchEvent(new Event('input', {{bubbles: true}})); s.dispatchEvent(new Event('change', {{bubbles: true}})); \
             return s.value;",
            css = Value::from(css),
            value = Value::from(value),
        );
        let chosen = self.client.execute(&script).await.unwrap();
        assert_eq!(chosen, value, "{css} has no option {value}");
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.screenshots else { return };
        std::fs::create_dir_all(dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits for the browser to finish writing `name` into `dir` (Chromium writes `.crdownload` first).
async fn downloaded(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let partial = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"))
            })
            .unwrap_or(false);
        if path.is_file() && !partial {
            return std::fs::read(&path).unwrap();
        }
        assert!(Instant::now() < deadline, "{} was never downloaded", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `crm.tier` of every row of a Parquet file.
fn tiers_in(parquet_bytes: Vec<u8>) -> Vec<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet_bytes))
        .expect("the download is a Parquet file")
        .build()
        .unwrap();
    let mut tiers = Vec::new();
    for rows in reader.map(Result::unwrap) {
        let crm = rows.column_by_name("crm").expect("a crm column").as_struct();
        let tier = crm.column_by_name("tier").unwrap().as_string::<i32>();
        tiers.extend(tier.iter().map(|t| t.unwrap_or("").to_owned()));
    }
    tiers
}

#[tokio::test]
async fn a_user_signs_in_exports_through_the_form_and_downloads_the_file() {
    let Some(driver) = dossier_testkit::chromium::driver() else {
        return;
    };
    let server = TestServer::start().await;
    let caller = server.caller(ORG, "prod").await;
    let (gold, export_dataset) = populate(&caller).await;
    let (_, policy_option) = default_policy(&caller).await;
    create_schedule(&caller).await;
    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver, downloads.path()).await;
    let credentials = &caller.credentials;

    // Sign in: a wrong secret is refused with IMS's reason, the right one lands on the datasets.
    browser.client.goto(&format!("{}/console/", server.base)).await.unwrap();
    browser.type_into("#sign-in-clientId", &credentials.client_id).await;
    browser.type_into("#sign-in-clientSecret", "not-the-secret").await;
    browser.type_into("#sign-in-org", &credentials.org).await;
    browser.click("#sign-in-button").await;
    browser
        .text_until("#sign-in-error", |t| t.contains("wrong client_secret"))
        .await;
    browser.screenshot("sign-in").await;
    browser.type_into("#sign-in-clientSecret", &credentials.secret).await;
    browser.click("#sign-in-button").await;
    let datasets = browser.text_until("#datasets-table", |t| t.contains("CRM")).await;
    assert!(
        datasets.contains("Profile Data Export") && datasets.contains(&export_dataset),
        "{datasets}"
    );
    browser.screenshot("datasets").await;

    // A dataset's batches.
    browser.client.find_link("CRM").await.unwrap().click().await.unwrap();
    browser
        .text_until("#batches-table", |t| t.contains("SUCCESS") && t.contains('5'))
        .await;
    browser.screenshot("batches").await;
    browser.click("#batches-table a").await;
    browser.find("table[id^=files-] button.download").await;

    // Segment definitions with the count of their latest evaluation.
    browser.click("#nav a[data-page=segments]").await;
    let count = format!("#segments-table tr[data-segment='{gold}'] .segment-count");
    browser.text_until(&count, |t| t == "3").await;
    browser.screenshot("segments").await;
    // "Evaluate" queues a segment job for the definition; the page shows its count when it ends.
    browser
        .click(&format!("#segments-table tr[data-segment='{gold}'] button"))
        .await;
    let evaluations = wait_for_segment_jobs(&caller, 2).await;
    let evaluated = format!("#segments-table tr[data-segment='{gold}']");
    let at = evaluations[0]["metrics"]["totalTime"]["startTimeInMs"]
        .as_i64()
        .unwrap();
    let shown_at = jiff::Timestamp::from_millisecond(at)
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%SZ")
        .to_string();
    browser.text_until(&evaluated, |t| t.contains(&shown_at)).await;
    browser.text_until(&count, |t| t == "3").await;

    // Schedules: the one created above, listed.
    browser.click("#nav a[data-page=schedules]").await;
    browser
        .text_until("#schedules-table", |t| {
            t.contains("Nightly segmentation") && t.contains("0 0 1 * * ?")
        })
        .await;
    browser.screenshot("schedules").await;

    // The form, and the JSON it shows before sending.
    browser.click("#nav a[data-page=new-export]").await;
    browser.find("#export-form").await;
    browser
        .click(&format!("#export-dataset option[value='{export_dataset}']"))
        .await;
    // A refusal shows the server's code and message, and nothing is created.
    browser.type_into("#export-fields", "crm.points").await;
    browser.click("#export-submit").await;
    browser
        .text_until("#export-error", |t| {
            t.starts_with("DOSSIER-EXPORTJOB-FIELDS-UNKNOWN-400") && t.contains("crm.points")
        })
        .await;
    browser.type_into("#export-fields", "crm.tier, identityMap").await;
    browser.click(&format!("input[name=segment][value='{gold}']")).await;
    let policy: Value = serde_json::from_str(&policy_option).unwrap();
    browser.select_by_value("#export-merge-policy", &policy_option).await;
    let expected = json!({
        "fields": "crm.tier, identityMap",
        "mergePolicy": policy,
        "filter": {"segments": [{"segmentId": gold, "segmentNs": "ups", "status": ["realized", "existing"]}],
                   "emptyProfiles": false},
        "destination": {"datasetId": export_dataset},
        "schema": {"name": "_xdm.context.profile"},
    });
    let shown = browser
        .text_until("#export-json", |t| {
            serde_json::from_str::<Value>(t).is_ok_and(|v| v == expected)
        })
        .await;
    assert!(shown.contains("\"segmentId\""), "{shown}");
    browser.screenshot("new-export").await;
    browser.click("#export-submit").await;

    // The job page follows the job to SUCCEEDED by itself, then lists its files.
    let status = browser.text_until("#job-status", |t| !t.is_empty()).await;
    let url = browser.client.current_url().await.unwrap();
    let job_id = url.split_once("#/jobs/").expect("the job's page").1.to_owned();
    browser.text_until("#job-status", |t| t == "SUCCEEDED").await;
    let job = wait_for_job(&caller, &format!("{JOBS}/{job_id}")).await;
    assert_eq!(job["filter"]["segments"][0]["segmentId"], gold.as_str(), "{job}");
    assert_eq!(job["metrics"]["totalExportedProfileCounter"], 3, "{job}");
    browser
        .text_until("#job-exported", |t| t.starts_with("3 profiles"))
        .await;
    eprintln!("the job page first showed {status}, then SUCCEEDED without a reload");
    let button = browser.find("#job-files button.download").await;
    let name = button.attribute("data-name").await.unwrap().expect("the file's name");
    browser.screenshot("job").await;

    // The download: fetched with the auth headers, saved by the browser, read as Parquet.
    button.click().await.unwrap();
    browser
        .text_until("#download-status", |t| t.starts_with("Downloaded"))
        .await;
    let bytes = downloaded(downloads.path(), &name).await;
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "{name} is not Parquet"
    );
    assert_eq!(tiers_in(bytes), ["gold", "gold", "gold"]);

    // The jobs list shows it too; signing out forgets the token.
    browser.click("#nav a[data-page=jobs]").await;
    let row = format!("#jobs-table tr[data-job='{job_id}']");
    browser
        .text_until(&row, |t| t.contains("SUCCEEDED") && t.contains("100%"))
        .await;
    browser.screenshot("jobs").await;
    // The list refreshes by itself: a job created elsewhere (here by curl's way) appears in it.
    let body = json!({"destination": {"datasetId": export_dataset}, "schema": {"name": "_xdm.context.profile"}});
    let second = caller.create_at(JOBS, &body).await;
    let row = format!("#jobs-table tr[data-job='{}']", second["id"]);
    browser.text_until(&row, |t| t.contains("SUCCEEDED")).await;
    // A job that does not exist says so, naming it.
    let missing = format!("{}/console/#/jobs/999", server.base);
    browser.client.goto(&missing).await.unwrap();
    browser.text_until("#poll-error", |t| t.contains("999")).await;
    browser.click("#sign-out").await;
    browser.find("#sign-in").await;
    let kept = browser
        .client
        .execute("return sessionStorage.getItem('dossier.session')")
        .await
        .unwrap();
    assert_eq!(kept, Value::Null);
    browser.client.close().await.unwrap();

    // What the browser did went through the API as any client: the export is there for curl too.
    let (status, listing) = caller.get(&format!("{JOBS}?limit=5")).await;
    assert_eq!(status, 200);
    assert_eq!(listing["records"].as_array().unwrap().len(), 2, "{listing}");
}
