//! Shared bits of the pbrs examples.
