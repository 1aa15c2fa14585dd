//! placeholder
pub struct SearchSpace;
pub struct Decision;
