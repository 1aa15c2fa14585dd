//! Does a proxy setting rank architectures, and what does it cost? Scores a fixed list of
//! architectures with one proxy setting and prints one JSON line per architecture; run it at
//! two settings and compare the orders (the numbers in `configs/search.json` came from this).
//!
//! ```sh
//! cargo run --release -p search --example proxy_rank -- \
//!     data=default res=16 epochs=2 lr=0.2 train=100 val=30 threads=2 \
//!     mixnet-s mobilenetv2 min sample:1 sample:2
//! ```
//!
//! An architecture is a preset name or file, `min` (the space's first option everywhere: 3x3,
//! no expansion, no SE, one layer per row) or `sample:S` (a point of the default space drawn
//! with seed S).

use evaluator::rng::SplitMix64;
use evaluator::train::prepared::{DataSpec, PreparedData};
use evaluator::train::proxy::{proxy_evaluate, ProxyConfig};
use space::SearchSpace;

fn arch(name: &str) -> space::Arch {
    let space = SearchSpace::default_space();
    if name == "min" {
        return space.decode(&vec![0; space.decisions.len()]).expect("min point");
    }
    if let Some(seed) = name.strip_prefix("sample:") {
        let point = space.sample(&mut SplitMix64::scrambled(seed.parse().expect("sample:<seed>")));
        return space.decode(&point).expect("sampled point");
    }
    space::load_arch(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn main() {
    let (mut opts, mut names) = (std::collections::HashMap::new(), Vec::new());
    for a in std::env::args().skip(1) {
        match a.split_once('=') {
            Some((k, v)) => drop(opts.insert(k.to_string(), v.to_string())),
            None => names.push(a),
        }
    }
    let get = |k: &str, d: &str| opts.get(k).cloned().unwrap_or_else(|| d.to_string());
    let num = |k: &str, d: &str| get(k, d).parse::<f64>().unwrap_or_else(|_| panic!("{k}: a number"));
    evaluator::set_threads(num("threads", "2") as usize);
    let seed = num("seed", "0") as u64;
    let spec = DataSpec {
        source: get("data", "default"),
        train_per_class: Some(num("train", "100") as usize),
        val_per_class: Some(num("val", "30") as usize),
        augment: None,
        seed,
    };
    let data = PreparedData::load(&spec).expect("data");
    let res = num("res", "0") as usize;
    let cfg = ProxyConfig {
        epochs: num("epochs", "2") as usize,
        batch: num("batch", "64") as usize,
        max_lr: num("lr", "0.1"),
        resolution: (res > 0).then_some(res),
        width: None,
    };
    for name in names {
        let r = proxy_evaluate(&arch(&name), &cfg, &data, seed).expect("proxy training");
        println!(
            "{{\"arch\":\"{name}\",\"res\":{res},\"epochs\":{},\"lr\":{},\"train\":{},\"val_accuracy\":{:.4},\"train_loss\":{:.3},\"seconds\":{:.1},\"images_per_s\":{:.1}}}",
            cfg.epochs,
            cfg.max_lr,
            data.train.len(),
            r.val_accuracy,
            r.train_loss,
            r.train_seconds,
            r.images_per_s
        );
    }
}
