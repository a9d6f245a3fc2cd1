//! `cube-extract completions SHELL`: a completion script on stdout.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Outcome;

pub(super) fn run(shell: clap_complete::Shell) -> Outcome {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "cube-extract",
        &mut std::io::stdout(),
    );
    Outcome::Done
}
