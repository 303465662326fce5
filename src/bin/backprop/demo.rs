//! `backprop demo`: the post's Figure 1, walked through as the post does.

use backprop::program::{figure_1_inputs, Mode, Program, FIGURE_1, PATH_LIMIT};

use backprop::graph::format_number;

use crate::diff::{plural, render_paths};

/// Walk through the post's Figure 1 (c = a + b, d = a b, o = c d / 2 at a = 2, b = 3), or
/// with `--network` its Figure 2 (a 2-4-4-3 network, one example, the four equations).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object (the keys of `diff --json`) instead of the walk-through.
    #[arg(long)]
    pub json: bool,
    /// Walk through Figure 2 instead: z, a, then delta^4, delta^3, delta^2, dC/dW, dC/db.
    #[arg(long)]
    pub network: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.network {
        return crate::demo_network::run(args.json);
    }
    let program = Program::compile(FIGURE_1, &figure_1_inputs())?;
    let a = program.analyse(Mode::Both);
    if args.json {
        crate::outln!("{}", serde_json::to_string(&a)?);
        return Ok(());
    }
    let (forward, reverse) = (a.forward.as_ref(), a.reverse.as_ref());
    let (Some(forward), Some(reverse)) = (forward, reverse) else {
        anyhow::bail!("both modes were asked for");
    };
    let tape = program.tape();
    crate::outln!("The post's Figure 1, a = 2, b = 3:");
    for line in FIGURE_1.lines() {
        crate::outln!("  {line}");
    }
    crate::outln!("\n1. Move forward (feed-forward): every node's value.");
    for (name, v) in &a.values {
        crate::outln!("  {name} = {}", format_number(*v));
    }
    let adds = |n: u64| plural(n, "multiply-add", "multiply-adds");
    crate::outln!("\n2. Forward-mode differentiation: one pass from each variable to o.");
    for (name, id) in program.variables() {
        let t = tape.forward_mode(id);
        crate::outln!(
            "  from {name}: do/d{name} = {}   ({})",
            format_number(t[program.output().node]),
            adds(t.work())
        );
    }
    crate::outln!("  total: {}; the derivatives of o with respect to c and d are recomputed in every pass that reaches them.", adds(forward.work));
    crate::outln!(
        "\n3. Reverse-mode differentiation (backpropagation): one pass from o, do/do = 1."
    );
    for (name, d) in &reverse.gradient {
        crate::outln!("  do/d{name} = {}", format_number(*d));
    }
    crate::outln!(
        "  total: {}; each derivative is computed once and stored.",
        adds(reverse.work)
    );
    crate::outln!("\n4. Sum over paths: the derivative is the sum, over every path, of the product of local derivatives. o is computed as (0.5*c)*d, so (0.5*c) is a node of its own.");
    crate::out!("{}", render_paths(&a.output, &program.paths(PATH_LIMIT)?));
    Ok(())
}
