//! Load-time checks: after these pass, every choice vector decodes to a valid [`Arch`] and
//! `encode` is the exact inverse of `decode` on canonical vectors.

use super::*;

pub(super) fn rows(base: &Base, rows: &[SpaceRow], inherited: &[file::Inherited]) -> Result<(), Failure> {
    if rows.is_empty() {
        return Err(("rows".into(), "at least one row is required".into()));
    }
    for (i, inherited) in inherited.iter().enumerate() {
        row(base, rows, i).map_err(|(field, message)| relocate(field, message, i, inherited))?;
    }
    Ok(())
}

fn row(base: &Base, rows: &[SpaceRow], i: usize) -> Result<(), Failure> {
    let row = &rows[i];
    let at = |f: &str| format!("rows[{i}].{f}");
    let prev = match i {
        0 => ("base.stem.out".to_string(), base.stem.out),
        _ => (format!("rows[{}].out", i - 1), rows[i - 1].out()),
    };
    if row.in_ch() != prev.1 {
        return Err((at("in"), format!("{} does not chain: {} is {}", row.in_ch(), prev.0, prev.1)));
    }
    if row.in_ch() == 0 || row.out() == 0 {
        return Err((format!("rows[{i}]"), "channels must be at least 1".into()));
    }
    let prev_varies = i > 0 && matches!(&rows[i - 1], SpaceRow::Fields(r) if r.layers.len() > 1);
    if prev_varies && row.stride() == 1 && row.in_ch() == row.out() {
        let msg = format!("keeps the width and stride of rows[{}], whose layers vary; merge the two rows", i - 1);
        return Err((format!("rows[{i}]"), msg));
    }
    match row {
        SpaceRow::Fields(row) => {
            lists(row, &at)?;
            blocks(base, row, i)
        }
        SpaceRow::Layers(row) => layers(base, row, i),
    }
}

/// A layer list is non-empty, has no repeat and at most [`MAX_OPTIONS`] entries, and each
/// alternative is a valid block at the row's shape.
fn layers(base: &Base, row: &LayerRow, i: usize) -> Result<(), Failure> {
    let at = format!("rows[{i}].layer");
    if row.layer.is_empty() {
        return Err((at, "no options; list at least one layer".into()));
    }
    if row.layer.len() > MAX_OPTIONS {
        return Err((at, format!("{} options; at most {MAX_OPTIONS} are allowed", row.layer.len())));
    }
    if let Some(j) = (0..row.layer.len()).find(|&j| row.layer[..j].contains(&row.layer[j])) {
        return Err((format!("{at}[{j}]"), "is listed twice".into()));
    }
    for j in 0..row.layer.len() {
        if let Some(block) = row.block(j) {
            let rename = |field: &str| match field.strip_prefix("blocks[0]") {
                Some(rest) => format!("{at}[{j}]{rest}"),
                None => format!("base.{field}"),
            };
            probe(base, block).map_err(|(field, m)| (rename(&field), m))?;
        }
    }
    Ok(())
}

/// A failure in a list the row took from `options` is reported there.
fn relocate(field: String, message: String, i: usize, inherited: &file::Inherited) -> Failure {
    let Some(rest) = field.strip_prefix(&format!("rows[{i}].")) else { return (field, message) };
    let key = rest.split(['[', '.']).next().unwrap_or(rest);
    match FIELDS.iter().position(|f| f.key() == key) {
        Some(k) if inherited[k] => (format!("options.{rest}"), format!("{message} (for rows[{i}])")),
        _ => (field, message),
    }
}

/// Every list is non-empty, has no repeated value and at most [`MAX_OPTIONS`] values.
fn lists(row: &Row, at: &dyn Fn(&str) -> String) -> Result<(), Failure> {
    for f in FIELDS {
        let labels = row.labels(f);
        if labels.is_empty() {
            return Err((at(f.key()), "no options; list at least one value".into()));
        }
        if labels.len() > MAX_OPTIONS {
            return Err((at(f.key()), format!("{} options; at most {MAX_OPTIONS} are allowed", labels.len())));
        }
        if let Some((j, l)) = labels.iter().enumerate().find(|(j, l)| labels[..*j].contains(l)) {
            return Err((format!("{}[{j}]", at(f.key())), format!("{l} is listed twice")));
        }
    }
    if let Some(&l) = row.layers.iter().find(|&&l| l == 0) {
        return Err((at("layers"), format!("{l} is not allowed; use 1 or more")));
    }
    Ok(())
}

/// Validates the first layer and a repeat for every combination of the row's options, each
/// as a one-block network on the base, so interactions (kernel groups against the expanded
/// width, groups against channels) are all covered.
fn blocks(base: &Base, row: &Row, i: usize) -> Result<(), Failure> {
    let counts = FIELDS.map(|f| if f == Field::Layers { 1 } else { row.count(f) });
    let total: usize = counts.iter().product();
    let repeats = row.layers.iter().any(|&l| l > 1);
    for n in 0..total {
        let mut p = Pick::default();
        let mut rest = n;
        for (f, c) in FIELDS.into_iter().zip(counts) {
            p[f] = rest % c;
            rest /= c;
        }
        for first in [true, false].into_iter().filter(|&first| first || repeats) {
            probe(base, row.block(&p, first)).map_err(|(field, m)| (rename(&field, i), m))?;
        }
    }
    Ok(())
}

fn probe(base: &Base, block: Block) -> Result<(), Failure> {
    let base = Base { stem: Stem { out: block.in_ch, ..base.stem.clone() }, ..base.clone() };
    validate(&base.arch(None, vec![block]))
}

/// A probe's field path in terms of the space file.
fn rename(field: &str, row: usize) -> String {
    match field.strip_prefix("blocks[0]") {
        Some(rest) => format!("rows[{row}]{rest}"),
        None => format!("base.{field}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::searchspace::tests::{broken, broken_layers, LAYERED};
    use crate::searchspace::SearchSpace;

    #[test]
    fn spaces_that_fail_a_check_name_file_and_field() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|v| v["rows"][3]["in"] = json!(32)), "s.json: rows[3].in: 32 does not chain: rows[2].out is 24"),
            (
                Box::new(|v| v["base"]["stem"]["out"] = json!(24)),
                "s.json: rows[0].in: 16 does not chain: base.stem.out is 24",
            ),
            (
                Box::new(|v| v["options"]["kernels"] = json!([[3], [3, 4]])),
                "s.json: options.kernels: kernel size 4 is not allowed",
            ),
            (Box::new(|v| v["rows"][1]["expand"] = json!([])), "s.json: rows[1].expand: no options"),
            (
                Box::new(|v| v["options"]["se"] = json!([null, 0.5, 0.5])),
                "s.json: options.se[2]: 0.5 is listed twice (for rows[0])",
            ),
            (Box::new(|v| v["options"]["se"] = json!([1.5])), "s.json: options.se: 1.5 is out of range"),
            (Box::new(|v| v["rows"][4]["layers"] = json!([0, 1])), "s.json: rows[4].layers: 0 is not allowed"),
            (Box::new(|v| v["base"]["dropout"] = json!(1.5)), "s.json: base.dropout: 1.5 is out of range"),
            (
                Box::new(|v| v["rows"][7]["out"] = json!(80)),
                "s.json: rows[7]: keeps the width and stride of rows[6], whose layers vary; merge the two rows",
            ),
            (Box::new(|v| v["rows"] = json!([])), "s.json: rows: at least one row is required"),
        ];
        for (edit, want) in cases {
            let e = broken(edit);
            assert!(e.starts_with(want), "got:  {e}\nwant: {want}");
        }
    }

    #[test]
    fn layer_rows_that_fail_a_check_name_file_and_field() {
        let cases = [
            (
                r#"["identity", {"kernels": [4], "expand": 3, "act": "relu"}]"#,
                "s.json: rows[0].layer[1].kernels: kernel size 4 is not allowed",
            ),
            (r#"["identity", "identity"]"#, "s.json: rows[0].layer[1]: is listed twice"),
            (r#"[]"#, "s.json: rows[0].layer: no options"),
        ];
        for (layer, want) in cases {
            let e = broken_layers(layer);
            assert!(e.starts_with(want), "got:  {e}\nwant: {want}");
        }
        let mut v: serde_json::Value = serde_json::from_str(LAYERED).unwrap();
        v["rows"][2]["in"] = json!(8);
        let e = SearchSpace::parse(v.to_string().as_bytes(), "s.json").unwrap_err().to_string();
        assert_eq!(e, "s.json: rows[2].in: 8 does not chain: rows[1].out is 16");
    }
}
