//! The `hark` binary: parse the command line, set up logging, run, turn the result into an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hark::cli::Cli::parse();
    hark::logging::init(&cli.log);
    match hark::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hark: {}", hark::logging::error_chain(&e));
            hark::exit::code_for(&e)
        }
    }
}
