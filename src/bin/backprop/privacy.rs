//! `backprop privacy`: the (epsilon, delta) of private training's steps, or the noise a
//! budget needs, by the Rényi-DP accountant (Opacus's `RDPAccountant`).

use anyhow::bail;
use backprop::graph::format_number;
use backprop::privacy::{noise_for_epsilon, Accountant};
use serde_json::{json, Value};

/// The privacy spent by private training, or the noise that a budget needs.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("given").required(true).args(["noise", "epsilon"]))]
pub struct Args {
    /// The noise multiplier sigma (the noise's standard deviation over the clipping norm).
    #[arg(long, allow_negative_numbers = true)]
    noise: Option<f64>,
    /// Instead of --noise: the epsilon to stay within; prints the noise needed.
    #[arg(long, allow_negative_numbers = true)]
    epsilon: Option<f64>,
    /// The sample rate q: expected batch size over training examples, in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    sample_rate: f64,
    /// The number of steps (batches), at least 1.
    #[arg(long)]
    steps: u64,
    /// delta, in (0, 1): usually below 1 / (training examples).
    #[arg(long, allow_negative_numbers = true)]
    delta: f64,
    /// Print one JSON object: epsilon, alpha, noise, sample_rate, steps, delta.
    #[arg(long)]
    json: bool,
}

/// A number as JSON: the number, or "inf" / "nan" as a string, as `diff --json` does.
fn number(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(format_number(x))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (q, delta, steps) = (args.sample_rate, args.delta, args.steps);
    if !(q > 0.0 && q <= 1.0) {
        bail!("--sample-rate {}: must be in (0, 1]", format_number(q));
    }
    if steps == 0 {
        bail!("--steps 0: must be at least 1");
    }
    if !(delta > 0.0 && delta < 1.0) {
        bail!("--delta {}: must be in (0, 1)", format_number(delta));
    }
    let sigma = match (args.noise, args.epsilon) {
        (Some(sigma), _) => {
            if !(sigma >= 0.0 && sigma.is_finite()) {
                bail!(
                    "--noise {}: must be a finite number >= 0",
                    format_number(sigma)
                );
            }
            sigma
        }
        (None, Some(eps)) => {
            if !(eps > 0.0 && eps.is_finite()) {
                bail!(
                    "--epsilon {}: must be a finite number > 0",
                    format_number(eps)
                );
            }
            noise_for_epsilon(eps, delta, q, steps)
                .map_err(|e| anyhow::anyhow!("--epsilon {}: {e}", format_number(eps)))?
        }
        (None, None) => unreachable!("clap requires --noise or --epsilon"),
    };
    let mut acc = Accountant::new();
    acc.add_steps(sigma, q, steps)?;
    let spent = acc.spent(delta)?;
    if args.json {
        let out = json!({
            "epsilon": number(spent.epsilon),
            "alpha": number(spent.alpha),
            "noise": sigma,
            "sample_rate": q,
            "steps": steps,
            "delta": delta,
        });
        crate::outln!("{out}");
        return Ok(());
    }
    let setting = format!(
        "sample rate {}, {steps} steps, delta {delta:e}",
        format_number(q),
    );
    match args.epsilon {
        Some(target) => crate::outln!(
            "noise {} for epsilon at most {} ({setting}): epsilon {:.4} at Rényi order {}",
            format_number(sigma),
            format_number(target),
            spent.epsilon,
            format_number(spent.alpha)
        ),
        None => crate::outln!(
            "epsilon {:.4} at Rényi order {} (noise {}, {setting})",
            spent.epsilon,
            format_number(spent.alpha),
            format_number(sigma)
        ),
    }
    Ok(())
}
