//! The `nas` binary: the command line over the `space`, `evaluator` and `search` libraries, the
//! HTML reports, the paper's experiments and the allocator setup. The libraries know nothing of
//! clap or of this binary.

mod alloc;
mod cli;
mod experiment;
mod report;

// candle's backward allocates and frees large buffers per op; the system allocator makes that
// page-fault bound.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    alloc::keep_freed_memory();
    std::process::exit(cli::main_impl());
}
