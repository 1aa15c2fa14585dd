//! Width rules shared by the cost model and the evaluator: the channel split of MixConv and
//! grouped 1x1 convs, and the width-multiplier rounding. These are the only implementations;
//! everything that needs a split calls these, so counts and weight shapes cannot disagree.

use serde::{Deserialize, Serialize};

/// How a MixConv divides its channels among the kernel groups; see [`split_channels`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    #[default]
    Equal,
    Exponential,
}

/// Equal split of `channels` into `groups` contiguous slices; the whole remainder goes to the
/// first group (TF `_split_channels`, timm `_split_channels`). `split(10, 3) == [4, 3, 3]`.
pub fn split_equal(channels: usize, groups: usize) -> Vec<usize> {
    assert!(groups > 0, "split into zero groups");
    let base = channels / groups;
    let mut out = vec![base; groups];
    out[0] += channels - base * groups;
    out
}

/// Exponential split (MixConv paper ablation): group `i` gets `floor(C / 2^(i+1))` channels and
/// the last group takes what is left, so 32 over 4 gives `[16, 8, 4, 4]`.
pub fn split_exponential(channels: usize, groups: usize) -> Vec<usize> {
    assert!(groups > 0, "split into zero groups");
    let mut out: Vec<usize> = (0..groups - 1).map(|i| channels >> (i + 1)).collect();
    out.push(channels - out.iter().sum::<usize>());
    out
}

/// Split by the given partition rule.
pub fn split_channels(channels: usize, groups: usize, partition: Partition) -> Vec<usize> {
    match partition {
        Partition::Equal => split_equal(channels, groups),
        Partition::Exponential => split_exponential(channels, groups),
    }
}

/// Width-multiplier rounding (TF `round_filters`, timm `round_channels` with divisor 8):
/// scale, round to the nearest multiple of 8 (at least 8), and add 8 if that lost over 10%.
pub fn round_filters(filters: usize, multiplier: f64) -> usize {
    if multiplier == 1.0 {
        return filters;
    }
    make_divisible(filters as f64 * multiplier)
}

/// `value` to the nearest multiple of 8 (at least 8), plus 8 if that lost over 10% (timm
/// `make_divisible` with its defaults, which timm also applies to expanded widths).
pub fn make_divisible(value: f64) -> usize {
    let mut rounded = (((value + 4.0).floor() as usize) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * value {
        rounded += 8;
    }
    rounded
}

/// Squeeze-excitation width: `max(1, floor(block_in * ratio))`, from the block's *input* width.
pub fn se_channels(block_in: usize, ratio: f64) -> usize {
    // The small epsilon keeps ratios such as 0.1 * 30 from flooring to 2 through rounding.
    ((block_in as f64 * ratio + 1e-9).floor() as usize).max(1)
}

/// Output size of a conv along one axis; both padding conventions give `ceil(in / stride)` for
/// odd kernels.
pub fn conv_out(size: usize, stride: usize) -> usize {
    size.div_ceil(stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rule_gives_remainder_to_first_group() {
        assert_eq!(split_equal(10, 3), vec![4, 3, 3]);
        assert_eq!(split_equal(144, 3), vec![48, 48, 48]);
        assert_eq!(split_equal(720, 5), vec![144; 5]);
        assert_eq!(split_equal(7, 1), vec![7]);
    }

    #[test]
    fn exponential_split_halves_then_fills_the_last() {
        assert_eq!(split_exponential(32, 4), vec![16, 8, 4, 4]);
        assert_eq!(split_exponential(32, 2), vec![16, 16]);
        assert_eq!(split_exponential(32, 1), vec![32]);
    }

    #[test]
    fn width_rounding_matches_mixnet_l() {
        let pairs = [(16, 24), (24, 32), (32, 40), (40, 56), (80, 104), (120, 160), (200, 264)];
        for (f, want) in pairs {
            assert_eq!(round_filters(f, 1.3), want, "round_filters({f}, 1.3)");
        }
        assert_eq!(round_filters(1536, 1.0), 1536);
    }

    #[test]
    fn se_width_comes_from_block_input() {
        assert_eq!(se_channels(24, 0.5), 12);
        assert_eq!(se_channels(200, 0.5), 100);
        assert_eq!(se_channels(264, 0.5), 132);
        assert_eq!(se_channels(3, 0.25), 1);
    }
}
