//! The reference code's architectures: hidden widths by id (the output layer is Linear(., 10)).

/// `(id, name, hidden widths)`. Ids 1..=17 follow the reference's table; the reference also
/// defines wide_5layer, shadowed there by a duplicate key, which we keep as id 18.
pub const ARCHITECTURES: [(u32, &str, &[usize]); 18] = [
    (1, "simple_2layer", &[512]),
    (2, "medium_4layer", &[512, 256, 128]),
    (3, "medium_5layer", &[512, 256, 128, 64]),
    (4, "small_3layer", &[256, 128]),
    (5, "medium_5layer_alt", &[512, 256, 256, 128]),
    (6, "wide_2layer", &[768]),
    (7, "wide_3layer", &[768, 512]),
    (8, "wide_4layer", &[768, 512, 512]),
    (9, "wide_6layer", &[768, 512, 512, 256, 256]),
    (10, "wide_7layer", &[768, 512, 512, 256, 256, 128]),
    (11, "wide_8layer", &[768, 512, 512, 256, 256, 128, 128]),
    (12, "wide_9layer", &[768, 512, 512, 256, 256, 128, 128, 64]),
    (
        13,
        "wide_10layer",
        &[768, 512, 512, 256, 256, 128, 128, 64, 64],
    ),
    (
        14,
        "wide_11layer",
        &[768, 512, 512, 256, 256, 128, 128, 64, 64, 32],
    ),
    (
        15,
        "wide_12layer",
        &[768, 512, 512, 256, 256, 128, 128, 64, 64, 32, 32],
    ),
    (
        16,
        "wide_13layer",
        &[768, 512, 512, 256, 256, 128, 128, 64, 64, 32, 32, 16],
    ),
    (
        17,
        "wide_14layer",
        &[768, 512, 512, 256, 256, 128, 128, 64, 64, 32, 32, 16, 16],
    ),
    (18, "wide_5layer", &[768, 512, 512, 256]),
];

/// Name and hidden widths of architecture `id`, if it exists.
pub fn architecture(id: u32) -> Option<(&'static str, &'static [usize])> {
    ARCHITECTURES
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, name, widths)| (*name, *widths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_dense() {
        for (i, (id, _, widths)) in ARCHITECTURES.iter().enumerate() {
            assert_eq!(*id as usize, i + 1);
            assert!(!widths.is_empty());
        }
        assert_eq!(architecture(3).unwrap().1, &[512, 256, 128, 64]);
        assert!(architecture(0).is_none() && architecture(19).is_none());
    }
}
