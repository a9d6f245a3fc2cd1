use clap::Parser;

fn main() -> std::process::ExitCode {
    let outcome = cube_extract::commands::run(cube_extract::cli::Cli::parse());
    std::process::ExitCode::from(outcome.exit_code())
}
