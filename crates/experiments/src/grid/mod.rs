//! Many runs: [`sweep`] expands a sweep config (architectures x methods x seeds x `[grid]`
//! axes) and runs its shard of the grid through [`crate::run::train`], resuming where it
//! stopped; [`store`] keeps the results on disk (one atomic row per finished run, under a lock);
//! [`export`] writes TensorBoard event files for sweeps and runs that exist.

pub mod export;
pub mod store;
pub mod sweep;
