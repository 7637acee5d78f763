use dossier_storage::StorageError;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("lake error: {0}")]
    Lake(#[from] object_store::Error),
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Invalid(String),
    /// The job was cancelled while this ran.
    #[error("cancelled")]
    Cancelled,
    #[error("spill file error: {0}")]
    Spill(#[from] std::io::Error),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
