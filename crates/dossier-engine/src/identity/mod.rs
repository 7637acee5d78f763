//! The identity graph: identities that appear together in a fragment are linked; the linked
//! identities form components, and under the `pdg` merge policy a component is one profile.

pub mod extract;
pub mod union_find;

pub use extract::{FragmentIdentities, fragment_identities};
pub use union_find::{Identity, IdentityGraph};
