//! CPython's `random.Random`, exactly (docs/SPEC.md §5): MT19937 seeded like
//! `random.seed(int)`, `random()`, `gauss()` with its cached second value, `getrandbits`,
//! `randbelow`, `shuffle` and single-draw weighted `choices`. Every draw consumes the stream
//! in the same order as CPython, so a seed gives the original program's shuffle, weights and
//! samples.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The full generator state; `Clone` snapshots it (used to resume a stream).
#[derive(Clone, Debug, PartialEq)]
pub struct Rng {
    mt: [u32; N],
    index: usize,
    gauss_next: Option<f64>,
}

impl Rng {
    /// `random.seed(seed)` for a non-negative integer: the integer's 32-bit words, least
    /// significant first, fed to `init_by_array`.
    pub fn new(seed: u64) -> Self {
        let words: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut rng = Rng {
            mt: [0; N],
            index: N,
            gauss_next: None,
        };
        rng.init_by_array(&words);
        rng
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        for k in 0..N {
            let y = (self.mt[k] & UPPER_MASK) | (self.mt[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// One tempered 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `random.random()`: 53 random bits in [0, 1).
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `random.gauss(mu, sigma)` (Box-Muller, caching the second value).
    pub fn gauss(&mut self, mu: f64, sigma: f64) -> f64 {
        let z = match self.gauss_next.take() {
            Some(z) => z,
            None => {
                let x2pi = self.random() * std::f64::consts::TAU;
                let g2rad = (-2.0 * (1.0 - self.random()).ln()).sqrt();
                self.gauss_next = Some(x2pi.sin() * g2rad);
                x2pi.cos() * g2rad
            }
        };
        mu + z * sigma
    }

    /// `random.getrandbits(k)` for `0 < k <= 32`.
    pub fn getrandbits(&mut self, k: u32) -> u32 {
        assert!((1..=32).contains(&k), "getrandbits takes 1..=32 bits");
        self.next_u32() >> (32 - k)
    }

    /// `random._randbelow(n)`: rejection sampling on `bit_length(n)` bits, `n > 0`.
    pub fn randbelow(&mut self, n: u32) -> u32 {
        assert!(n > 0, "randbelow needs n > 0");
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(x)` (Fisher-Yates from the back).
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u32 + 1) as usize;
            x.swap(i, j);
        }
    }

    /// `random.choices(range(len(weights)), weights=weights)[0]`: one weighted index.
    /// The weights must have a positive, finite sum (the caller's softmax guarantees it).
    pub fn choice_weighted(&mut self, weights: &[f64]) -> usize {
        let mut total = 0.0;
        let mut last = 0.0;
        // Python builds cum_weights = accumulate(weights); we only need its last entry first.
        for &w in weights {
            total += w;
            last = total;
        }
        let u = self.random() * (last + 0.0);
        // bisect_right(cum, u, 0, len - 1): first index whose running sum exceeds u.
        let hi = weights.len() - 1;
        let mut cum = 0.0;
        for (i, &w) in weights[..hi].iter().enumerate() {
            cum += w;
            if u < cum {
                return i;
            }
        }
        hi
    }
}

/// SplitMix64's output function: a cheap, well-mixed hash of `x`, for draws that must be a
/// pure function of their index (stream windows) rather than a position in a stream.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
