//! What the results say: [`compare`] (cells, ranks, bootstrap intervals, paired-by-seed
//! statistics, comparison.md / .csv) and [`plot`] (the figures).

pub mod compare;
pub mod plot;
