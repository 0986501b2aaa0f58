//! What the results say: [`compare`] (cells, ranks, bootstrap intervals, paired-by-seed
//! statistics, comparison.md / .csv), [`adaptive`] (the adaptive methods paired with every
//! other method, and what each costs), [`stats`] (the bootstrap) and [`plot`] (the figures).

pub mod adaptive;
pub mod compare;
pub mod plot;
pub mod stats;
