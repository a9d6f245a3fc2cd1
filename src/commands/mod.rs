//! One file per subcommand: each resolves its settings, hands over to the engine and says how
//! the command ended. No logic of their own beyond that wiring.

mod completions;
mod extract;
mod reconcile;
mod schema;

use crate::cli::{Cli, Command, Table};
use crate::error::Outcome;
use crate::unit::{self, Dataset};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::CallOutcomes(args) => extract::run(&args, unit::CALL_OUTCOMES),
        Command::ProductRegistrations(args) => extract::run(&args, unit::PRODUCT_REGISTRATIONS),
        Command::Reconcile(args) => reconcile::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Completions { shell } => completions::run(shell),
    }
}

fn dataset(table: Table) -> Dataset {
    match table {
        Table::CallOutcomes => unit::CALL_OUTCOMES,
        Table::ProductRegistrations => unit::PRODUCT_REGISTRATIONS,
    }
}
