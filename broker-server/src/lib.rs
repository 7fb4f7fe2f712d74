//! The broker: worker queue, the `Broker` remote trait and its service (built in its own issue).

pub mod queue;
pub mod service;
