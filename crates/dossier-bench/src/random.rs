//! Seeded randomness: one independent stream per customer and purpose, the few distributions the
//! generator draws from, and ids that are unique by construction.
//!
//! ChaCha8 is used rather than `StdRng` because rand_chacha promises the same output for the same
//! seed across its releases, while `StdRng` may change algorithm in any rand release: generated
//! files must stay byte-identical for a given seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stream is used for. Each part of a customer draws from its own stream, so changing how
/// events are generated never changes the customer's CRM record, and customer `i` is the same
/// whatever the population size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Persona = 0,
    Crm = 1,
    Loyalty = 2,
    Events = 3,
}

const PURPOSES: u64 = 4;

/// The source of every customer's streams for one seed.
#[derive(Debug, Clone)]
pub struct Streams {
    root: ChaCha8Rng,
}

impl Streams {
    pub fn new(seed: u64) -> Self {
        Self {
            root: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The stream of `customer` for `purpose`: a ChaCha stream of its own (2^64 of them per seed),
    /// so streams never overlap and cost nothing to derive.
    pub fn stream(&self, customer: u64, purpose: Purpose) -> ChaCha8Rng {
        let mut rng = self.root.clone();
        rng.set_stream(customer * PURPOSES + purpose as u64);
        rng
    }
}

/// SplitMix64's finalizer: a bijection on u64 that scatters consecutive inputs, so ids made from
/// it look random yet never collide.
pub fn scramble(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A 64-bit value unique per `index` for a given `seed` and `kind`: xor with a key and a
/// bijection are both one-to-one, so distinct indexes always give distinct values.
pub fn unique_u64(seed: u64, kind: u64, index: u64) -> u64 {
    let key = scramble(seed ^ scramble(kind));
    scramble(index ^ key)
}

/// `unique_u64` as 16 lower-case hex digits.
pub fn unique_hex(seed: u64, kind: u64, index: u64) -> String {
    format!("{:016x}", unique_u64(seed, kind, index))
}

/// Picks a value with probability proportional to its weight.
pub fn weighted<T: Copy>(rng: &mut impl Rng, items: &[(T, u32)]) -> T {
    *weighted_ref(rng, items)
}

/// Picks an item with probability proportional to its weight, by reference.
pub fn weighted_ref<'a, T>(rng: &mut impl Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut ticket = rng.random_range(0..total);
    for (item, weight) in items {
        if ticket < *weight {
            return item;
        }
        ticket -= weight;
    }
    unreachable!("the ticket is below the total weight")
}

/// Picks one value uniformly.
pub fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    *pick_ref(rng, items)
}

/// Picks one item uniformly, by reference.
pub fn pick_ref<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A standard normal draw (Box–Muller); one of the pair is thrown away to keep each draw
/// independent of call order.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1], so ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal draw with the given mean: `mean * exp(sigma * Z - sigma^2 / 2)`, whose
/// expectation is exactly `mean` while its median sits well below it (a long right tail).
pub fn log_normal_with_mean(rng: &mut impl Rng, mean: f64, sigma: f64) -> f64 {
    mean * (sigma * standard_normal(rng) - sigma * sigma / 2.0).exp()
}

/// A Poisson draw. Knuth's product method for small means; above 30 the normal approximation,
/// which is accurate there and keeps the cost constant for the rare very active customer.
pub fn poisson(rng: &mut impl Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let draw = mean + mean.sqrt() * standard_normal(rng);
        return draw.round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut count = 0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_only_on_seed_customer_and_purpose() {
        let a = Streams::new(7);
        let b = Streams::new(7);
        let draw = |s: &Streams, c, p| s.stream(c, p).random::<u64>();
        assert_eq!(draw(&a, 3, Purpose::Crm), draw(&b, 3, Purpose::Crm));
        assert_ne!(draw(&a, 3, Purpose::Crm), draw(&a, 3, Purpose::Loyalty));
        assert_ne!(draw(&a, 3, Purpose::Crm), draw(&a, 4, Purpose::Crm));
        assert_ne!(draw(&a, 3, Purpose::Crm), draw(&Streams::new(8), 3, Purpose::Crm));
    }

    #[test]
    fn unique_ids_never_collide() {
        let ids: std::collections::HashSet<u64> = (0..100_000).map(|i| unique_u64(42, 1, i)).collect();
        assert_eq!(ids.len(), 100_000);
        assert_ne!(unique_u64(42, 1, 0), unique_u64(42, 2, 0));
    }

    #[test]
    fn distributions_have_their_means() {
        let mut rng = Streams::new(1).stream(0, Purpose::Events);
        let n = 200_000;
        let poisson_mean = (0..n).map(|_| poisson(&mut rng, 4.0) as f64).sum::<f64>() / n as f64;
        assert!((poisson_mean - 4.0).abs() < 0.05, "{poisson_mean}");
        let large = (0..n).map(|_| poisson(&mut rng, 80.0) as f64).sum::<f64>() / n as f64;
        assert!((large - 80.0).abs() < 0.2, "{large}");
        let log_normal = (0..n).map(|_| log_normal_with_mean(&mut rng, 5.0, 1.0)).sum::<f64>() / n as f64;
        assert!((log_normal - 5.0).abs() < 0.1, "{log_normal}");
    }

    #[test]
    fn weighted_picks_follow_weights() {
        let mut rng = Streams::new(1).stream(0, Purpose::Persona);
        let items = [("a", 3), ("b", 1)];
        let a = (0..40_000).filter(|_| weighted(&mut rng, &items) == "a").count();
        assert!((29_000..31_000).contains(&a), "{a}");
    }
}
