//! Semantic checks of an [`Arch`] that serde's types cannot express. Each failure is
//! `(field path, message)`; the message says what was found and what is allowed.

use crate::arch::{Arch, Block};
use crate::scale::split_channels;

/// The largest kernel accepted; the ops support any odd size up to here.
pub const MAX_KERNEL: usize = 31;
/// MixConv group limit: the paper's search used 1 to 5 groups, its kernel-size study (Fig. 4)
/// up to 6 ({3x3, ..., 13x13}), which `nas experiment kernel-sweep` reproduces.
pub const MAX_KERNEL_GROUPS: usize = 6;

type Failure = (String, String);

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, Failure> {
    Err((field.into(), message.into()))
}

fn check_kernel(field: &str, k: usize) -> Result<(), Failure> {
    if k < 3 || k.is_multiple_of(2) || k > MAX_KERNEL {
        return fail(field, format!("kernel size {k} is not allowed; use odd sizes from 3 to {MAX_KERNEL}"));
    }
    Ok(())
}

fn check_stride(field: &str, s: usize) -> Result<(), Failure> {
    match s {
        1 | 2 => Ok(()),
        _ => fail(field, format!("stride {s} is not allowed; use 1 or 2")),
    }
}

fn check_groups(field: &str, groups: usize, cin: usize, cout: usize) -> Result<(), Failure> {
    if groups == 0 || groups > cin.min(cout) {
        return fail(field, format!("{groups} groups do not fit {cin} -> {cout} channels; use 1 to {}", cin.min(cout)));
    }
    Ok(())
}

/// Checks the whole architecture; stops at the first failure.
pub fn validate(arch: &Arch) -> Result<(), Failure> {
    let s = &arch.stem;
    if s.in_ch == 0 || s.out == 0 {
        return fail("stem", "channels must be at least 1");
    }
    check_kernel("stem.kernel", s.kernel)?;
    check_stride("stem.stride", s.stride)?;
    if arch.blocks.is_empty() {
        return fail("blocks", "at least one block is required");
    }
    let mut prev = ("stem.out".to_string(), s.out);
    for (i, b) in arch.blocks.iter().enumerate() {
        let at = |f: &str| format!("blocks[{i}].{f}");
        if b.in_ch != prev.1 {
            return fail(at("in"), format!("{} does not chain: {} is {}", b.in_ch, prev.0, prev.1));
        }
        validate_block(b, &at)?;
        prev = (at("out"), b.out);
    }
    if arch.resolution == Some(0) {
        return fail("resolution", "must be at least 1 (pixels), or null");
    }
    if arch.head.width == 0 {
        return fail("head.width", "must be at least 1");
    }
    if arch.classes == 0 {
        return fail("classes", "must be at least 1");
    }
    if !(0.0..1.0).contains(&arch.dropout) {
        return fail("dropout", format!("{} is out of range; use 0 <= dropout < 1", arch.dropout));
    }
    if !(arch.bn.eps > 0.0 && arch.bn.eps < 1.0) {
        return fail("bn.eps", format!("{} is out of range; use 0 < eps < 1", arch.bn.eps));
    }
    if !(0.0..=1.0).contains(&arch.bn.momentum) {
        return fail("bn.momentum", format!("{} is out of range; use 0 <= momentum <= 1", arch.bn.momentum));
    }
    Ok(())
}

fn validate_block(b: &Block, at: &dyn Fn(&str) -> String) -> Result<(), Failure> {
    if b.out == 0 {
        return fail(at("out"), "must be at least 1");
    }
    check_stride(&at("stride"), b.stride)?;
    if b.expand == 0 || b.expand > 16 {
        return fail(at("expand"), format!("{} is not allowed; use 1 to 16", b.expand));
    }
    if b.is_plain_conv() {
        return validate_plain_conv(b, at);
    }
    let groups = b.kernels.len();
    if groups > MAX_KERNEL_GROUPS {
        return fail(at("kernels"), format!("{groups} kernel groups; use 1 to {MAX_KERNEL_GROUPS}"));
    }
    for &k in &b.kernels {
        check_kernel(&at("kernels"), k)?;
    }
    if let Some(empty) = split_channels(b.mid(), groups, b.partition).iter().position(|&c| c == 0) {
        let msg = format!("{} channels cannot feed {groups} kernel groups (group {empty} would be empty)", b.mid());
        return fail(at("kernels"), msg);
    }
    if b.expand == 1 && b.expand_groups != 1 {
        return fail(at("expand_groups"), "must be 1 when expand is 1 (there is no expansion conv)");
    }
    check_groups(&at("expand_groups"), b.expand_groups, b.in_ch, b.mid())?;
    check_groups(&at("project_groups"), b.project_groups, b.mid(), b.out)?;
    if let Some(r) = b.se {
        if !(r > 0.0 && r <= 1.0) {
            return fail(at("se"), format!("{r} is out of range; use 0 < se <= 1, or null for none"));
        }
    }
    Ok(())
}

/// A block without kernels is one 1x1 conv + BN: nothing else of an MBConv may be asked for.
fn validate_plain_conv(b: &Block, at: &dyn Fn(&str) -> String) -> Result<(), Failure> {
    let why = "must be 1 in a block with no kernels (a plain 1x1 conv + BN)";
    if b.expand != 1 {
        return fail(at("expand"), format!("{} {why}", b.expand));
    }
    if b.expand_groups != 1 {
        return fail(at("expand_groups"), format!("{} {why}", b.expand_groups));
    }
    if b.project_groups != 1 {
        return fail(at("project_groups"), format!("{} {why}", b.project_groups));
    }
    if b.se.is_some() {
        return fail(at("se"), "must be null in a block with no kernels (a plain 1x1 conv + BN)");
    }
    Ok(())
}
