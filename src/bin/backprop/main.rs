//! The `backprop` command: thin over the library; it parses flags, calls, and prints.

// The lead wires `demo_network::run` to `backprop demo --network`.
#[allow(dead_code)]
mod demo_network;
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
    /// Check backpropagation against finite differences on a random network.
    Gradcheck(gradcheck::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
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
