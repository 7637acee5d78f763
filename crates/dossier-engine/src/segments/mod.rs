//! Segment evaluation: PQL definitions evaluated over merged profiles with arrow compute
//! kernels (no query engine), the `ups` membership store with realized / existing / exited
//! statuses, and the overlay that shows evaluated memberships on exported and looked-up
//! profiles. See docs/segments.md "Evaluation".

pub mod compile;
pub mod evaluate;
pub mod memberships;
pub mod window;

pub use evaluate::{Evaluation, SegmentError, evaluate_segments, evaluate_segments_with, next_entry, remove_files};
pub use memberships::{Entry, MembershipOverlay, Status, entries_of_profile, overlay_entries};
