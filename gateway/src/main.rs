//! The `sck` binary: parses the command line and hands off to `sck_gateway::cli`.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the request path allocates many small JSON values from
/// several threads, where glibc's arenas cost ~10% of a decision's CPU (scripts/bench-decide.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    sck_gateway::cli::main()
}
