//! The `nas` binary: everything lives in `search::cli`.

// candle's backward allocates and frees large buffers per op; the system allocator makes that
// page-fault bound.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    search::alloc::keep_freed_memory();
    std::process::exit(search::cli::main_impl());
}
