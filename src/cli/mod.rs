//! The operator's and integrator's subcommands (everything but `serve`).

pub mod bench;
pub mod config_check;
pub mod map;
