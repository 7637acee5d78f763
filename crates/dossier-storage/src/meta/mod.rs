//! The metadata store: SQL tables behind typed functions.

mod sqlite;

pub use sqlite::{
    ApiClient, BATCH_SORTABLE, BatchFile, BatchFilter, BatchOutcome, BatchUpload, DATASET_SORTABLE, DatasetDeletion,
    DatasetFilter, ExportCancellation, ExportJobCreation, ExportJobListing, FileKind, IdempotencyKey,
    IdentityGraphVersion, IdentityGraphWriteGuard, IssuedClient, MembershipFile, MergePolicyPage,
    MergePolicyWriteError, MetaStore, NewExportJob, NewSegmentJob, Page, PerSandbox, SegmentDefinitionPage,
    SegmentDefinitionWriteError, SegmentJobCreation, UploadRecording,
};
