use clap::Parser;

fn main() -> std::process::ExitCode {
    cube_extract::main_with(cube_extract::cli::Cli::parse())
}
