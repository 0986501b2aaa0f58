//! The draws of NumPy's legacy global `RandomState` that the MNIST-1D generator makes, on the
//! reference Mersenne Twister (`rand_mt`), so that a seed gives the package's numbers:
//! `np.random.seed(int)`, `rand()`, `randn(n)` (polar Box-Muller with its cached second value),
//! `choice(n)` / `randint(0, n)` (masked rejection on 32-bit draws) and `permutation(n)`
//! (Fisher-Yates from the end, `random_interval`). Each follows NumPy's C code
//! (`numpy/random/src/legacy/legacy-distributions.c`, `distributions.c`, `mtrand.pyx`).

use rand_mt::Mt;

/// NumPy's legacy `RandomState`, as far as the generator uses it.
pub struct RandomState {
    mt: Mt,
    /// The second value of the last polar Box-Muller pair, if not yet returned.
    cached_gauss: Option<f64>,
}

impl RandomState {
    /// `np.random.seed(seed)` for an integer seed: the reference `init_genrand`.
    pub fn new(seed: u32) -> Self {
        Self {
            mt: Mt::new(seed),
            cached_gauss: None,
        }
    }

    /// `rand()`: 53 random bits in [0, 1) (`genrand_res53`).
    pub fn rand(&mut self) -> f64 {
        let a = self.mt.next_u32() >> 5;
        let b = self.mt.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// One standard normal value: the polar method's pair, the second kept for the next call.
    pub fn gauss(&mut self) -> f64 {
        if let Some(g) = self.cached_gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.rand() - 1.0;
            let x2 = 2.0 * self.rand() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `randn(n)`.
    pub fn randn(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.gauss()).collect()
    }

    /// A uniform integer in `0..=max` by masked rejection on 32-bit draws (NumPy's
    /// `random_interval` and its legacy bounded integers for ranges below 2^32).
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let value = self.mt.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `randint(0, n)` and `choice(n)` (n at least 1 and below 2^32).
    pub fn below(&mut self, n: u32) -> u32 {
        self.interval(n - 1)
    }

    /// `permutation(n)`: `arange(n)` shuffled from the last element down.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(u32::try_from(i).expect("permutation of at most 2^32 items"));
            order.swap(i, j as usize);
        }
        order
    }
}
