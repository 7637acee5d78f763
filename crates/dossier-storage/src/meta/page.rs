//! One page of a listing: the type every backend's listings answer with.

/// One page of a listing and how many rows match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}
