//! The `backprop` command: thin over the library; it parses flags, calls, and prints.

mod demo;
mod diff;
mod gradcheck;

use clap::{Parser, Subcommand};

/// Derivatives by backpropagation: differentiate expressions, train and explain networks.
#[derive(Parser)]
#[command(name = "backprop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Differentiate a program in forward and reverse mode.
    Diff(diff::Args),
    /// Walk through the seed's Figure 1.
    Demo(demo::Args),
    /// Check backpropagation against finite differences on a random network.
    Gradcheck(gradcheck::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Diff(args) => diff::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Gradcheck(args) => gradcheck::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
