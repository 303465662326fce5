//! The `backprop` command: thin over the library; it parses flags, calls, and prints.

mod bench;
mod common;
mod demo;
mod demo_network;
mod diff;
mod dist;
mod eval;
mod explore;
mod grad;
mod gradcheck;
mod predict;
mod privacy;
mod sample;
mod stdout;
mod train;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    ///
    /// Output files (--out, --checkpoint, --log, --plot) are written whole or not at all:
    /// to a temporary file, then renamed over a regular file. Only regular files are
    /// replaced: a directory, a device such as /dev/null, or a FIFO is refused. A symbolic
    /// link is followed: the file it points to is written and the link stays a link. An
    /// output that is an input of the run (--data, --test, --resume) or another of its
    /// outputs is refused before training starts.
    ///
    /// Ctrl-C lets the epoch in progress finish, saves a checkpoint, and ends with status
    /// 130; `backprop train --resume CHECKPOINT` then goes on where the run stopped.
    Train(train::Args),
    /// Evaluate a saved model on a data set: accuracy, cost, confusion matrix.
    ///
    /// --plot is written as train's outputs are: whole, over a regular file only, through
    /// a symbolic link to the file it names, never over --model or the data.
    Eval(eval::Args),
    /// Predict the class of each row of a CSV file.
    Predict(predict::Args),
    /// Training and inference samples per second of three networks on 28x28 inputs.
    ///
    /// The fully connected networks 784-30-10 (nielsen), 784-128-64-10 (small) and
    /// 784-1024-1024-10 (wide), on synthetic data, timed as bench/pytorch_mlp.py times
    /// PyTorch.
    Bench(bench::Args),
    /// Differentiate a program in forward and reverse mode.
    Diff(diff::Args),
    /// Walk through the post's Figure 1 (or, with --network, its Figure 2).
    Demo(demo::Args),
    /// J and dJ/dtheta of a saved model on one batch (safetensors or printed).
    ///
    /// --out is written as train's outputs are: whole, over a regular file only, through
    /// a symbolic link to the file it names, never over --model, --inputs or --targets.
    Grad(grad::Args),
    /// Check backpropagation against finite differences on a random network.
    Gradcheck(gradcheck::Args),
    /// Generate text with a character model, one character at a time.
    Sample(sample::Args),
    /// Serve the post's figures as a page to play with, on 127.0.0.1 until Ctrl-C.
    ///
    /// The graph of Figure 1 (or any program of `diff`) stepped through in forward and
    /// reverse mode; the network of Figure 2 walked through the four equations; a
    /// playground that trains a small network on points of the plane. The page and its
    /// JSON API are served by this process, with nothing fetched from elsewhere.
    Explore(explore::Args),
    /// The epsilon that private training's steps spend (or, with --epsilon, the noise a
    /// budget needs), by the Rényi-DP accountant of Opacus.
    Privacy(privacy::Args),
}

fn main() -> std::process::ExitCode {
    // --help, --version, and every usage error with clap's whole message: the list of
    // commands, the possible values, "a similar argument exists".
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The flags given on the command line, as opposed to defaults: `train --resume` takes
    // the others from the checkpoint.
    let given: Vec<String> = matches
        .subcommand()
        .map(|(_, m)| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string())
                .collect()
        })
        .unwrap_or_default();
    let result: anyhow::Result<()> = match cli.command {
        Command::Train(args) => dist::train(args, &given),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Grad(args) => grad::run(args),
        Command::Gradcheck(args) => gradcheck::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Explore(args) => explore::run(args),
        Command::Privacy(args) => privacy::run(args),
    };
    match result {
        // The work is done and its files are written; only the printing was cut short.
        Ok(()) if stdout::closed() => std::process::ExitCode::from(stdout::BROKEN_PIPE_STATUS),
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<common::Stopped>() {
            Some(stopped) => {
                errln!("{}", stopped.message);
                std::process::ExitCode::from(stopped.status)
            }
            None => {
                errln!("error: {}", message(&e));
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// The error and its causes on one line, each cause once: an error that already quotes
/// its cause (`m.safetensors: No such file or directory`) is not followed by it again.
fn message(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if text.starts_with(&line) {
            // The cause repeats its context first (`--data` then `--data "xor:0": ...`).
            line = text;
        } else {
            line = format!("{line}: {text}");
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let file = backprop::model_file::ModelFileError::Io {
            path: "m.safetensors".into(),
            source: io,
        };
        let e = anyhow::Error::new(file).context("--model");
        assert_eq!(
            message(&e),
            "--model: m.safetensors: No such file (os error 2)"
        );
        let e = anyhow::anyhow!("--data \"xor:0\": bad size").context("--data");
        assert_eq!(message(&e), "--data \"xor:0\": bad size");
    }
}
