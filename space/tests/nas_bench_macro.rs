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
