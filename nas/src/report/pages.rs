//! The two report pages: a search run (trials, front, what was learned, the best network) and a
//! training run (curves, the network, the epochs).

use super::html::{figure, table, Page};
use super::run::RunFolder;
use super::training::{self, TrainFolder};
use super::{archview, choices, duration, trials, Report};

/// Rows in the top-trials table.
const TOP: usize = 15;

fn folder_name(dir: &std::path::Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

pub fn search(run: &RunFolder) -> Result<Report, String> {
    let title = format!("Search report: {}", folder_name(&run.dir));
    let mut page = Page::new(&title, &format!("{} — {}", run.dir.display(), run.setup_line()));
    let b = run.budget();
    let best = run.best();
    let fmt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
    let metric = run.metric();
    let best_label = format!("best {metric}");
    page.stats(&[
        ("trials", format!("{} / {}", b.trials_done, b.trials_planned)),
        ("evaluated · cached · failed", format!("{} · {} · {}", b.evaluated, b.cached, b.failed + b.invalid)),
        ("wall time", duration(b.wall_seconds) + if b.finished { "" } else { " (running)" }),
        ("best reward", fmt(best.map(|r| r.reward), 4)),
        (best_label.as_str(), fmt(best.and_then(|r| r.score()), 4)),
        ("best latency (ms)", fmt(best.and_then(|r| r.latency_ms()), 1)),
        ("target", run.config.reward.target.to_string()),
    ]);
    let mut plots = vec![
        (format!("{metric}-latency.svg"), trials::pareto_svg(run)?),
        ("trials.svg".to_string(), trials::history_svg(run)?),
        ("choices.svg".to_string(), choices::choices_svg(run)?),
    ];
    let front_note = format!("Each dot is one evaluated trial; the orange staircase is the Pareto front (no other trial is both faster and higher in {metric}).");
    let notes =
        [front_note.as_str(), "In trial order; the red step line follows the highest-reward trial found so far.", ""];
    let ids = ["front", "history", "choices"];
    let front_heading = format!("{} vs latency", trials::title(metric));
    let headings = [front_heading.as_str(), "Over trials", "Choices per decision, early vs late"];
    for (i, (_, svg)) in plots.iter().enumerate() {
        page.section(ids[i], headings[i], notes[i], &figure(svg));
    }
    if let (Some(best), Some(arch)) = (best, best.and_then(|r| r.arch.as_ref())) {
        let svg = archview::arch_svg(arch, &format!("Best architecture: trial {}", best.id))?;
        let note = format!(
            "reward {:.4}; `nas inspect {}/best.json` lists it with exact costs",
            best.reward,
            run.dir.display()
        );
        page.section("best", "Best architecture, block by block", &note, &figure(&svg));
        plots.push(("best-arch.svg".to_string(), svg));
    }
    page.section("top", &format!("Top {TOP} trials by reward"), "", &top_table(run));
    Ok(Report { html: page.finish(&title), plots })
}

fn top_table(run: &RunFolder) -> String {
    let front: Vec<u64> = run.pareto().iter().map(|r| r.id).collect();
    let rows: Vec<Vec<String>> = run
        .top(TOP)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let e = r.evaluation.as_ref().expect("evaluated trials have an evaluation");
            vec![
                (i + 1).to_string(),
                r.id.to_string(),
                format!("{:.4}", r.reward),
                format!("{:.4}", e.score),
                format!("{:.1}", e.latency_ms),
                format!("{:.1}", e.macs as f64 / 1e6),
                format!("{:.2}", e.params as f64 / 1e6),
                if front.contains(&r.id) { "yes" } else { "" }.to_string(),
                r.arch.as_ref().and_then(|a| a.name.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    let headers =
        ["rank", "trial", "reward", run.metric().name(), "latency ms", "MMACs", "M params", "front", "architecture"];
    table(&headers, &rows)
}

pub fn training(t: &TrainFolder) -> Result<Report, String> {
    let title = format!("Training report: {}", folder_name(&t.dir));
    let arch = &t.record.arch;
    let config = t.record.train.as_ref();
    let planned = config.map_or("?".into(), |c| c.epochs.to_string());
    let subtitle = format!("{} — {}", t.dir.display(), arch.name.as_deref().unwrap_or("unnamed architecture"));
    let mut page = Page::new(&title, &subtitle);
    let m = &t.metrics;
    let last = m.epochs.last();
    let best_val = m.epochs.iter().filter_map(|e| Some((e.epoch, e.val_accuracy?))).max_by(|a, b| a.1.total_cmp(&b.1));
    page.stats(&[
        ("epochs", format!("{} / {planned}", m.epochs.len())),
        ("final training loss", last.map_or("-".into(), |e| format!("{:.4}", e.train_loss))),
        ("best validation accuracy", best_val.map_or("-".into(), |(ep, v)| format!("{v:.4} (epoch {ep})"))),
        ("test accuracy", m.test_accuracy.map_or("-".into(), |v| format!("{v:.4}"))),
        ("training time", duration(m.epochs.iter().map(|e| e.seconds).sum())),
    ]);
    let plots = vec![
        ("curves.svg".to_string(), training::curves_svg(m)?),
        ("learning-rate.svg".to_string(), training::lr_svg(m, config)?),
        ("arch.svg".to_string(), archview::arch_svg(arch, "Architecture as trained")?),
    ];
    let headings = ["Loss and accuracy", "Learning rate", "Architecture, block by block"];
    for (i, (_, svg)) in plots.iter().enumerate() {
        page.section(&format!("plot{i}"), headings[i], "", &figure(svg));
    }
    page.section("epochs", "Epochs", "", &epoch_table(t));
    Ok(Report { html: page.finish(&title), plots })
}

fn epoch_table(t: &TrainFolder) -> String {
    let rows: Vec<Vec<String>> = t
        .metrics
        .epochs
        .iter()
        .map(|e| {
            vec![
                e.epoch.to_string(),
                format!("{:.4}", e.train_loss),
                format!("{:.4}", e.train_accuracy),
                e.val_accuracy.map_or("-".into(), |v| format!("{v:.4}")),
                format!("{:.5}", e.lr),
                format!("{:.0}", e.images_per_s),
                format!("{:.1}", e.seconds),
            ]
        })
        .collect();
    let headers = ["epoch", "train loss", "train acc.", "val. acc.", "lr", "images/s", "seconds"];
    table(&headers, &rows)
}
