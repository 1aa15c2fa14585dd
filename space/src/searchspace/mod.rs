//! The search space: an ordered list of named categorical decisions over rows of fixed `in`,
//! `out` and `stride` (MnasNet's factorised hierarchical space with MixNet's options, reference
//! section 4.1), on a `base` (stem, head, classes, dropout, padding, BN) and, optionally, the
//! resolution its networks are judged at (format: docs/spaces.md).
//!
//! A field row lists the values it may take for kernels, expand, expand/project groups, SE,
//! activation and layers (repeats). Every list with more than one value is a [`Decision`]
//! named `row<N>.<field>` (N from 1). All layers of a row are the same block; the first takes
//! the row's stride and input width (reference section 2.1). Field rows are the block-table
//! [`Row`]s that presets use too, and decode with the same [`Row::blocks`]. A layer row
//! ([`LayerRow`]) offers whole layers instead, identity included; its decision is `row<N>.layer`.
//!
//! One choice vector decodes to one [`Arch`]; `encode` inverts `decode` on the canonical vector.
//! Canonical means: when expand is 1 there is no expansion conv, so `expand_groups` is moot and
//! its choice is the index of the value 1 (or 0 when 1 is not listed). Layer choices are never
//! canonicalised: a benchmark's codes are its points even where two build one network. `sample`
//! draws uniformly over points and returns canonical vectors; `log10_size` counts points.
//!
//! A decoded arch is named `<space>:<id>`, where `id` has one base-36 digit per decision (the
//! canonical choices), so the name gives back the point (`nas-bench-macro:02012100`).

use std::collections::HashSet;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Block, Stem};
use crate::layers::{Layer, LayerRow};
use crate::load::ArchError;
use crate::table::{Base, Row};
use crate::table::{Field, Pick, Written, FIELDS};
use crate::validate::validate;

mod check;
mod file;

/// The `format` value of a space file.
pub const SPACE_FORMAT: &str = "mixnas.space/1";

const DEFAULT_SPACE: &str = include_str!("../../../configs/space-mixnet.json");
const DEFAULT_SOURCE: &str = "configs/space-mixnet.json (embedded)";

/// Base-36 digits name a point, so a decision may have at most this many options.
const MAX_OPTIONS: usize = 36;
const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// One categorical decision, e.g. `row4.kernels` with options `["3", "3.5", "3.5.7", ...]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub name: String,
    /// Human-readable option labels, in index order.
    pub options: Vec<String>,
}

/// One row of a space: options per field of a repeated block, or whole-layer alternatives.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SpaceRow {
    Fields(Row),
    Layers(LayerRow),
}

/// A search space loaded from `configs/space-mixnet.json` or a user file.
#[derive(Clone, Debug)]
pub struct SearchSpace {
    /// Read-only by convention: decode relies on them matching the rows.
    pub decisions: Vec<Decision>,
    pub name: String,
    /// What the space is, in the file's words (`nas space` shows it).
    pub description: Option<String>,
    /// The file it came from, for messages.
    pub source: String,
    /// The document as read, so that what was built on the space can carry it (a supernet
    /// checkpoint) and [`SearchSpace::parse`] it back.
    pub text: String,
    pub base: Base,
    /// The input side its networks are judged at (set on every decoded arch), if the space has
    /// one; latency and proxy training follow it.
    pub resolution: Option<usize>,
    rows: Vec<SpaceRow>,
    /// What each decision sets.
    slots: Vec<Slot>,
}

/// What a decision sets: a field of a field row, or the layer of a layer row.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Field(usize, Field),
    Layer(usize),
}

/// What one row is set to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Choice {
    Fields(Pick),
    Layer(usize),
}

/// What a search space adds to a row: which fields are decisions, canonical picks, counting and
/// uniform sampling.
impl Row {
    /// Whether a field is a decision: it has several values, and it matters for some choice.
    fn varies(&self, f: Field) -> bool {
        self.count(f) > 1 && (f != Field::ExpandGroups || self.expand.iter().any(|&e| e != 1))
    }

    /// The choice `expand_groups` takes when expand is 1 and the field is moot.
    fn moot_expand_groups(&self) -> usize {
        self.expand_groups.iter().position(|&g| g == 1).unwrap_or(0)
    }

    fn canonicalise(&self, p: &mut Pick) {
        if self.expand[p[Field::Expand]] == 1 {
            p[Field::ExpandGroups] = self.moot_expand_groups();
        }
    }

    /// The canonical pick (layers unset) whose first layer is exactly `b`, if any.
    fn find(&self, b: &Block) -> Option<Pick> {
        let mut p = Pick::default();
        p[Field::Kernels] = self.kernels.iter().position(|k| *k == b.kernels)?;
        p[Field::Expand] = self.expand.iter().position(|&e| e == b.expand)?;
        p[Field::ExpandGroups] = match b.expand {
            1 => self.moot_expand_groups(),
            _ => self.expand_groups.iter().position(|&g| g == b.expand_groups)?,
        };
        p[Field::ProjectGroups] = self.project_groups.iter().position(|&g| g == b.project_groups)?;
        p[Field::Se] = self.se.iter().position(|&s| s == b.se)?;
        p[Field::Act] = self.act.iter().position(|&a| a == b.act)?;
        (self.block(&p, true) == *b).then_some(p)
    }

    /// The canonical pick whose layers begin `blocks`, and how many blocks they are. Rows after
    /// a layers choice change width or stride (checked at load), so counting identical repeats
    /// cannot eat into the next row.
    fn find_layers(&self, blocks: &[Block]) -> Option<(Pick, usize)> {
        let mut p = self.find(blocks.first()?)?;
        let repeat = self.block(&p, false);
        let max = self.layers.iter().copied().max().unwrap_or(1);
        let n = 1 + blocks[1..].iter().take(max - 1).take_while(|b| **b == repeat).count();
        p[Field::Layers] = self.layers.iter().position(|&l| l == n)?;
        Some((p, n))
    }

    /// Every canonical pick of the row's block fields (layers left at its first option).
    fn all_picks(&self) -> Vec<Pick> {
        let mut picks = vec![Pick::default()];
        for f in FIELDS.into_iter().filter(|&f| f != Field::Layers) {
            picks = picks
                .into_iter()
                .flat_map(|p| {
                    (0..self.count(f)).map(move |i| {
                        let mut p = p;
                        p[f] = i;
                        p
                    })
                })
                .collect();
        }
        picks.iter_mut().for_each(|p| self.canonicalise(p));
        picks
    }

    /// Distinct architectures of this row: expand 1 does not multiply by the expand groups.
    fn distinct(&self) -> f64 {
        let eg = self.expand_groups.len() as f64;
        let expand: f64 = self.expand.iter().map(|&e| if e == 1 { 1.0 } else { eg }).sum();
        let others = [Field::Kernels, Field::ProjectGroups, Field::Se, Field::Act, Field::Layers];
        expand * others.iter().map(|&f| self.count(f) as f64).product::<f64>()
    }

    /// An expand index, weighted so that every distinct (expand, expand groups) pair is equally
    /// likely.
    fn sample_expand(&self, rng: &mut impl Rng) -> usize {
        let weight = |e: usize| if e == 1 { 1 } else { self.expand_groups.len() };
        let mut r = rng.gen_range(0..self.expand.iter().map(|&e| weight(e)).sum::<usize>());
        for (i, &e) in self.expand.iter().enumerate() {
            if r < weight(e) {
                return i;
            }
            r -= weight(e);
        }
        unreachable!("r is below the total weight")
    }
}

impl SpaceRow {
    pub fn in_ch(&self) -> usize {
        match self {
            SpaceRow::Fields(r) => r.in_ch,
            SpaceRow::Layers(r) => r.in_ch,
        }
    }

    pub fn out(&self) -> usize {
        match self {
            SpaceRow::Fields(r) => r.out,
            SpaceRow::Layers(r) => r.out,
        }
    }

    pub fn stride(&self) -> usize {
        match self {
            SpaceRow::Fields(r) => r.stride,
            SpaceRow::Layers(r) => r.stride,
        }
    }

    fn first_choice(&self) -> Choice {
        match self {
            SpaceRow::Fields(_) => Choice::Fields(Pick::default()),
            SpaceRow::Layers(_) => Choice::Layer(0),
        }
    }

    fn blocks(&self, choice: &Choice) -> Vec<Block> {
        match (self, choice) {
            (SpaceRow::Fields(row), Choice::Fields(p)) => row.blocks(p),
            (SpaceRow::Layers(row), &Choice::Layer(i)) => row.block(i).into_iter().collect(),
            _ => unreachable!("choices are made per row kind"),
        }
    }

    /// The choices of this row that begin `blocks`, with how many blocks each takes. A layer
    /// row lists absent identities last, so unnamed networks get identities after blocks
    /// (as `family::nas_bench_macro_code` gives them).
    fn matches(&self, blocks: &[Block]) -> Vec<(Choice, usize)> {
        match self {
            SpaceRow::Fields(row) => row.find_layers(blocks).map(|(p, n)| (Choice::Fields(p), n)).into_iter().collect(),
            SpaceRow::Layers(row) => {
                let at = |i: usize| row.block(i).map(|b| (blocks.first() == Some(&b)).then_some((Choice::Layer(i), 1)));
                let present = (0..row.layer.len()).filter_map(|i| at(i).flatten());
                let absent = (0..row.layer.len()).filter(|&i| at(i).is_none()).map(|i| (Choice::Layer(i), 0));
                present.chain(absent).collect()
            }
        }
    }

    /// See [`SearchSpace::position_options`].
    fn position_options(&self) -> Vec<Vec<Block>> {
        let mut options: Vec<Vec<Block>> = Vec::new();
        let mut put = |j: usize, b: Block| {
            if options.len() <= j {
                options.resize(j + 1, Vec::new());
            }
            if !options[j].contains(&b) {
                options[j].push(b);
            }
        };
        match self {
            SpaceRow::Layers(row) => {
                (0..row.layer.len()).filter_map(|i| row.block(i)).for_each(|b| put(0, b));
                if options.is_empty() {
                    options.push(Vec::new());
                }
            }
            SpaceRow::Fields(row) => {
                let max_layers = row.layers.iter().copied().max().unwrap_or(1);
                for pick in row.all_picks() {
                    put(0, row.block(&pick, true));
                    (1..max_layers).for_each(|j| put(j, row.block(&pick, false)));
                }
            }
        }
        options
    }

    /// log10 of the row's points: distinct architectures of a field row, alternatives of a
    /// layer row (which may build the same network in different codes, as benchmarks have them).
    fn log10_size(&self) -> f64 {
        match self {
            SpaceRow::Fields(row) => row.distinct().log10(),
            SpaceRow::Layers(row) => (row.layer.len() as f64).log10(),
        }
    }
}

impl SearchSpace {
    /// The embedded default space (`configs/space-mixnet.json`), of which MixNet-S is a point.
    pub fn default_space() -> Self {
        Self::parse(DEFAULT_SPACE.as_bytes(), DEFAULT_SOURCE).expect("the embedded default space is valid")
    }

    /// The space a command line or run config names: `default` for the embedded one, otherwise
    /// the path of a space file.
    pub fn from_spec(spec: &str) -> Result<Self, ArchError> {
        match spec {
            "default" => Ok(Self::default_space()),
            path => Self::load(path),
        }
    }

    /// Loads and checks a space file; errors are one line naming the file and the field.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ArchError> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| error(&source, "", e.to_string()))?;
        Self::parse(&bytes, &source)
    }

    /// Parses and checks a space document; `source` names it in errors.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self, ArchError> {
        let file = file::read(bytes, source)?;
        let name = file.name.clone().unwrap_or_else(|| {
            Path::new(source).file_stem().map_or("space".into(), |s| s.to_string_lossy().into_owned())
        });
        let (rows, inherited) = file::resolve_rows(&file).map_err(|(f, m)| error(source, &f, m))?;
        check::rows(&file.base, &rows, &inherited).map_err(|(f, m)| error(source, &f, m))?;
        if file.resolution == Some(0) {
            return Err(error(source, "resolution", "must be at least 1 (pixels), or null".into()));
        }
        let mut slots = Vec::new();
        let mut decisions = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            match row {
                SpaceRow::Fields(row) => {
                    for f in FIELDS.into_iter().filter(|&f| row.varies(f)) {
                        slots.push(Slot::Field(r, f));
                        decisions.push(Decision { name: format!("row{}.{}", r + 1, f.key()), options: row.labels(f) });
                    }
                }
                SpaceRow::Layers(row) if row.layer.len() > 1 => {
                    slots.push(Slot::Layer(r));
                    decisions.push(Decision { name: format!("row{}.layer", r + 1), options: row.labels() });
                }
                SpaceRow::Layers(_) => {}
            }
        }
        let resolution = file.resolution;
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (source, description) = (source.to_string(), file.description);
        Ok(SearchSpace { decisions, name, description, source, text, base: file.base, resolution, rows, slots })
    }

    /// The same space decoding to `classes` outputs (for proxy data sets).
    pub fn with_classes(mut self, classes: usize) -> Self {
        self.base.classes = classes;
        self
    }

    /// The same space over another base (stem, head, classes, dropout, padding, BN).
    pub fn with_base(mut self, base: Base) -> Self {
        self.base = base;
        self
    }

    pub fn rows(&self) -> &[SpaceRow] {
        &self.rows
    }

    /// Number of options of each decision, in decision order.
    pub fn num_options(&self) -> Vec<usize> {
        self.decisions.iter().map(|d| d.options.len()).collect()
    }

    /// log10 of the number of points: distinct architectures, except that each alternative of
    /// a layer row counts (a benchmark's codes are points even where two build one network).
    pub fn log10_size(&self) -> f64 {
        self.rows.iter().map(SpaceRow::log10_size).sum()
    }

    /// Decodes one choice vector into an architecture; wrong length or an index out of range
    /// is an error naming the decision. Any in-range vector decodes, canonical or not.
    pub fn decode(&self, choices: &[usize]) -> Result<Arch, ArchError> {
        let picks = self.picks(choices)?;
        let blocks = self.rows.iter().zip(&picks).flat_map(|(row, c)| row.blocks(c)).collect();
        let mut arch = self.base.arch(Some(format!("{}:{}", self.name, self.id(&picks))), blocks);
        arch.resolution = self.resolution;
        // The rows were checked at load; this catches a base overridden into something invalid.
        validate(&arch).map_err(|(field, message)| self.error(&field, message))?;
        Ok(arch)
    }

    /// Where each block of `decode(choices)` sits: `(row, position in the row)`, in block order.
    /// Weight sharing keys a layer's weights by this position, so the same tensors serve every
    /// point that puts a block there.
    pub fn block_positions(&self, choices: &[usize]) -> Result<Vec<(usize, usize)>, ArchError> {
        let picks = self.picks(choices)?;
        let rows = self.rows.iter().zip(&picks).enumerate();
        Ok(rows.flat_map(|(r, (row, c))| (0..row.blocks(c).len()).map(move |j| (r, j))).collect())
    }

    /// Every distinct block a position can hold over all points, `[row][position]`: a field row
    /// has one position per layer it may have (the first takes the row's stride and input
    /// width), a layer row one (empty when its only option is an absent identity).
    pub fn position_options(&self) -> Vec<Vec<Vec<Block>>> {
        self.rows.iter().map(SpaceRow::position_options).collect()
    }

    /// The choice vector of `arch`, or `None` when it is not a point of this space. Everything
    /// but `name` and `provenance` must match exactly; where several points build `arch`, the
    /// one its name (`<space>:<id>`) gives is taken, else identities go last.
    pub fn encode(&self, arch: &Arch) -> Option<Vec<usize>> {
        if Base::of(arch) != self.base || arch.resolution != self.resolution {
            return None;
        }
        if let Some(choices) = self.named_point(arch) {
            return Some(choices);
        }
        let picks = self.encode_from(&arch.blocks, 0, 0, &mut HashSet::new())?;
        Some(self.choices(&picks))
    }

    /// The point `arch`'s name gives, if it builds `arch`'s blocks.
    fn named_point(&self, arch: &Arch) -> Option<Vec<usize>> {
        let id = arch.name.as_deref()?.strip_prefix(self.name.as_str())?.strip_prefix(':')?;
        let choices: Vec<usize> = id.bytes().map(|b| DIGITS.iter().position(|&d| d == b)).collect::<Option<_>>()?;
        let decoded = self.decode(&choices).ok()?;
        (decoded.blocks == arch.blocks).then(|| self.canonical(&choices).ok()).flatten()
    }

    /// The choices of rows `r..` that build `blocks[pos..]`; `failed` remembers dead ends, so
    /// the search is linear in rows times blocks.
    fn encode_from(
        &self,
        blocks: &[Block],
        r: usize,
        pos: usize,
        failed: &mut HashSet<(usize, usize)>,
    ) -> Option<Vec<Choice>> {
        if r == self.rows.len() {
            return (pos == blocks.len()).then(Vec::new);
        }
        if failed.contains(&(r, pos)) {
            return None;
        }
        for (choice, n) in self.rows[r].matches(&blocks[pos..]) {
            if let Some(mut rest) = self.encode_from(blocks, r + 1, pos + n, failed) {
                rest.insert(0, choice);
                return Some(rest);
            }
        }
        failed.insert((r, pos));
        None
    }

    /// The canonical form of a choice vector (the one `encode` and `sample` give).
    pub fn canonical(&self, choices: &[usize]) -> Result<Vec<usize>, ArchError> {
        Ok(self.choices(&self.picks(choices)?))
    }

    /// A canonical choice vector drawn uniformly over the points (see [`Self::log10_size`]).
    pub fn sample(&self, rng: &mut impl Rng) -> Vec<usize> {
        let mut picks: Vec<Choice> = self.rows.iter().map(SpaceRow::first_choice).collect();
        // Slots are in row order and expand comes before expand_groups, so the expand choice a
        // row's expand_groups depends on is already made.
        for &slot in &self.slots {
            match (slot, &self.rows[slot_row(slot)], &mut picks[slot_row(slot)]) {
                (Slot::Field(_, f), SpaceRow::Fields(row), Choice::Fields(p)) => {
                    p[f] = match f {
                        Field::Expand => row.sample_expand(rng),
                        Field::ExpandGroups if row.expand[p[Field::Expand]] == 1 => row.moot_expand_groups(),
                        _ => rng.gen_range(0..row.count(f)),
                    }
                }
                (Slot::Layer(_), SpaceRow::Layers(row), c) => *c = Choice::Layer(rng.gen_range(0..row.layer.len())),
                _ => unreachable!("slots are made per row kind"),
            }
        }
        self.choices(&picks)
    }

    /// The choices as one base-36 digit per decision, as used in decoded names.
    fn id(&self, picks: &[Choice]) -> String {
        self.choices(picks).iter().map(|&c| DIGITS[c] as char).collect()
    }

    /// Checks `choices` and spreads them over the rows, canonicalised.
    fn picks(&self, choices: &[usize]) -> Result<Vec<Choice>, ArchError> {
        let n = self.decisions.len();
        if choices.len() < n {
            let msg = format!("missing: got {} choices for {n} decisions", choices.len());
            return Err(self.error(&self.decisions[choices.len()].name, msg));
        }
        if choices.len() > n {
            return Err(self.error("", format!("got {} choices for {n} decisions", choices.len())));
        }
        let mut picks: Vec<Choice> = self.rows.iter().map(SpaceRow::first_choice).collect();
        for ((&slot, &c), d) in self.slots.iter().zip(choices).zip(&self.decisions) {
            if c >= d.options.len() {
                let msg =
                    format!("choice {c} is out of range; use 0 to {} ({})", d.options.len() - 1, d.options.join(", "));
                return Err(self.error(&d.name, msg));
            }
            match (slot, &mut picks[slot_row(slot)]) {
                (Slot::Field(_, f), Choice::Fields(p)) => p[f] = c,
                (_, pick) => *pick = Choice::Layer(c),
            }
        }
        for (row, pick) in self.rows.iter().zip(&mut picks) {
            if let (SpaceRow::Fields(row), Choice::Fields(p)) = (row, pick) {
                row.canonicalise(p);
            }
        }
        Ok(picks)
    }

    fn choices(&self, picks: &[Choice]) -> Vec<usize> {
        let value = |slot: &Slot| match (slot, &picks[slot_row(*slot)]) {
            (Slot::Field(_, f), Choice::Fields(p)) => p[*f],
            (_, Choice::Layer(i)) => *i,
            _ => unreachable!("choices are made per row kind"),
        };
        self.slots.iter().map(value).collect()
    }

    fn error(&self, field: &str, message: String) -> ArchError {
        error(&format!("space {}", self.name), field, message)
    }
}

fn slot_row(slot: Slot) -> usize {
    match slot {
        Slot::Field(r, _) | Slot::Layer(r) => r,
    }
}

/// What is wrong in a space file: (field path, message).
type Failure = (String, String);

fn error(source: &str, field: &str, message: String) -> ArchError {
    ArchError { source: source.to_string(), field: field.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn anonymous(mut arch: Arch) -> Arch {
        arch.name = None;
        arch.provenance = None;
        arch
    }

    #[test]
    fn mixnet_s_is_a_point_of_the_default_space() {
        let space = SearchSpace::default_space();
        let choices = space.encode(&presets::mixnet_s()).expect("mixnet-s is in the default space");
        let arch = space.decode(&choices).unwrap();
        assert_eq!(anonymous(arch.clone()), anonymous(presets::mixnet_s()));
        assert_eq!(space.encode(&arch), Some(choices.clone()));
        let id: String = choices.iter().map(|&c| DIGITS[c] as char).collect();
        assert_eq!(arch.name.as_deref(), Some(format!("mixnet:{id}").as_str()));
        assert_eq!(crate::cost(&arch, 224).total.params, 4_134_606);
    }

    #[test]
    fn every_block_sits_at_a_position_that_offers_it() {
        let macro_space =
            SearchSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json"));
        for space in [SearchSpace::default_space(), macro_space.unwrap()] {
            let options = space.position_options();
            let mut rng = StdRng::seed_from_u64(9);
            for _ in 0..50 {
                let choices = space.sample(&mut rng);
                let arch = space.decode(&choices).unwrap();
                let positions = space.block_positions(&choices).unwrap();
                assert_eq!(positions.len(), arch.blocks.len(), "{}", space.name);
                for (b, &(r, j)) in arch.blocks.iter().zip(&positions) {
                    assert!(options[r][j].contains(b), "{}: row {r} position {j} lacks {b:?}", space.name);
                }
            }
        }
        // NAS-Bench-Macro: a stride-2 row offers the 1x1 conv and both blocks, a stride-1 row
        // the two blocks (its identity is absent).
        let space =
            SearchSpace::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/space-nas-bench-macro.json")).unwrap();
        let counts: Vec<Vec<usize>> =
            space.position_options().iter().map(|r| r.iter().map(Vec::len).collect()).collect();
        assert_eq!(counts, [[3], [2], [3], [2], [2], [3], [2], [2]]);
        assert_eq!(space.block_positions(&[0, 0, 1, 0, 2, 0, 0, 1]).unwrap(), [(0, 0), (2, 0), (4, 0), (5, 0), (7, 0)]);
    }

    #[test]
    fn other_networks_are_not_points() {
        let space = SearchSpace::default_space();
        for arch in [presets::mixnet_m(), presets::mixnet_l(), presets::mobilenetv2(), presets::mnasnet_a1()] {
            assert_eq!(space.encode(&arch), None, "{:?}", arch.name);
        }
        let mut s10 = presets::mixnet_s();
        s10.classes = 10;
        assert_eq!(space.encode(&s10), None);
        let space10 = space.with_classes(10);
        let choices = space10.encode(&s10).unwrap();
        assert_eq!(space10.decode(&choices).unwrap().classes, 10);
        let mut dilated = presets::mixnet_s();
        dilated.blocks[5].dilated = true;
        assert_eq!(space10.with_classes(1000).encode(&dilated), None);
    }

    #[test]
    fn default_space_shape_and_size() {
        let space = SearchSpace::default_space();
        assert!(
            space.description.as_deref().is_some_and(|d| d.starts_with("MnasNet-style")),
            "{:?}",
            space.description
        );
        assert_eq!(space.rows().len(), 11);
        assert_eq!(space.decisions.len(), 72);
        let names: Vec<&str> = space.decisions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            &names[..7],
            [
                "row1.kernels",
                "row1.expand",
                "row1.expand_groups",
                "row1.project_groups",
                "row1.se",
                "row1.act",
                "row1.layers"
            ]
        );
        assert!(names.contains(&"row5.layers") && !names.contains(&"row4.layers"));
        assert_eq!(space.decisions[0].options, ["3", "3.5", "3.5.7", "3.5.7.9", "3.5.7.9.11"]);
        assert_eq!(space.decisions[4].options, ["none", "0.25", "0.5"]);
        // Per row: 5 kernels x 3 SE x 2 act x 2 project groups x (1 + 2 + 2) expand/groups pairs.
        let want = 6.0 * 1200f64.log10() + 5.0 * 300f64.log10();
        assert!((space.log10_size() - want).abs() < 1e-9, "{}", space.log10_size());
        assert!((space.log10_size() - 30.8607).abs() < 1e-4);
        assert_eq!(space.num_options().iter().filter(|&&n| n == 4).count(), 6);
    }

    #[test]
    fn seeded_sampling_is_deterministic() {
        let space = SearchSpace::default_space();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..5).map(|_| space.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    /// A one-row space small enough to enumerate every choice vector.
    const TINY: &str = r#"{"format": "mixnas.space/1", "name": "tiny",
        "base": {"stem": {"in": 3, "out": 8, "kernel": 3, "stride": 2}, "head": {"width": 32},
                 "classes": 10, "dropout": 0.0, "padding": "tf-same", "bn": {"eps": 0.001, "momentum": 0.01}},
        "rows": [{"in": 8, "out": 8, "stride": 1, "kernels": [[3], [3, 5]], "expand": [1, 3, 6],
                  "expand_groups": [1, 2], "project_groups": [1], "se": [null, 0.5], "act": ["swish"],
                  "layers": [1, 2]}]}"#;

    #[test]
    fn size_counts_distinct_architectures_and_sampling_covers_them_evenly() {
        let space = SearchSpace::parse(TINY.as_bytes(), "tiny.json").unwrap();
        assert_eq!(space.num_options(), [2, 3, 2, 2, 2]);
        let mut distinct = std::collections::HashMap::new();
        for n in 0..48 {
            let c = [n % 2, n / 2 % 3, n / 6 % 2, n / 12 % 2, n / 24 % 2];
            let arch = space.decode(&c).unwrap();
            assert_eq!(space.encode(&arch), Some(space.canonical(&c).unwrap()));
            distinct.insert(arch.to_json(), 0usize);
        }
        assert_eq!(distinct.len(), 40);
        assert!((space.log10_size() - 40f64.log10()).abs() < 1e-12);
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..40_000 {
            *distinct.get_mut(&space.decode(&space.sample(&mut rng)).unwrap().to_json()).unwrap() += 1;
        }
        // 1000 expected each; a binomial standard deviation is about 31.
        assert!(distinct.values().all(|&n| (850..1150).contains(&n)), "{distinct:?}");
    }

    #[test]
    fn bad_choice_vectors_name_the_decision() {
        let space = SearchSpace::default_space();
        let mut c = space.encode(&presets::mixnet_s()).unwrap();
        assert_eq!(
            space.decode(&c[..70]).unwrap_err().to_string(),
            "space mixnet: row11.act: missing: got 70 choices for 72 decisions"
        );
        c.push(0);
        assert_eq!(space.decode(&c).unwrap_err().to_string(), "space mixnet: got 73 choices for 72 decisions");
        c.pop();
        c[20] = 7;
        assert_eq!(
            space.decode(&c).unwrap_err().to_string(),
            "space mixnet: row4.kernels: choice 7 is out of range; use 0 to 4 (3, 3.5, 3.5.7, 3.5.7.9, 3.5.7.9.11)"
        );
        let bad = SearchSpace::default_space().with_classes(0);
        assert_eq!(bad.decode(&vec![0; 72]).unwrap_err().to_string(), "space mixnet: classes: must be at least 1");
    }

    /// The one-line error of the default space after `edit`.
    pub(super) fn broken(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPACE).unwrap();
        edit(&mut v);
        let e = SearchSpace::parse(v.to_string().as_bytes(), "s.json").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    /// Two layer rows around a field row: identity is absent in the second, a conv in the first.
    pub(super) const LAYERED: &str = r#"{"format": "mixnas.space/1", "name": "layered", "resolution": 32,
        "base": {"stem": {"in": 3, "out": 8, "kernel": 3, "stride": 1}, "head": {"width": 32},
                 "classes": 10, "dropout": 0.0, "padding": "pytorch-symmetric", "bn": {"eps": 0.001, "momentum": 0.01}},
        "rows": [{"in": 8, "out": 16, "stride": 2, "layer": ["identity", {"kernels": [3], "expand": 3, "act": "relu"}]},
                 {"in": 16, "out": 16, "stride": 1, "kernels": [[3], [5]], "expand": [1], "expand_groups": [1],
                  "project_groups": [1], "se": [null], "act": ["relu"], "layers": [1]},
                 {"in": 16, "out": 16, "stride": 1, "layer": [{"kernels": [5], "expand": 3, "act": "relu"}, "identity"]}]}"#;

    #[test]
    fn layer_rows_decode_whole_layers_and_encode_back() {
        let space = SearchSpace::parse(LAYERED.as_bytes(), "layered.json").unwrap();
        assert_eq!(
            space.decisions.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["row1.layer", "row2.kernels", "row3.layer"]
        );
        assert_eq!(space.decisions[0].options, ["conv1x1", "mb3_k3_relu"]);
        assert_eq!(space.decisions[2].options, ["mb3_k5_relu", "identity"]);
        assert!((space.log10_size() - 8f64.log10()).abs() < 1e-12);
        let arch = space.decode(&[0, 1, 1]).unwrap();
        assert_eq!(arch.name.as_deref(), Some("layered:011"));
        assert_eq!(arch.resolution, Some(32));
        assert_eq!(arch.blocks.len(), 2);
        assert!(arch.blocks[0].is_plain_conv() && arch.blocks[0].stride == 2);
        for n in 0..8 {
            let c = [n % 2, n / 2 % 2, n / 4];
            let arch = space.decode(&c).unwrap();
            assert_eq!(space.encode(&arch), Some(c.to_vec()));
            // Here no two points build one network, so the name is not needed.
            assert_eq!(space.encode(&Arch { name: None, ..arch.clone() }), Some(c.to_vec()));
            assert_eq!(space.encode(&Arch { resolution: None, ..arch }), None);
        }
    }

    /// The one-line error of [`LAYERED`] with its first row's layer list replaced by `layer`.
    pub(super) fn broken_layers(layer: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(LAYERED).unwrap();
        v["rows"][0]["layer"] = serde_json::from_str(layer).unwrap();
        let e = SearchSpace::parse(v.to_string().as_bytes(), "s.json").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn a_zero_resolution_is_refused() {
        let mut v: serde_json::Value = serde_json::from_str(LAYERED).unwrap();
        v["resolution"] = serde_json::json!(0);
        let e = SearchSpace::parse(v.to_string().as_bytes(), "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json: resolution: must be at least 1"), "{e}");
    }

    #[test]
    fn name_defaults_to_the_file_stem() {
        let v = TINY.replace(r#""name": "tiny","#, "");
        assert_eq!(SearchSpace::parse(v.as_bytes(), "dir/small.json").unwrap().name, "small");
    }

    proptest::proptest! {
        #[test]
        fn sampled_points_decode_valid_and_encode_back(seed in proptest::num::u64::ANY) {
            let space = SearchSpace::default_space();
            let mut rng = StdRng::seed_from_u64(seed);
            let choices = space.sample(&mut rng);
            let arch = space.decode(&choices).unwrap();
            proptest::prop_assert!(validate(&arch).is_ok());
            proptest::prop_assert_eq!(space.encode(&arch), Some(choices.clone()));
            proptest::prop_assert_eq!(space.canonical(&choices).unwrap(), choices);
        }

        #[test]
        fn any_in_range_vector_decodes_to_its_canonical_point(seed in proptest::num::u64::ANY) {
            let space = SearchSpace::default_space();
            let mut rng = StdRng::seed_from_u64(seed);
            let choices: Vec<usize> = space.num_options().iter().map(|&n| rng.gen_range(0..n)).collect();
            let arch = space.decode(&choices).unwrap();
            proptest::prop_assert_eq!(space.encode(&arch), Some(space.canonical(&choices).unwrap()));
        }
    }
}
