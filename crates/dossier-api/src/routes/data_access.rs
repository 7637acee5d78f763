//! Data Access: `/data/foundation/export` — listing and downloading the files of committed batches.
//!
//! Only batches in `success` have readable data files; any other batch, and any file of one,
//! answers 404 exactly as an id that never existed. Downloads stream from the lake with `Range`
//! support, so a client can resume with sequential ranges.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HOST, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange};
use serde_json::{Value, json};

use dossier_model::catalog::BatchStatus;
use dossier_model::ids::{BatchId, DatasetId};
use dossier_model::listing::{ListQuery, PageSize, next_offset};
use dossier_storage::meta::{BatchFile, FileKind};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::QueryParams;
use crate::state::AppState;

const PREFIX: &str = "/data/foundation/export";
const PREVIEW_ROWS: usize = 100;

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "DAS-404",
        format!("{what} not found: no readable {what} '{id}' in this sandbox."),
    )
}

/// The absolute base URL the caller used, for `_links`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}{PREFIX}")
}

fn file_listing_entry(base: &str, file: &BatchFile) -> Value {
    json!({
        "dataSetFileId": file.file_id,
        "dataSetViewId": file.dataset_id,
        "version": "1.0.0",
        "created": file.created.to_string(),
        "updated": file.created.to_string(),
        "isValid": true,
        "records": file.records,
        "size": file.size,
        "_links": { "self": { "href": format!("{base}/files/{}", file.file_id) } },
    })
}

/// A batch's files are listed 100 at a time unless `limit` asks for fewer.
const FILES_PAGE: PageSize = PageSize { default: 100, max: 100 };

/// Lists the data files of a committed batch.
#[utoipa::path(get, path = "/batches/{batchId}/files", tag = "data access",
    params(("batchId" = String, Path), ("start" = Option<u64>, Query), ("limit" = Option<u32>, Query, description = "1 to 100, default 100")),
    responses((status = 200, description = "{data: [...], _page: {limit, count}, _links}"), (status = 404, description = "No committed batch with this id")))]
pub async fn batch_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(batch_id): Path<String>,
    QueryParams(params): QueryParams,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = BatchId::from_string(batch_id);
    let batch = state
        .meta
        .get_batch(&caller.tenant, &id)
        .await?
        .filter(|b| b.status == BatchStatus::Success);
    let Some(batch) = batch else {
        return Err(not_found("batch", id.as_str()));
    };
    let page = ListQuery::from_params_sized(&params, &["created"], FILES_PAGE)
        .map_err(|e| ApiError::platform_invalid("DAS-QUERY-400", e))?;
    let files = state
        .meta
        .batch_files(&caller.tenant, &batch.id, FileKind::Data)
        .await?;
    let base = base_url(&headers);
    let shown: Vec<Value> = files
        .iter()
        .skip(usize::try_from(page.start).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .map(|f| file_listing_entry(&base, f))
        .collect();
    let mut links = json!({});
    if let Some(next) = next_offset(page.start, shown.len()).filter(|next| *next < files.len() as u64) {
        links["next"] =
            json!({ "href": format!("{base}/batches/{}/files?start={next}&limit={}", batch.id, page.limit) });
    }
    Ok(Json(
        json!({ "data": shown, "_page": { "limit": page.limit, "count": files.len() }, "_links": links }),
    ))
}

async fn readable_file(state: &AppState, caller: &Caller, file_id: &str) -> Result<BatchFile, ApiError> {
    let file = state
        .meta
        .batch_file(&caller.tenant, file_id)
        .await?
        .filter(|f| f.kind == FileKind::Data);
    let Some(file) = file else {
        return Err(not_found("file", file_id));
    };
    let committed = state
        .meta
        .get_batch(&caller.tenant, &file.batch_id)
        .await?
        .is_some_and(|b| b.status == BatchStatus::Success);
    if committed {
        Ok(file)
    } else {
        Err(not_found("file", file_id))
    }
}

/// Describes a file, or with `?path=<name>` downloads it (`Range` supported; `HEAD` for headers).
#[utoipa::path(get, path = "/files/{dataSetFileId}", tag = "data access",
    params(("dataSetFileId" = String, Path), ("path" = Option<String>, Query, description = "The file name: download its bytes")),
    responses((status = 200, description = "The listing, or the file's bytes"), (status = 206, description = "The requested range"), (status = 404, description = "No readable file"), (status = 416, description = "Range outside the file")))]
pub async fn file(
    State(state): State<AppState>,
    caller: Caller,
    Path(file_id): Path<String>,
    QueryParams(params): QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = readable_file(&state, &caller, &file_id).await?;
    let base = base_url(&headers);
    match params.get("path") {
        None => Ok(Json(json!({
            "data": [{
                "name": file.name,
                "length": file.size.to_string(),
                "_links": { "self": { "href": format!("{base}/files/{}?path={}", file.file_id, file.name) } },
            }],
            "_page": { "limit": 100, "count": 1 },
        }))
        .into_response()),
        Some(name) if *name == file.name => download(&state, &file.path, file.size as u64, headers.get(RANGE)).await,
        Some(name) => Err(not_found("file", &format!("{file_id}?path={name}"))),
    }
}

/// Lists (or with `?path=` downloads) the row-error files of an ingestion batch.
#[utoipa::path(get, path = "/batches/{batchId}/failed", tag = "data access",
    params(("batchId" = String, Path), ("path" = Option<String>, Query)),
    responses((status = 200, description = "{data: [{name, length, _links}]}"), (status = 404, description = "No such batch")))]
pub async fn failed_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(batch_id): Path<String>,
    QueryParams(params): QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = BatchId::from_string(batch_id);
    let batch = state
        .meta
        .get_batch(&caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found("batch", id.as_str()))?;
    let files = state
        .meta
        .batch_files(&caller.tenant, &batch.id, FileKind::Failed)
        .await?;
    let base = base_url(&headers);
    match params.get("path") {
        None => {
            let data: Vec<Value> = files
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "length": f.size.to_string(),
                        "records": f.records,
                        "_links": { "self": { "href": format!("{base}/batches/{}/failed?path={}", batch.id, f.name) } },
                    })
                })
                .collect();
            Ok(Json(json!({ "data": data, "_page": { "limit": 100, "count": files.len() } })).into_response())
        }
        Some(name) => {
            let file = files
                .iter()
                .find(|f| &f.name == name)
                .ok_or_else(|| not_found("file", name))?;
            download(&state, &file.path, file.size as u64, headers.get(RANGE)).await
        }
    }
}

/// The first rows of a dataset's committed data.
#[utoipa::path(get, path = "/datasets/{datasetId}/preview", tag = "data access",
    params(("datasetId" = String, Path)), responses((status = 200, description = "{data: [rows]}"), (status = 404, description = "No such dataset")))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(dataset_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = DatasetId::from_string(dataset_id);
    state
        .meta
        .get_dataset(&caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found("dataset", id.as_str()))?;
    let mut locations = Vec::new();
    for batch in state.meta.committed_batches(&caller.tenant, &id).await? {
        for file in state
            .meta
            .batch_files(&caller.tenant, &batch.id, FileKind::Data)
            .await?
        {
            locations.push(ObjectPath::from(file.path));
        }
        if locations.len() >= PREVIEW_ROWS {
            break;
        }
    }
    let rows = dossier_engine::preview::first_rows(&state.lake, &locations, PREVIEW_ROWS)
        .await
        .map_err(|e| {
            ApiError::platform(
                StatusCode::INTERNAL_SERVER_ERROR,
                "DAS-PREVIEW-500",
                format!("The dataset's files could not be read: {e}"),
            )
        })?;
    Ok(Json(json!({ "data": rows })))
}

/// A `Range` header this server honours: one range of bytes.
fn parse_range(header: &HeaderValue, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Ok(text) = header.to_str() else { return Ok(None) };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges in one request: answering the whole file is allowed and simpler.
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (from, "") => (from.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (from, to) => (
            from.parse().map_err(|_| ())?,
            to.parse::<u64>().map_err(|_| ())?.min(size.saturating_sub(1)),
        ),
    };
    if start > end || start >= size {
        Err(())
    } else {
        Ok(Some((start, end)))
    }
}

async fn download(state: &AppState, path: &str, size: u64, range: Option<&HeaderValue>) -> Result<Response, ApiError> {
    let range = match range.map(|r| parse_range(r, size)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(range))) => Some(range),
        Some(Err(())) => {
            let mut response = ApiError::platform(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "DAS-RANGE-416",
                format!("The range is outside the file of {size} bytes; ask for bytes=START-END with END < {size}."),
            )
            .into_response();
            response.headers_mut().insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(response);
        }
    };
    let options = GetOptions {
        range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)),
        ..Default::default()
    };
    let result = state
        .lake
        .store()
        .get_opts(&ObjectPath::from(path), options)
        .await
        .map_err(dossier_storage::StorageError::from)?;
    let body = Body::from_stream(dossier_storage::Lake::object_bytes(result));
    let (status, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, end - start + 1),
        None => (StatusCode::OK, size),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((start, end)) = range {
        headers.insert(
            CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")).expect("ascii"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(&h("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(&h("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(&h("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(&h("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(&h("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(&h("bytes=9-1"), 100), Err(()));
        assert_eq!(parse_range(&h("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(&h("items=0-1"), 100), Ok(None));
    }
}
