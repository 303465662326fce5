//! The `backprop` command: thin over the library; it parses flags, calls, and prints.

mod bench;
mod common;
mod demo;
mod demo_network;
mod diff;
mod eval;
mod grad;
mod gradcheck;
mod predict;
mod stdout;
mod train;

use clap::{Parser, Subcommand};

/// Derivatives by backpropagation: differentiate expressions, train and explain networks.
#[derive(Parser)]
#[command(name = "backprop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train a network on a data set (the built-in digits by default).
    Train(train::Args),
    /// Evaluate a saved model on a data set: accuracy, cost, confusion matrix.
    Eval(eval::Args),
    /// Predict the class of each row of a CSV file.
    Predict(predict::Args),
    /// Training and inference samples per second on the networks of issue #5.
    Bench(bench::Args),
    /// Differentiate a program in forward and reverse mode.
    Diff(diff::Args),
    /// Walk through the seed's Figure 1 (or, with --network, its Figure 2).
    Demo(demo::Args),
    /// J and dJ/dtheta of a saved model on one batch (safetensors or printed).
    Grad(grad::Args),
    /// Check backpropagation against finite differences on a random network.
    Gradcheck(gradcheck::Args),
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and every usage error with clap's whole message: the list of
        // commands, the possible values, "a similar argument exists".
        Err(e) => e.exit(),
    };
    let result: anyhow::Result<()> = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Grad(args) => grad::run(args),
        Command::Gradcheck(args) => gradcheck::run(args),
    };
    match result {
        // The work is done and its files are written; only the printing was cut short.
        Ok(()) if stdout::closed() => std::process::ExitCode::from(stdout::BROKEN_PIPE_STATUS),
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
