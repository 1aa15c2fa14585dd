//! Training: the model-independent pieces (optimisers, learning-rate schedules, the loss, a
//! weight EMA; checkpoints are read and written through [`crate::checkpoint`]), the data a run is prepared on ([`prepared`]), full
//! training into a run directory ([`run_dir`]) and the proxy training that scores a search
//! candidate ([`proxy`]). Parameters are always `(name, Var)` pairs so that optimiser state, EMA
//! shadows and checkpoints share the model's key space.

pub mod ema;
pub mod init;
pub mod loss;
pub mod optim;
pub mod prepared;
pub mod proxy;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

#[cfg(test)]
pub(crate) mod fixtures {
    use super::prepared::{DataSpec, PreparedData};

    /// 24 images per class of the default data, 4 of them held out for validation.
    pub(crate) fn small_data() -> PreparedData {
        let spec = DataSpec {
            source: "default".into(),
            train_per_class: Some(24),
            val_per_class: Some(4),
            augment: Some(true),
            seed: 3,
        };
        PreparedData::load(&spec).unwrap()
    }
}
