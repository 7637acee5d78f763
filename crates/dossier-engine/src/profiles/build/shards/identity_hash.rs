//! The 128-bit hash by which graph identities and fragments' primary identities meet.

use std::hash::BuildHasher;

/// 128 bits of an identity: two fixed-seed hashes, so that two identities of one export share a
/// hash with a probability of about n²/2¹²⁹ (nil for any real graph).
pub fn identity_hash(namespace: &str, id: &str) -> u128 {
    const LOW: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15);
    const HIGH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0xc2b2_ae3d_27d4_eb4f);
    let low = LOW.hash_one((namespace, id));
    let high = HIGH.hash_one((namespace, id));
    (u128::from(high) << 64) | u128::from(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hashes_tell_namespace_and_id_apart() {
        assert_ne!(identity_hash("Email", "a"), identity_hash("Emaila", ""));
        assert_ne!(identity_hash("Email", "a"), identity_hash("email", "a"));
        assert_eq!(identity_hash("Email", "a"), identity_hash("Email", "a"));
    }
}
