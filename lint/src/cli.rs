//! `agentfleet lint` and `agentfleet netpol`: argument types and entry points.
//!
//! The `agentfleet` binary flattens [`LintArgs`] / [`NetpolArgs`] into its subcommands and
//! calls [`run_lint`] / [`run_netpol`], which write to the given streams and return the exit
//! code, so tests drive them exactly as the binary does.

use std::io::{IsTerminal, Read, Write};

use crate::finding::Severity;
use crate::netpol::{self, Matrix, Verdict};
use crate::report::{self, Format};
use crate::rules::{self, RULES};
use crate::source;
use crate::{LintReport, docs, lint, load_fleet};

/// Exit code: no findings at or above the threshold.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: findings at or above `--fail-on`.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: usage error, unreadable input, or input errors (YAML syntax, schema).
pub const EXIT_INPUT: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
    /// Exit 0 whatever the findings (input errors still exit 2).
    Never,
}

impl FailOn {
    pub fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Error => Some(Severity::Error),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Info => Some(Severity::Info),
            FailOn::Never => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Static checks of fleet manifests.
#[derive(Debug, Clone, clap::Args)]
pub struct LintArgs {
    /// Files, directories (searched recursively for .yaml, .yml and .json) or - for stdin.
    #[arg(value_name = "PATH", required_unless_present_any = ["explain", "list_rules"])]
    pub paths: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Lowest severity that makes the run fail (exit 1).
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Namespace assumed for objects without metadata.namespace (kubectl's default).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Print what a rule checks, why, and how to fix it (ID like AF011, or its name).
    #[arg(long, value_name = "ID")]
    pub explain: Option<String>,
    /// List every rule.
    #[arg(long)]
    pub list_rules: bool,
    /// Colour for the human format.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl LintArgs {
    /// Arguments as the binary's defaults would set them, for `paths`.
    pub fn new(paths: impl IntoIterator<Item = impl Into<String>>) -> LintArgs {
        LintArgs {
            paths: paths.into_iter().map(Into::into).collect(),
            format: Format::Human,
            fail_on: FailOn::Error,
            namespace: "default".into(),
            explain: None,
            list_rules: false,
            color: ColorChoice::Never,
        }
    }
}

/// Output format of `agentfleet netpol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetpolFormat {
    /// A matrix for people, with the decisive policy of every denied connection.
    Table,
    /// The full matrix with every cell's verdicts.
    Json,
}

/// The expected reachability truth table computed from NetworkPolicies.
#[derive(Debug, Clone, clap::Args)]
pub struct NetpolArgs {
    /// Files, directories (searched recursively for .yaml, .yml and .json) or - for stdin.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,
    #[arg(long, value_enum, default_value_t = NetpolFormat::Table)]
    pub format: NetpolFormat,
    /// Namespace assumed for objects without metadata.namespace.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
}

impl NetpolArgs {
    pub fn new(paths: impl IntoIterator<Item = impl Into<String>>) -> NetpolArgs {
        NetpolArgs {
            paths: paths.into_iter().map(Into::into).collect(),
            format: NetpolFormat::Table,
            namespace: "default".into(),
        }
    }
}

/// `agentfleet lint`, reading `-` from the process's stdin.
pub fn run_lint(args: &LintArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    run_lint_with_stdin(args, &mut std::io::stdin().lock(), stdout, stderr)
}

/// `agentfleet lint` with an explicit stdin (for tests and embedding).
pub fn run_lint_with_stdin(
    args: &LintArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    if let Some(id) = &args.explain {
        return match rules::find(id) {
            Some(rule) => write_or_fail(stdout, stderr, docs::explain(rule).as_bytes(), EXIT_CLEAN),
            None => {
                let _ = writeln!(
                    stderr,
                    "error: unknown rule `{id}`; `agentfleet lint --list-rules` lists them"
                );
                EXIT_INPUT
            }
        };
    }
    if args.list_rules {
        let mut text = String::new();
        for rule in RULES {
            text.push_str(&format!(
                "{}  {:<7}  {:<34} {}\n",
                rule.id,
                rule.severity.as_str(),
                rule.name,
                rule.title
            ));
        }
        return write_or_fail(stdout, stderr, text.as_bytes(), EXIT_CLEAN);
    }
    let sources = match source::load(&args.paths, stdin) {
        Ok(sources) => sources,
        Err(err) => {
            let _ = writeln!(stderr, "error: {err}");
            return EXIT_INPUT;
        }
    };
    let report = lint(&sources, &args.namespace);
    let threshold = args.fail_on.threshold();
    if let Err(err) = report::render(
        args.format,
        &report,
        threshold,
        args.color.enabled(),
        stdout,
    ) {
        let _ = writeln!(stderr, "error: cannot write the report: {err}");
        return EXIT_INPUT;
    }
    exit_code(&report, threshold)
}

/// 2 on input errors, 1 on findings at or above the threshold, else 0.
pub fn exit_code(report: &LintReport, threshold: Option<Severity>) -> u8 {
    if report.has_input_errors() {
        EXIT_INPUT
    } else if threshold.is_some_and(|t| report.failing(t).next().is_some()) {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}

fn write_or_fail(stdout: &mut dyn Write, stderr: &mut dyn Write, bytes: &[u8], code: u8) -> u8 {
    match stdout.write_all(bytes) {
        Ok(()) => code,
        Err(err) => {
            let _ = writeln!(stderr, "error: cannot write output: {err}");
            EXIT_INPUT
        }
    }
}

/// `agentfleet netpol`, reading `-` from the process's stdin.
pub fn run_netpol(args: &NetpolArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    run_netpol_with_stdin(args, &mut std::io::stdin().lock(), stdout, stderr)
}

/// `agentfleet netpol` with an explicit stdin. Input errors are printed to stderr and exit 2:
/// a truth table computed from half-read policies would be wrong.
pub fn run_netpol_with_stdin(
    args: &NetpolArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let sources = match source::load(&args.paths, stdin) {
        Ok(sources) => sources,
        Err(err) => {
            let _ = writeln!(stderr, "error: {err}");
            return EXIT_INPUT;
        }
    };
    let (fleet, problems) = load_fleet(&sources, &args.namespace);
    let input_errors: Vec<_> = problems.iter().filter(|p| p.is_input_error()).collect();
    if !input_errors.is_empty() {
        for p in input_errors {
            let _ = writeln!(stderr, "{}: error[{}] {}", p.location, p.rule.id, p.message);
        }
        let _ = writeln!(
            stderr,
            "error: fix the input errors above; the truth table needs every policy"
        );
        return EXIT_INPUT;
    }
    let matrix = netpol::matrix(&fleet);
    let written = match args.format {
        NetpolFormat::Json => serde_json::to_writer_pretty(&mut *stdout, &matrix)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout)),
        NetpolFormat::Table => stdout.write_all(render_table(&matrix, &args.namespace).as_bytes()),
    };
    match written {
        Ok(()) => EXIT_CLEAN,
        Err(err) => {
            let _ = writeln!(stderr, "error: cannot write output: {err}");
            EXIT_INPUT
        }
    }
}

/// The matrix as text: numbered destination columns, one row per source, `ok` / `E` (egress
/// denied) / `I` (ingress denied) / `EI` cells, then the deciding policies of denied cells.
pub fn render_table(matrix: &Matrix, default_namespace: &str) -> String {
    let mut out = String::new();
    out.push_str("Expected reachability (a connection needs the source's egress AND the destination's ingress)\n");
    out.push_str(&format!("Objects without a namespace are placed in `{default_namespace}`; * marks endpoints the input does not define (stand-ins).\n\n"));
    out.push_str("Destinations:\n");
    for (i, col) in matrix.cols.iter().enumerate() {
        let star = if col.from_input { "" } else { " *" };
        out.push_str(&format!("  [{:>2}] {}{star}\n", i + 1, col.label()));
    }
    let name_width = matrix
        .rows
        .iter()
        .map(|r| r.name.len() + usize::from(!r.from_input) * 2)
        .max()
        .unwrap_or(4)
        .max(9);
    out.push_str(&format!("\n{:<name_width$} ", "from \\ to"));
    for i in 0..matrix.cols.len() {
        out.push_str(&format!("{:>4}", i + 1));
    }
    out.push('\n');
    for (r, row) in matrix.rows.iter().enumerate() {
        let name = if row.from_input {
            row.name.clone()
        } else {
            format!("{} *", row.name)
        };
        out.push_str(&format!("{name:<name_width$} "));
        for cell in &matrix.cells[r] {
            let code = match (cell.egress.allows(), cell.ingress.allows()) {
                (true, true) => "ok",
                (false, true) => "E",
                (true, false) => "I",
                (false, false) => "EI",
            };
            out.push_str(&format!("{code:>4}"));
        }
        out.push('\n');
    }
    out.push_str("\nok = allowed, E = denied by the source's egress policies, I = denied by the destination's ingress policies\n");
    let mut denied = Vec::new();
    for (r, row) in matrix.rows.iter().enumerate() {
        for (c, col) in matrix.cols.iter().enumerate() {
            let cell = &matrix.cells[r][c];
            if cell.allowed {
                continue;
            }
            let mut why = Vec::new();
            for (side, verdict) in [("egress", &cell.egress), ("ingress", &cell.ingress)] {
                if let Verdict::Denied { policies } = verdict {
                    let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
                    why.push(format!("{side} of {}", names.join(", ")));
                }
            }
            denied.push(format!(
                "  {} -> {}: denied by {}\n",
                row.name,
                col.label(),
                why.join(" and ")
            ));
        }
    }
    if !denied.is_empty() {
        out.push_str("\nDenied connections:\n");
        for line in denied {
            out.push_str(&line);
        }
    }
    out
}
