//! `ops_bench [THREADS] [REPS]`: one JSON line per op with fast and reference median ms.

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("THREADS and REPS are integers"));
    let threads = args.next().unwrap_or(2);
    let reps = args.next().unwrap_or(9);
    kernels::bench::run_each(threads, reps, "", |t| {
        println!("{}", serde_json::to_string(t).expect("timings serialise"));
    })?;
    Ok(())
}
