//! Criterion benchmarks live in `benches/kernels.rs`; run `cargo bench -p footprint-benches`.
