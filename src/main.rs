//! The `gmu` command line: a thin layer over the library (see `gmu --help`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
