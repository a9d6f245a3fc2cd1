//! One file per subcommand: each resolves its settings, hands over to the engine and says how
//! the command ended. No logic of their own beyond that wiring.

mod completions;
mod extract;
mod read;
mod reconcile;
mod schema;
mod status;
mod vacuum;

use crate::cli::{Cli, Command, Table};
use crate::datasets::{self, Dataset};
use crate::error::Outcome;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::CallOutcomes(args) => extract::run(&args, &[datasets::CALL_OUTCOMES]),
        Command::ProductRegistrations(args) => {
            extract::run(&args, &[datasets::PRODUCT_REGISTRATIONS])
        }
        Command::Customers(args) => extract::run(&args, &[datasets::CUSTOMERS]),
        Command::CustomerStatus(args) => extract::run(&args, &[datasets::CUSTOMER_STATUS]),
        Command::Campaigns(args) => extract::run(&args, &[datasets::CAMPAIGNS]),
        Command::CustomFields(args) => extract::run(&args, &[datasets::CRM_CUSTOM_FIELDS]),
        Command::Sync(args) => extract::run(&args, &datasets::ALL),
        Command::Reconcile(args) => reconcile::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Vacuum(args) => vacuum::run(&args),
        Command::Completions { shell } => completions::run(shell),
    }
}

fn dataset(table: Table) -> Dataset {
    match table {
        Table::CallOutcomes => datasets::CALL_OUTCOMES,
        Table::ProductRegistrations => datasets::PRODUCT_REGISTRATIONS,
        Table::Customers => datasets::CUSTOMERS,
        Table::CustomerStatus => datasets::CUSTOMER_STATUS,
        Table::Campaigns => datasets::CAMPAIGNS,
        Table::CrmCustomFields => datasets::CRM_CUSTOM_FIELDS,
    }
}
