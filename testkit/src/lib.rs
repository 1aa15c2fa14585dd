//! What the workspace's tests share, as a dev-dependency of each crate: tiny architectures
//! ([`arch`]), CIFAR-10 binary files ([`cifar`]) and seeded bytes ([`bytes`]), the shared
//! fixture folder ([`shared`]), what a test needs and may not find ([`require`]: a failure under
//! `CI=true`, a visible skip elsewhere), float and tensor comparisons ([`float`]), seeded tensors
//! ([`tensor`]) and gradient checks ([`grad`]), and running a built binary ([`process`]).

pub mod arch;
pub mod bytes;
pub mod cifar;
pub mod float;
pub mod grad;
pub mod process;
pub mod require;
pub mod shared;
pub mod tensor;
