//! The NAS-Bench-Macro family against the benchmark itself: every network of the dev half
//! costs exactly the parameters and FLOPs (multiply-accumulates) the benchmark lists.

use space::family::{nas_bench_macro, nas_bench_macro_code, NAS_BENCH_MACRO_RESOLUTION};

#[test]
fn the_cost_model_gives_the_benchmarks_params_and_flops_for_every_dev_network() {
    let Some(path) = testkit::shared::shared_path("benchmarks/nas-bench-macro/cifar10-dev.json") else { return };
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(entries.len(), 3281);
    let mut wrong = Vec::new();
    for (code, entry) in &entries {
        let arch = nas_bench_macro(code).unwrap();
        assert_eq!(nas_bench_macro_code(&arch).as_deref(), Some(code.as_str()));
        let total = space::cost(&arch, NAS_BENCH_MACRO_RESOLUTION).total;
        let want = (entry["params"].as_u64().unwrap(), entry["flops"].as_u64().unwrap());
        if (total.params, total.macs) != want {
            wrong.push(format!("{code}: ours {:?}, benchmark {want:?}", (total.params, total.macs)));
        }
    }
    assert!(wrong.is_empty(), "{} of 3281 differ, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
}

/// `configs/space-nas-bench-macro.json`, the benchmark as a search space.
fn space_file() -> space::SearchSpace {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/space-nas-bench-macro.json");
    space::SearchSpace::load(path).unwrap()
}

/// The 8-digit code of point `n` (0..6561), first digit most significant.
fn code(n: usize) -> String {
    (0..8).rev().map(|i| char::from(b'0' + (n / 3usize.pow(i) % 3) as u8)).collect()
}

#[test]
fn every_point_of_the_space_file_is_the_family_member_of_its_code() {
    let space = space_file();
    assert_eq!(space.num_options(), [3; 8]);
    assert_eq!(space.resolution, Some(NAS_BENCH_MACRO_RESOLUTION));
    assert_eq!(space.decisions[0].options, ["conv1x1", "mb3_k3_relu", "mb6_k5_relu"]);
    assert_eq!(space.decisions[1].options, ["identity", "mb3_k3_relu", "mb6_k5_relu"]);
    assert!((space.log10_size() - 6561f64.log10()).abs() < 1e-12);
    for n in 0..6561 {
        let code = code(n);
        let choices: Vec<usize> = code.bytes().map(|b| usize::from(b - b'0')).collect();
        let arch = space.decode(&choices).unwrap();
        assert_eq!(arch, nas_bench_macro(&code).unwrap(), "{code}");
        assert_eq!(space.encode(&arch), Some(choices.clone()), "{code}");
        assert_eq!(space.canonical(&choices).unwrap(), choices, "codes are points; none is canonicalised away");
        // Unnamed, the network maps to the code the family gives it (identities last in a stage).
        let family = nas_bench_macro_code(&space::Arch { name: None, ..arch.clone() }).unwrap();
        let unnamed = space.encode(&space::Arch { name: None, ..arch }).unwrap();
        assert_eq!(unnamed.iter().map(|c| c.to_string()).collect::<String>(), family, "{code}");
    }
}

#[test]
fn sampling_the_space_file_is_uniform_over_codes() {
    use rand::SeedableRng;
    let space = space_file();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut counts = [0usize; 3];
    let mut first_stage = std::collections::HashMap::new();
    for _ in 0..30_000 {
        let c = space.sample(&mut rng);
        for &d in &c {
            counts[d] += 1;
        }
        *first_stage.entry((c[0], c[1])).or_insert(0usize) += 1;
    }
    // 80,000 per digit expected (sd about 240) and 3,333 per first-stage pair (sd about 55):
    // uniform over codes, not over the distinct networks they build.
    assert!(counts.iter().all(|&n| (78_500..81_500).contains(&n)), "{counts:?}");
    assert_eq!(first_stage.len(), 9);
    assert!(first_stage.values().all(|&n| (3_000..3_700).contains(&n)), "{first_stage:?}");
}
