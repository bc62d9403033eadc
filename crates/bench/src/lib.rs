//! Placeholder until the benchmarks are built.
