//! placeholder while the runtime is written
