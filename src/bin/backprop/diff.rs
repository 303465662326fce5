//! `backprop diff`: differentiate a small program in forward and reverse mode.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use backprop::program::{parse_bindings, Analysis, Mode, Program, VariablePaths, PATH_LIMIT};

/// Differentiate a program: `c = a + b; d = a * b; o = 0.5 * c * d` --at a=2,b=3.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The program: statements `name = expr` separated by ';' or newlines; the last is the
    /// output.
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
    /// Which mode(s) to run.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    pub mode: ModeArg,
    /// Also list every path from each variable to the output (sum over paths).
    #[arg(long)]
    pub paths: bool,
    /// Write the graph in Graphviz DOT to this file.
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

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
    let program = Program::compile(&source, &at).with_context(|| origin.clone())?;
    let analysis = program.analyse(args.mode.into());
    let paths = if args.paths {
        Some(program.paths(PATH_LIMIT).context("--paths")?)
    } else {
        None
    };
    if let Some(dot) = &args.dot {
        write_atomically(dot, &program.to_dot())
            .with_context(|| format!("--dot {}", dot.display()))?;
    }
    if args.json {
        crate::outln!("{}", serde_json::to_string(&analysis)?);
    } else {
        crate::out!("{}", render(&analysis, paths.as_deref()));
    }
    Ok(())
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
        s += &format!("  {name} = {v}\n");
    }
    let o = &a.output;
    let modes = [
        ("forward mode (one pass per variable)", &a.forward),
        ("reverse mode (one pass from the output)", &a.reverse),
    ];
    for (title, report) in modes {
        if let Some(r) = report {
            s += &format!("{title}: {} local-derivative multiply-adds\n", r.work);
            for (name, d) in &r.gradient {
                s += &format!("  d{o}/d{name} = {d}\n");
            }
        }
    }
    if let Some(paths) = paths {
        s += "sum over paths\n";
        s += &render_paths(o, paths);
    }
    s
}

/// Each variable's paths to the output, their products and sum.
pub fn render_paths(o: &str, paths: &[VariablePaths]) -> String {
    let mut s = String::new();
    for vp in paths {
        s += &format!(
            "  d{o}/d{} = {} over {} path(s)\n",
            vp.name,
            vp.sum,
            vp.paths.len()
        );
        for p in &vp.paths {
            let factors: Vec<String> = p.factors.iter().map(|f| f.to_string()).collect();
            s += &format!(
                "    {}: {} = {}\n",
                p.names.join(" -> "),
                factors.join(" * "),
                p.product
            );
        }
    }
    s
}
