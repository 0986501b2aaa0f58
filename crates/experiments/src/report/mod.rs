//! What the results say: [`compare`] (cells, ranks, bootstrap intervals, paired-by-seed
//! statistics, comparison.md / .csv), [`adaptive`] (the adaptive methods paired with every
//! other method, and what each costs), [`freeze`] (what the switch of a selection method costs,
//! from the epoch logs), [`setting_pairs`] (a varying setting's values paired by seed),
//! [`stats`] (the bootstrap), [`plot`] (the figures of a
//! comparison; [`by_method`]: each method's accuracy and interval per architecture; [`paired`]: SmartMixed
//! minus each method, paired by seed), [`learned`] (the figures of what adaptive methods learned) and [`figure`]
//! (what figures share).

pub mod adaptive;
pub mod by_method;
pub mod compare;
pub mod figure;
pub mod freeze;
pub mod learned;
pub mod paired;
pub mod plot;
pub mod setting_pairs;
pub mod stats;
