//! The `nas` binary: everything lives in `search::cli`.

// candle's backward allocates and frees large buffers per op; the system allocator makes that
// page-fault bound.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Training frees and reallocates the same large buffers every step; returning them to the
    // OS as huge pages makes each step fault and zero them again. Users can still override.
    if std::env::var_os("MIMALLOC_ALLOW_LARGE_OS_PAGES").is_none() {
        std::env::set_var("MIMALLOC_ALLOW_LARGE_OS_PAGES", "0");
    }
    std::process::exit(search::cli::main_impl());
}
