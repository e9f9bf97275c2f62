//! The `sck` binary: parses the command line and hands off to `sck_gateway::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    sck_gateway::cli::main()
}
