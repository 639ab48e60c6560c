//! The operator's and integrator's subcommands (everything but `serve`).

pub mod admin;
pub mod bench;
pub mod checksum;
pub mod config_check;
pub mod demo;
pub mod map;
pub mod simulate;
