//! Segment evaluation: PQL definitions evaluated over merged profiles with arrow compute
//! kernels (no query engine; decide.rs is the seam where the cluster's DataFusion plans take
//! the decision instead), the `ups` membership store with realized / existing / exited
//! statuses, and the overlay that shows evaluated memberships on exported and looked-up
//! profiles. See docs/segments.md "Evaluation".

pub mod compile;
pub mod decide;
pub mod evaluate;
pub mod member_index;
pub mod memberships;
pub mod window;

pub use decide::{Decide, EventRows, NativeDecide, PartitionInputs};
pub use evaluate::{
    Evaluation, Run, SegmentError, evaluate_segments, evaluate_segments_deciding, evaluate_segments_with, next_entry,
    remove_files,
};
pub use memberships::{Entry, MembershipOverlay, Status, entries_of_profile, overlay_entries};
