//! The operator's and integrator's subcommands (everything but `serve`), part of the binary:
//! they are not in the library's API.

pub mod bench;
pub mod checksum;
pub mod config_check;
pub mod demo;
pub mod hooks;
pub mod map;
pub mod simulate;
