//! Architectures small enough to build, time and train in a test.

use std::path::PathBuf;

use space::{Activation, Arch, Block, Head, Partition, Stem};

/// The first `blocks` blocks of MixNet-S with a 64-wide head: real layers, seconds an epoch.
pub fn mixnet_s_prefix(blocks: usize) -> Arch {
    let mut arch = space::presets::mixnet_s();
    arch.blocks.truncate(blocks);
    arch.head.width = 64;
    arch
}

/// A hand-built network named "tiny": an 8-channel stem, a plain k3 block and a strided k3/k5
/// MixConv block with SE to 16 channels, a 32-wide head. Small enough to time at 32x32.
pub fn two_block_net() -> Arch {
    let block = |in_ch, out, stride, expand, kernels: &[usize], se, act| Block {
        in_ch,
        out,
        stride,
        expand,
        kernels: kernels.to_vec(),
        partition: Partition::Equal,
        dilated: false,
        expand_groups: 1,
        project_groups: 1,
        se,
        act,
        skip: true,
    };
    Arch {
        name: Some("tiny".into()),
        stem: Stem { in_ch: 3, out: 8, kernel: 3, stride: 2 },
        blocks: vec![
            block(8, 8, 1, 1, &[3], None, Activation::Relu),
            block(8, 16, 2, 3, &[3, 5], Some(0.5), Activation::Swish),
        ],
        head: Head { width: 32 },
        classes: 10,
        ..space::presets::mixnet_s()
    }
}

/// Writes `arch` as JSON to `path` (for `--arch PATH`) and returns the path.
pub fn write_json(arch: &Arch, path: PathBuf) -> PathBuf {
    std::fs::write(&path, arch.to_json()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_architectures_are_valid() {
        for arch in [mixnet_s_prefix(4), mixnet_s_prefix(2), two_block_net()] {
            space::validate::validate(&arch).unwrap();
        }
        assert_eq!(mixnet_s_prefix(4).blocks.len(), 4);
    }

    #[test]
    fn the_written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_json(&two_block_net(), dir.path().join("tiny.json"));
        let back = space::parse_arch(&std::fs::read(&path).unwrap(), "tiny.json").unwrap();
        assert_eq!(back, two_block_net());
    }
}
