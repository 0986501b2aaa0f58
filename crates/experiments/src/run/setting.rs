//! The run settings results are told apart by, declared once: each one's name (its flag, its
//! key in config and sweep files, its results.csv column), which methods read it, and whether
//! the models of a cohort must share it. Everything else asks here: the method (which of its
//! settings a run reads, and so `not_applicable` in results.csv and the exit-2 check of an
//! unread flag), `compare` (cells are split by these settings, in this order), a sweep's
//! `[grid]` (an axis multiplies the runs of the methods that read it) and cohorts (models of one
//! stack agree on the shared ones). How a value is parsed is its field's type in `Settings`
//! (config.rs); a test there holds the two together.

/// Which methods read a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBy {
    /// Every method.
    Every,
    /// Only methods with a selection over the pool, as `Method::reads` says (a baseline's
    /// result does not depend on it: one baseline run serves every value).
    Selection,
    /// Every method, on this data set only (its generator's arguments): rows of other data
    /// sets leave it out of their identity and their cells.
    Dataset(&'static str),
}

/// Whether the models of a cohort (one stack) must agree on a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InCohort {
    /// They share batches, epochs and evaluation passes.
    Shared,
    /// Each model has its own.
    PerModel,
}

/// One setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub read_by: ReadBy,
    pub cohort: InCohort,
}

const fn setting(name: &'static str, read_by: ReadBy, cohort: InCohort) -> Setting {
    Setting {
        name,
        read_by,
        cohort,
    }
}

use InCohort::{PerModel, Shared};
use ReadBy::{Dataset, Every, Selection};

/// Every setting, in the order reports name them.
pub const SETTINGS: [Setting; 15] = [
    setting("dataset", Every, Shared),
    setting("mnist1d", Dataset("mnist1d"), Shared),
    setting("preset", Every, PerModel),
    setting("epochs", Every, Shared),
    setting("phase1_epochs", Selection, PerModel),
    setting("lr", Every, PerModel),
    setting("batch_size", Every, Shared),
    setting("tau", Selection, PerModel),
    setting("clamp", Selection, PerModel),
    setting("grad_clip", Every, PerModel),
    setting("phase2_init", Selection, PerModel),
    setting("loss", Every, Shared),
    setting("eval_selection", Selection, Shared),
    setting("pool", Selection, PerModel),
    setting("split_seed", Every, Shared),
];

/// Every setting's name, in report order.
pub fn names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s| s.name)
}

/// The settings only selection methods read, in report order.
pub fn selection_settings() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .filter(|s| s.read_by == Selection)
        .map(|s| s.name)
}

/// The settings every model of a cohort must share, in report order.
pub fn cohort_shared() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .filter(|s| s.cohort == Shared)
        .map(|s| s.name)
}

/// Whether runs on the data set named `dataset` read the setting `name` (every declared
/// setting but one data set's own).
pub fn read_on(name: &str, dataset: &str) -> bool {
    SETTINGS.iter().any(|s| {
        s.name == name
            && match s.read_by {
                Dataset(own) => own == dataset,
                Every | Selection => true,
            }
    })
}

/// Whether `name` is a declared setting only selection methods read.
pub fn selection_only(name: &str) -> bool {
    SETTINGS
        .iter()
        .any(|s| s.name == name && s.read_by == Selection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_lists_and_no_name_twice() {
        let mut sorted: Vec<&str> = names().collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), SETTINGS.len());
        assert_eq!(
            selection_settings().collect::<Vec<_>>(),
            [
                "phase1_epochs",
                "tau",
                "clamp",
                "phase2_init",
                "eval_selection",
                "pool"
            ]
        );
        assert_eq!(
            cohort_shared().collect::<Vec<_>>(),
            [
                "dataset",
                "mnist1d",
                "epochs",
                "batch_size",
                "loss",
                "eval_selection",
                "split_seed"
            ]
        );
        assert!(selection_only("tau") && !selection_only("lr") && !selection_only("nonsense"));
        assert!(read_on("mnist1d", "mnist1d") && !read_on("mnist1d", "mnist"));
        assert!(read_on("lr", "mnist") && !read_on("nonsense", "mnist"));
    }
}
