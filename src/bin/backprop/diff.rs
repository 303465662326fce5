//! `backprop diff`: differentiate a small program in forward and reverse mode.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use backprop::graph::format_number;
use backprop::program::{
    parse_bindings, Analysis, Mode, Program, VariablePaths, WithPaths, PATH_LIMIT,
};

/// Differentiate a program: `c = a + b; d = a * b; o = 0.5 * c * d` --at a=2,b=3.
#[derive(clap::Args, Debug)]
#[command(after_help = SYNTAX)]
pub struct Args {
    /// The program: statements `name = expr` separated by ';' or newlines; the last is the
    /// output (see the syntax below).
    #[arg(
        required_unless_present = "file",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    pub program: Option<String>,
    /// Read the program from this file ('-' for standard input).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The inputs' values: name=value,name=value.
    #[arg(
        long,
        value_name = "BINDINGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub at: String,
    /// Which mode(s) to run. `both` skips forward mode, with a note, when variables × graph
    /// nodes exceeds 100,000,000 (it makes one pass over the graph per variable); `forward`
    /// runs it whatever the size.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    pub mode: ModeArg,
    /// Also list every path from each variable to the output (sum over paths), through every
    /// node between: an unnamed one is shown as its expression, e.g. `(w*x)`. Where a node
    /// uses the same value twice (`x*x`), its two parallel edges are merged into one step
    /// whose factor is the sum of both local derivatives, and the line says so. Refused above
    /// 1000 paths, or 100,000 steps along them, in all.
    #[arg(long)]
    pub paths: bool,
    /// Write the graph in Graphviz DOT to this file: each node's name, op, value and
    /// derivative; each edge's local derivative on the edge.
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
    /// Print one JSON object instead of text (numbers in full precision; a derivative that
    /// is not finite is the string "inf", "-inf" or "nan"; with --paths, a key "paths").
    #[arg(long)]
    pub json: bool,
}

/// The language, for `--help`.
const SYNTAX: &str = "\
Syntax:
  statements   name = expr, separated by ';' or newlines; the last is the output (a bare
               expression may end the program; it is then called 'output'). A name is
               assigned once; names used but never assigned are the inputs (--at).
  operators    + - * / and ^ (power; '**' is the same), unary minus; ^ binds tightest and
               to the right (-a^2 = -(a^2), 2^3^2 = 2^9), then * /, then + -.
  functions    exp ln log sqrt sin cos tan tanh sigmoid relu abs; log is the natural
               logarithm (ln). At kinks (relu, abs at 0) the derivative is taken as 0.
  numbers      1, 0.5, .5, 2e-3
  comments     '#' to the end of the line
Output:
  Numbers are shown as the shortest text that reads back exactly, in exponent form when
  |x| >= 1e16 or |x| < 1e-5. Work counts the local-derivative multiply-adds each mode does;
  derivatives with respect to constants are computed by neither. A derivative that is not
  finite (sqrt at 0) is printed as inf or nan with a warning on standard error; d/db a^b
  follows PyTorch: a^b ln a, NaN for a < 0, 0 at a = 0 (b >= 0).
Example:
  backprop diff \"c = a + b; d = a * b; o = 0.5 * c * d\" --at a=2,b=3 --paths";

/// `--mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// One pass per variable.
    Forward,
    /// One pass from the output.
    Reverse,
    /// Both.
    Both,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Forward => Mode::Forward,
            ModeArg::Reverse => Mode::Reverse,
            ModeArg::Both => Mode::Both,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (source, origin) = match (&args.program, &args.file) {
        (Some(p), None) => (p.clone(), "program".to_string()),
        (None, Some(path)) => (read_source(path)?, path.display().to_string()),
        _ => bail!("give either PROGRAM or --file PATH"),
    };
    if let Some(dot) = &args.dot {
        crate::common::check_output("--dot", dot)?;
        let file = args.file.as_deref().map(|f| ("--file", f));
        crate::common::check_distinct(&Vec::from_iter(file), &[("--dot", dot)])?;
    }
    let at = parse_bindings(&args.at).context("--at")?;
    let Differentiated {
        program,
        analysis,
        paths,
    } = differentiate(&source, &origin, &at, args.mode.into(), args.paths)?;
    if let Some(dot) = &args.dot {
        write_atomically(dot, &program.to_dot())
            .with_context(|| format!("--dot {}", dot.display()))?;
    }
    if let Some(skipped) = &analysis.forward_skipped {
        eprintln!("note: {skipped}; --mode forward runs it anyway");
    }
    if let Some(warning) = non_finite_warning(&analysis) {
        eprintln!("{warning}");
    }
    if args.json {
        crate::outln!("{}", json(&analysis, paths.as_deref())?);
    } else {
        crate::out!("{}", render(&analysis, paths.as_deref()));
    }
    Ok(())
}

/// What `diff` computes for a program at a point (and `explore` serves).
pub struct Differentiated {
    /// The compiled program.
    pub program: Program,
    /// Values, each mode's derivatives and work.
    pub analysis: Analysis,
    /// Every path from each variable to the output, when asked for.
    pub paths: Option<Vec<VariablePaths>>,
}

/// Compiles `source` (called `origin` in errors) at the point `at` and differentiates it by
/// `mode`, with the paths if `paths`: the errors are the command's (`program: line 1, ...`,
/// `--paths: ...`).
pub fn differentiate(
    source: &str,
    origin: &str,
    at: &[(String, f64)],
    mode: Mode,
    paths: bool,
) -> anyhow::Result<Differentiated> {
    let program = Program::compile(source, at).with_context(|| origin.to_string())?;
    let analysis = program.analyse(mode);
    let paths = if paths {
        Some(program.paths(PATH_LIMIT).context("--paths")?)
    } else {
        None
    };
    Ok(Differentiated {
        program,
        analysis,
        paths,
    })
}

/// The one line `diff --json` prints: the analysis, and with the paths a key `paths`.
pub fn json(analysis: &Analysis, paths: Option<&[VariablePaths]>) -> serde_json::Result<String> {
    match paths {
        Some(paths) => serde_json::to_string(&WithPaths(analysis, paths)),
        None => serde_json::to_string(analysis),
    }
}

/// One line naming every derivative that is not finite (the first few, and how many more).
fn non_finite_warning(a: &Analysis) -> Option<String> {
    const SHOWN: usize = 5;
    let bad = a.non_finite();
    if bad.is_empty() {
        return None;
    }
    let o = &a.output;
    let mut listed: Vec<String> = bad
        .iter()
        .take(SHOWN)
        .map(|(mode, name, d)| format!("d{o}/d{name} = {} ({mode})", format_number(*d)))
        .collect();
    if bad.len() > SHOWN {
        listed.push(format!("and {} more", bad.len() - SHOWN));
    }
    Some(format!(
        "warning: {} not a finite number: {}",
        plural(bad.len() as u64, "derivative is", "derivatives are"),
        listed.join(", ")
    ))
}

/// `n` and the noun, singular for 1.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn read_source(path: &Path) -> anyhow::Result<String> {
    let mut s = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut s)
            .context("--file -: reading standard input")?;
    } else {
        s = std::fs::read_to_string(path).with_context(|| format!("--file {}", path.display()))?;
    }
    Ok(s)
}

/// Writes `contents` by [`backprop::io::write_atomically`]: whole or not at all, over a
/// regular file only, through a symbolic link to the file it names.
pub fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    Ok(backprop::io::write_atomically(path, contents.as_bytes())?)
}

/// The human-readable report: values, each mode's derivatives and work, the paths.
pub fn render(a: &Analysis, paths: Option<&[VariablePaths]>) -> String {
    let mut s = String::from("values\n");
    for (name, v) in &a.values {
        s += &format!("  {name} = {}\n", format_number(*v));
    }
    let o = &a.output;
    let modes = [
        ("forward mode (one pass per variable)", &a.forward),
        ("reverse mode (one pass from the output)", &a.reverse),
    ];
    for (title, report) in modes {
        if let Some(r) = report {
            let work = plural(
                r.work,
                "local-derivative multiply-add",
                "local-derivative multiply-adds",
            );
            s += &format!("{title}: {work}\n");
            for (name, d) in &r.gradient {
                s += &format!("  d{o}/d{name} = {}\n", format_number(*d));
            }
        }
    }
    if let Some(paths) = paths {
        s += "sum over paths\n";
        s += &render_paths(o, paths);
    }
    s
}

/// Each variable's paths to the output, their factors, products and sum; a step that merges
/// parallel edges (`x*x` uses x twice) says so.
pub fn render_paths(o: &str, paths: &[VariablePaths]) -> String {
    let mut s = String::new();
    for vp in paths {
        s += &format!(
            "  d{o}/d{} = {} over {}\n",
            vp.name,
            format_number(vp.sum),
            plural(vp.paths.len() as u64, "path", "paths")
        );
        for p in &vp.paths {
            let factors: Vec<String> = p.factors.iter().map(|&f| format_number(f)).collect();
            let merged: Vec<String> = p
                .edges
                .iter()
                .enumerate()
                .filter(|(_, &e)| e > 1)
                .map(|(k, e)| format!("{} -> {}: {e} edges merged", p.names[k], p.names[k + 1]))
                .collect();
            let merged = if merged.is_empty() {
                String::new()
            } else {
                format!("   ({})", merged.join("; "))
            };
            s += &format!(
                "    {}: {} = {}{merged}\n",
                p.names.join(" -> "),
                factors.join(" * "),
                format_number(p.product)
            );
        }
    }
    s
}
