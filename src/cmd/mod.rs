//! The subcommands, one file each: its clap arguments and its `run`. Part of the binary, not of
//! the library's API.
//!
//! This module owns what several tools share (the help printed when Redis does not answer). It
//! does not own the top-level parser, the runtime or the exit status of errors: `main` does.

pub mod bench;
pub mod checksum;
pub mod config_check;
pub mod demo;
pub mod hooks;
pub mod map;
pub mod serve;
pub mod simulate;

/// Explains how to get a Redis when none answers.
fn no_redis_help(url: &str) -> String {
    format!(
        "Redis is not answering on {url}.\n\
         The demo needs one (nothing is kept: it uses keys and a channel of its own). Start one with\n\
         \n    redis-server --daemonize yes --save '' --appendonly no\n\
         \n(on Debian or Ubuntu: sudo apt install redis-server), or with Docker:\n\
         \n    docker run -d --name redis -p 6379:6379 redis:7-alpine\n\
         \nthen run `bbb-webhooks demo` again (or pass --redis-url)."
    )
}
