//! Class-balanced, seeded sample selection: proxy subsets and the validation hold-out.
//!
//! One rule serves both, and the image-folder loader, which applies it to file lists before
//! decoding: for each class, take its sample indices in order, shuffle them with a stream derived
//! from `(seed, class)`, keep the first `n`, then return all kept indices in ascending order.
//! Each class's pick is thus independent of the others and of how many classes there are.

use super::rng::{derive, SplitMix64};
use super::{DataError, Dataset};

/// Salt that keeps the validation hold-out independent of a subset drawn with the same seed.
const VALIDATION_SALT: u64 = 0x7661_6c69_6461_7465;

/// Up to `n` indices per class, chosen by the module's rule, ascending.
/// A class with fewer than `n` samples contributes all of them.
pub fn select_per_class(labels: &[u32], num_classes: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut picked = Vec::with_capacity(n.saturating_mul(num_classes).min(labels.len()));
    for (class, mut indices) in by_class.into_iter().enumerate() {
        SplitMix64::new(derive(seed, class as u64)).shuffle(&mut indices);
        indices.truncate(n);
        picked.extend(indices);
    }
    picked.sort_unstable();
    picked
}

impl Dataset {
    /// Up to `n` samples of each class, seeded (see the module doc for the rule); a class with
    /// fewer keeps all of its samples.
    pub fn subset_per_class(&self, n: usize, seed: u64) -> Dataset {
        self.select(&select_per_class(self.labels(), self.num_classes(), n, seed))
    }

    /// Holds out exactly `per_class` samples of every class as a validation set and returns
    /// `(train, validation)`, which are disjoint. Fails if a class would be left with no
    /// training sample. The test split stays untouched for final evaluation.
    pub fn split_validation(&self, per_class: usize, seed: u64) -> Result<(Dataset, Dataset), DataError> {
        for (class, &have) in self.class_counts().iter().enumerate() {
            if have <= per_class {
                let class = self.classes()[class].clone();
                return Err(DataError::TooFew { class, have, want: per_class, purpose: "a validation hold-out" });
            }
        }
        let val = select_per_class(self.labels(), self.num_classes(), per_class, seed ^ VALIDATION_SALT);
        let mut in_val = vec![false; self.len()];
        for &i in &val {
            in_val[i] = true;
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !in_val[i]).collect();
        Ok((self.select(&train), self.select(&val)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Shape;

    /// 3 classes with 10, 20 and 30 samples; pixel value = sample index, so picks are traceable.
    fn ramp() -> Dataset {
        let labels: Vec<u32> = (0..60)
            .map(|i| {
                if i < 10 {
                    0
                } else if i < 30 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let classes: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        Dataset::new((0..60).collect(), labels, classes, Shape::new(1, 1, 1))
    }

    #[test]
    fn subset_is_balanced_seeded_and_sorted() {
        let d = ramp();
        let a = d.subset_per_class(5, 1);
        assert_eq!(a.class_counts(), vec![5, 5, 5]);
        assert_eq!(a, d.subset_per_class(5, 1));
        assert_ne!(a, d.subset_per_class(5, 2));
        assert!(a.pixels().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(d.subset_per_class(15, 1).class_counts(), vec![10, 15, 15]);
    }

    #[test]
    fn validation_is_balanced_disjoint_and_seeded() {
        let d = ramp();
        let (train, val) = d.split_validation(4, 9).unwrap();
        assert_eq!(val.class_counts(), vec![4, 4, 4]);
        assert_eq!(train.class_counts(), vec![6, 16, 26]);
        let mut all: Vec<u8> = train.pixels().iter().chain(val.pixels()).copied().collect();
        all.sort();
        assert_eq!(all, (0..60).collect::<Vec<u8>>());
        assert_eq!(val, d.split_validation(4, 9).unwrap().1);
        assert_ne!(val, d.split_validation(4, 10).unwrap().1);
    }

    #[test]
    fn validation_differs_from_a_subset_with_the_same_seed() {
        let d = ramp();
        assert_ne!(d.split_validation(5, 3).unwrap().1, d.subset_per_class(5, 3));
    }

    #[test]
    fn validation_refuses_to_empty_a_class() {
        let err = ramp().split_validation(10, 0).unwrap_err();
        assert_eq!(err.to_string(), "class `x` has 10 samples, too few to take 10 for a validation hold-out");
    }
}
