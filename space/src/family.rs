//! Named families of networks, one member per code: `nas-bench-macro:02012100` is the
//! NAS-Bench-Macro network (Su et al., CVPR 2021) with that code, built exactly as the benchmark
//! trained it (`../shared/benchmarks/nas-bench-macro/README.md`), so its cost model gives the
//! benchmark's `params` and `flops`. A family name is accepted wherever a preset name is.

use crate::arch::{Arch, BatchNorm, Block, Head, Padding, Stem, ARCH_FORMAT};

/// What a code may look like: `length` characters, each one of `digits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRule {
    pub length: usize,
    pub digits: &'static str,
}

impl CodeRule {
    /// What is wrong with `code`, if anything (1-based positions, as a reader counts).
    pub fn check(&self, code: &str) -> Result<(), String> {
        if let Some((at, _)) = code.chars().enumerate().find(|&(_, c)| !self.digits.contains(c)) {
            return Err(format!("code {code:?} at position {}: expected one of {}", at + 1, self.alphabet()));
        }
        let length = code.chars().count();
        if length != self.length {
            return Err(format!("code {code:?} has {length} digits; expected {} of {}", self.length, self.alphabet()));
        }
        Ok(())
    }

    /// How many codes the rule allows.
    pub fn count(&self) -> f64 {
        (self.digits.chars().count() as f64).powi(self.length as i32)
    }

    fn alphabet(&self) -> String {
        self.digits.chars().map(String::from).collect::<Vec<_>>().join(", ")
    }
}

/// The family's name, the prefix of its members' names.
pub const NAS_BENCH_MACRO: &str = "nas-bench-macro";

/// NAS-Bench-Macro's codes: 8 searched layers, each `0` identity, `1` MB3_K3 or `2` MB6_K5.
pub const NAS_BENCH_MACRO_CODES: CodeRule = CodeRule { length: 8, digits: "012" };

/// The input side NAS-Bench-Macro's networks were trained and counted at (CIFAR-10).
pub const NAS_BENCH_MACRO_RESOLUTION: usize = 32;

/// The searched layers as (in, out, stride): three stages of 2, 3 and 3 layers, each stage
/// opening at stride 2 with doubled channels.
const NAS_BENCH_MACRO_LAYERS: [(usize, usize, usize); 8] =
    [(32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)];

/// The layer `digit` stands for at a position, `None` where it is absent (identity at stride
/// 1): `1` MB3_K3, `2` MB6_K5, `0` a stride-2 1x1 conv + BN where the shape changes.
fn nas_bench_macro_layer(digit: char, (in_ch, out, stride): (usize, usize, usize)) -> Option<Block> {
    let (expand, kernel) = match digit {
        '1' => (3, 3),
        '2' => (6, 5),
        _ if stride == 1 && in_ch == out => return None,
        _ => return Some(Block::plain_conv(in_ch, out, stride)),
    };
    Some(Block { expand, kernels: vec![kernel], ..Block::plain_conv(in_ch, out, stride) })
}

/// The NAS-Bench-Macro network of `code`, or one line saying what is wrong with the code.
pub fn nas_bench_macro(code: &str) -> Result<Arch, String> {
    NAS_BENCH_MACRO_CODES.check(code)?;
    let blocks =
        code.chars().zip(NAS_BENCH_MACRO_LAYERS).filter_map(|(digit, at)| nas_bench_macro_layer(digit, at)).collect();
    Ok(Arch {
        format: ARCH_FORMAT.to_string(),
        name: Some(format!("{NAS_BENCH_MACRO}:{code}")),
        stem: Stem { in_ch: 3, out: 32, kernel: 3, stride: 1 },
        blocks,
        head: Head { width: 1280 },
        classes: 10,
        dropout: 0.0,
        padding: Padding::PytorchSymmetric,
        bn: BatchNorm { eps: 1e-5, momentum: 0.1 },
        resolution: Some(NAS_BENCH_MACRO_RESOLUTION),
        provenance: None,
    })
}

/// The member `spec` names (`nas-bench-macro:CODE`): `None` when `spec` names no family,
/// `Some(Err)` when the code is wrong.
pub fn by_spec(spec: &str) -> Option<Result<Arch, String>> {
    let code = spec.strip_prefix(NAS_BENCH_MACRO)?.strip_prefix(':')?;
    Some(nas_bench_macro(code))
}

/// The NAS-Bench-Macro code of `arch`, if it is one of the benchmark's networks (classes and
/// input channels as trained, 10 and 3). Codes are not unique networks: within a stage an
/// identity layer may sit before or after a block (`00000001` and `00000010` build the same
/// network, trained separately by the benchmark). So the code in the name
/// (`nas-bench-macro:CODE`) is taken when it builds `arch`; otherwise the code with each
/// stage's identities last.
pub fn nas_bench_macro_code(arch: &Arch) -> Option<String> {
    let same = |a: &Arch| Arch { name: None, provenance: None, ..a.clone() };
    let named = arch.name.as_deref().and_then(|n| n.strip_prefix(NAS_BENCH_MACRO)?.strip_prefix(':'));
    if let Some(code) = named.filter(|c| nas_bench_macro(c).is_ok_and(|m| same(&m) == same(arch))) {
        return Some(code.to_string());
    }
    let mut blocks = arch.blocks.iter().peekable();
    let mut code = String::with_capacity(NAS_BENCH_MACRO_LAYERS.len());
    for at in NAS_BENCH_MACRO_LAYERS {
        let digit = ['1', '2', '0'].into_iter().find(|&d| match nas_bench_macro_layer(d, at) {
            Some(layer) => blocks.peek() == Some(&&layer),
            None => true,
        })?;
        if nas_bench_macro_layer(digit, at).is_some() {
            blocks.next();
        }
        code.push(digit);
    }
    let member = nas_bench_macro(&code).ok()?;
    (same(&member) == same(arch)).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_absent_at_stride_one_and_a_plain_conv_where_the_shape_changes() {
        let arch = nas_bench_macro("00000000").unwrap();
        let plain: Vec<(usize, usize, usize)> = arch.blocks.iter().map(|b| (b.in_ch, b.out, b.stride)).collect();
        assert_eq!(plain, [(32, 64, 2), (64, 128, 2), (128, 256, 2)]);
        assert!(arch.blocks.iter().all(Block::is_plain_conv));
        let arch = nas_bench_macro("12012021").unwrap();
        let shape: Vec<(usize, Vec<usize>)> = arch.blocks.iter().map(|b| (b.expand, b.kernels.clone())).collect();
        assert_eq!(
            shape,
            [
                (3, vec![3]),
                (6, vec![5]),
                (1, vec![]),
                (3, vec![3]),
                (6, vec![5]),
                (1, vec![]),
                (6, vec![5]),
                (3, vec![3])
            ]
        );
        assert!(crate::validate::validate(&arch).is_ok());
    }

    #[test]
    fn every_code_maps_back_to_itself_and_unnamed_networks_to_a_code_that_builds_them() {
        let mut distinct = std::collections::BTreeSet::new();
        for n in 0..6561usize {
            let code: String = (0..8).rev().map(|i| char::from(b'0' + (n / 3usize.pow(i) % 3) as u8)).collect();
            let arch = nas_bench_macro(&code).unwrap();
            assert_eq!(nas_bench_macro_code(&arch).as_deref(), Some(code.as_str()));
            let unnamed = Arch { name: None, ..arch.clone() };
            let canonical = nas_bench_macro_code(&unnamed).unwrap();
            assert_eq!(nas_bench_macro(&canonical).unwrap().blocks, arch.blocks, "{code} -> {canonical}");
            distinct.insert(canonical);
        }
        // Each stage opens with one of 3 layers, then holds 0 to n-1 of the 2 blocks in order:
        // 3 * 3, 3 * 7 and 3 * 7 distinct stages, so 3,969 distinct networks of 6,561 codes.
        assert_eq!(distinct.len(), 9 * 21 * 21);
        let renamed = Arch { name: Some("nas-bench-macro:00000010".into()), ..nas_bench_macro("00000001").unwrap() };
        assert_eq!(nas_bench_macro_code(&renamed).as_deref(), Some("00000010"));
        let mut other = nas_bench_macro("22212202").unwrap();
        other.classes = 100;
        assert_eq!(nas_bench_macro_code(&other), None);
        assert_eq!(nas_bench_macro_code(&crate::presets::mixnet_s()), None);
    }

    #[test]
    fn family_names_load_like_presets_and_bad_codes_are_one_line() {
        assert_eq!(crate::load_arch("nas-bench-macro:02012100").unwrap(), nas_bench_macro("02012100").unwrap());
        let e = crate::load_arch("nas-bench-macro:0201210").unwrap_err().to_string();
        assert_eq!(e, r#"nas-bench-macro:0201210: code "0201210" has 7 digits; expected 8 of 0, 1, 2"#);
        let e = crate::load_arch("nas-bench-macro:0201210x").unwrap_err().to_string();
        assert_eq!(e, r#"nas-bench-macro:0201210x: code "0201210x" at position 8: expected one of 0, 1, 2"#);
    }
}
