//! The space file as written, before defaults are applied.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpaceFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub base: Base,
    /// Defaults for the lists a row leaves out.
    #[serde(default)]
    pub options: Row<Written>,
    /// Field rows (`Row<Written>`) or layer rows (with a `layer` list), told apart by key.
    pub rows: Vec<serde_json::Value>,
    #[serde(default)]
    pub resolution: Option<usize>,
}

/// A layer row as written: `layer` holds `"identity"` or template objects.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerRowFile {
    #[serde(rename = "in")]
    in_ch: usize,
    out: usize,
    stride: usize,
    layer: Vec<serde_json::Value>,
}

/// Deserialises `value`, found at `at` in the file; errors name the field inside it.
fn parse_at<T: serde::de::DeserializeOwned>(value: &serde_json::Value, at: &str) -> Result<T, Failure> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." => at.to_string(),
            p if p.starts_with('[') => format!("{at}{p}"),
            p => format!("{at}.{p}"),
        };
        (field, e.into_inner().to_string())
    })
}

fn layer_row(value: &serde_json::Value, at: &str) -> Result<LayerRow, Failure> {
    let row: LayerRowFile = parse_at(value, at)?;
    let layer = row.layer.iter().enumerate().map(|(j, v)| layer(v, &format!("{at}.layer[{j}]")));
    Ok(LayerRow { in_ch: row.in_ch, out: row.out, stride: row.stride, layer: layer.collect::<Result<_, _>>()? })
}

fn layer(value: &serde_json::Value, at: &str) -> Result<Layer, Failure> {
    match value {
        serde_json::Value::String(s) if s == crate::layers::IDENTITY => Ok(Layer::Identity),
        serde_json::Value::Object(_) => Ok(Layer::Block(parse_at(value, at)?)),
        other => Err((
            at.to_string(),
            format!("{other} is not a layer; use \"identity\" or a template {{\"kernels\", \"expand\", \"act\", optional \"se\", \"expand_groups\", \"project_groups\"}}"),
        )),
    }
}

/// Checks the `format` first, so a newer file fails on its version rather than on a field
/// this version does not know; the version is then taken off, as nothing else reads it.
pub(super) fn read(bytes: &[u8], source: &str) -> Result<SpaceFile, ArchError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| error(source, "", format!("not valid JSON: {e}")))?;
    match value.as_object_mut().and_then(|file| file.remove("format")) {
        None => return Err(error(source, "", format!("missing field `format` (expected \"{SPACE_FORMAT}\")"))),
        Some(serde_json::Value::String(s)) if s == SPACE_FORMAT => {}
        Some(other) => {
            let msg = format!("unknown format version {other}; this mixnas reads \"{SPACE_FORMAT}\"");
            return Err(error(source, "format", msg));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        error(source, if field == "." { "" } else { &field }, e.into_inner().to_string())
    })
}

/// Which fields of a row came from `options`, in [`FIELDS`] order.
pub(super) type Inherited = [bool; 7];

/// Rows with the `options` defaults filled in, and which fields of each field row came
/// from `options` (in [`FIELDS`] order), so errors can point at the list the user wrote.
pub(super) fn resolve_rows(file: &SpaceFile) -> Result<(Vec<SpaceRow>, Vec<Inherited>), Failure> {
    file.options.check_options("options")?;
    let mut rows = Vec::new();
    let mut inherited = Vec::new();
    for (i, value) in file.rows.iter().enumerate() {
        let at = format!("rows[{i}]");
        if value.get("layer").is_some() {
            rows.push(SpaceRow::Layers(layer_row(value, &at)?));
            inherited.push([false; 7]);
        } else {
            let row: Row<Written> = parse_at(value, &at)?;
            rows.push(SpaceRow::Fields(row.complete(&file.options, &at)?));
            inherited.push(row.inherited());
        }
    }
    Ok((rows, inherited))
}

impl Row<Written> {
    /// Which lists the row leaves to the defaults, in [`FIELDS`] order.
    fn inherited(&self) -> Inherited {
        [
            self.kernels.is_none(),
            self.expand.is_none(),
            self.expand_groups.is_none(),
            self.project_groups.is_none(),
            self.se.is_none(),
            self.act.is_none(),
            self.layers.is_none(),
        ]
    }

    /// The row with its missing lists taken from `defaults`; `at` is the row's path in the file.
    fn complete(&self, defaults: &Row<Written>, at: &str) -> Result<Row, Failure> {
        let one = |key: &str, v: Option<usize>| v.ok_or_else(|| (at.to_string(), format!("missing field `{key}`")));
        let d = defaults;
        Ok(Row {
            in_ch: one("in", self.in_ch)?,
            out: one("out", self.out)?,
            stride: one("stride", self.stride)?,
            kernels: or_default(&self.kernels, &d.kernels, at, Field::Kernels)?,
            expand: or_default(&self.expand, &d.expand, at, Field::Expand)?,
            expand_groups: or_default(&self.expand_groups, &d.expand_groups, at, Field::ExpandGroups)?,
            project_groups: or_default(&self.project_groups, &d.project_groups, at, Field::ProjectGroups)?,
            se: or_default(&self.se, &d.se, at, Field::Se)?,
            act: or_default(&self.act, &d.act, at, Field::Act)?,
            layers: or_default(&self.layers, &d.layers, at, Field::Layers)?,
        })
    }

    /// Checks that these are `options`: lists only, no `in`, `out` or `stride`.
    fn check_options(&self, at: &str) -> Result<(), Failure> {
        let fixed = [("in", self.in_ch), ("out", self.out), ("stride", self.stride)];
        match fixed.iter().find(|(_, v)| v.is_some()) {
            Some((key, _)) => {
                Err((format!("{at}.{key}"), format!("unknown field `{key}`; `{at}` holds only option lists")))
            }
            None => Ok(()),
        }
    }
}

fn or_default<T: Clone>(own: &Option<T>, default: &Option<T>, at: &str, f: Field) -> Result<T, Failure> {
    match own.as_ref().or(default.as_ref()) {
        Some(v) => Ok(v.clone()),
        None => Err((format!("{at}.{}", f.key()), "missing, and `options` has no default for it".to_string())),
    }
}

impl Default for Row<Written> {
    fn default() -> Self {
        Row {
            in_ch: None,
            out: None,
            stride: None,
            kernels: None,
            expand: None,
            expand_groups: None,
            project_groups: None,
            se: None,
            act: None,
            layers: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::searchspace::tests::{broken, broken_layers};
    use crate::searchspace::SearchSpace;

    #[test]
    fn unreadable_space_files_name_file_and_field() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["format"] = json!("mixnas.space/2")),
                "s.json: format: unknown format version \"mixnas.space/2\"; this mixnas reads \"mixnas.space/1\"",
            ),
            (
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("format"))),
                "s.json: missing field `format` (expected \"mixnas.space/1\")",
            ),
            (Box::new(|v| v["rows"][2]["kernel"] = json!([[3]])), "s.json: rows[2].kernel: unknown field `kernel`"),
            (Box::new(|v| v["options"]["act"] = json!(["gelu"])), "s.json: options.act[0]: unknown variant `gelu`"),
            (
                Box::new(|v| drop(v["options"].as_object_mut().unwrap().remove("act"))),
                "s.json: rows[0].act: missing, and `options` has no default for it",
            ),
            (
                Box::new(|v| drop(v["rows"][2].as_object_mut().unwrap().remove("in"))),
                "s.json: rows[2]: missing field `in`",
            ),
            (Box::new(|v| v["options"]["stride"] = json!(1)), "s.json: options.stride: unknown field `stride`"),
        ];
        for (edit, want) in cases {
            let e = broken(edit);
            assert!(e.starts_with(want), "got:  {e}\nwant: {want}");
        }
        assert!(SearchSpace::parse(b"{", "s.json").unwrap_err().to_string().starts_with("s.json: not valid JSON"));
        let e = SearchSpace::load("/no/such/space.json").unwrap_err().to_string();
        assert!(e.starts_with("/no/such/space.json: "), "{e}");
    }

    #[test]
    fn unreadable_layer_templates_name_file_and_field() {
        let cases = [
            (
                r#"["identity", {"kernel": [3], "expand": 3, "act": "relu"}]"#,
                "s.json: rows[0].layer[1].kernel: unknown field `kernel`",
            ),
            (r#"["skip"]"#, "s.json: rows[0].layer[0]: \"skip\" is not a layer; use \"identity\""),
            (
                r#"[{"kernels": [3], "expand": 3, "act": "gelu"}]"#,
                "s.json: rows[0].layer[0].act: unknown variant `gelu`",
            ),
        ];
        for (layer, want) in cases {
            let e = broken_layers(layer);
            assert!(e.starts_with(want), "got:  {e}\nwant: {want}");
        }
    }
}
