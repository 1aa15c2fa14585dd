//! Which CPU this is, as /proc/cpuinfo says: the first half of a latency table's key. x86
//! prints a `model name`; ARM Linux usually prints none, only each core's implementer and part
//! codes (and on Raspberry Pi OS the board's `Model`), so those are named here.

/// This machine's CPU as /proc/cpuinfo names it (see [`cpu_model_in`]).
pub fn cpu_model() -> String {
    cpu_model_in(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// The CPU named by a /proc/cpuinfo text: x86's first `model name`; on ARM, where Linux prints
/// no model name, the cores' distinct implementer/part pairs by name (a big.LITTLE phone has
/// two or three), after the board's `Model` line where there is one (Raspberry Pi OS); else the
/// architecture.
pub fn cpu_model_in(info: &str) -> String {
    let fields = || info.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim(), v.trim()));
    let first = |key: &str| fields().find(|(k, v)| *k == key && !v.is_empty()).map(|(_, v)| v.to_string());
    if let Some(model) = first("model name") {
        return model;
    }
    let mut cores = Vec::new();
    let mut implementer = None;
    for (k, v) in fields() {
        match k {
            "CPU implementer" => implementer = Some(v),
            "CPU part" => {
                let core = arm_core_name(implementer.unwrap_or(""), v);
                if !cores.contains(&core) {
                    cores.push(core);
                }
            }
            _ => {}
        }
    }
    let cores = cores.join(" + ");
    match (first("Model"), cores.is_empty()) {
        (Some(board), false) => format!("{board} ({cores})"),
        (Some(board), true) => board,
        (None, false) => cores,
        (None, true) => format!("unknown {}", std::env::consts::ARCH),
    }
}

/// An ARM core's name from /proc/cpuinfo's hex `CPU implementer` and `CPU part`; cores not in
/// this short list keep their codes (still a stable key).
fn arm_core_name(implementer: &str, part: &str) -> String {
    let name = match (implementer, part) {
        ("0x41", "0xd03") => "ARM Cortex-A53",
        ("0x41", "0xd04") => "ARM Cortex-A35",
        ("0x41", "0xd05") => "ARM Cortex-A55",
        ("0x41", "0xd07") => "ARM Cortex-A57",
        ("0x41", "0xd08") => "ARM Cortex-A72",
        ("0x41", "0xd09") => "ARM Cortex-A73",
        ("0x41", "0xd0a") => "ARM Cortex-A75",
        ("0x41", "0xd0b") => "ARM Cortex-A76",
        ("0x41", "0xd0c") => "ARM Neoverse-N1",
        ("0x41", "0xd0d") => "ARM Cortex-A77",
        ("0x41", "0xd40") => "ARM Neoverse-V1",
        ("0x41", "0xd41") => "ARM Cortex-A78",
        ("0x41", "0xd44") => "ARM Cortex-X1",
        ("0x41", "0xd46") => "ARM Cortex-A510",
        ("0x41", "0xd47") => "ARM Cortex-A710",
        ("0x41", "0xd48") => "ARM Cortex-X2",
        ("0x41", "0xd49") => "ARM Neoverse-N2",
        ("0x41", "0xd4f") => "ARM Neoverse-V2",
        _ => return format!("ARM implementer {implementer} part {part}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_uses_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n";
        assert_eq!(cpu_model_in(info), "AMD EPYC 7B13 64-Core Processor");
    }

    #[test]
    fn a_raspberry_pi_is_its_board_and_core() {
        let core = |n: usize| {
            format!("processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n")
        };
        let info = format!(
            "{}{}Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
            core(0),
            core(1)
        );
        assert_eq!(cpu_model_in(&info), "Raspberry Pi 4 Model B Rev 1.4 (ARM Cortex-A72)");
    }

    #[test]
    fn a_big_little_phone_lists_its_distinct_cores_and_keeps_unknown_codes() {
        let core = |part: &str| format!("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n");
        let info = [core("0xd05"), core("0xd05"), core("0xd0b"), core("0xd44")].concat();
        assert_eq!(cpu_model_in(&info), "ARM Cortex-A55 + ARM Cortex-A76 + ARM Cortex-X1");
        let apple = "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x022\n";
        assert_eq!(cpu_model_in(apple), "ARM implementer 0x61 part 0x022");
    }

    #[test]
    fn no_cpuinfo_names_the_architecture() {
        assert_eq!(cpu_model_in(""), format!("unknown {}", std::env::consts::ARCH));
    }
}
