//! Terminal rendering: tables, quality reports and progress bars.

use std::io::IsTerminal;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quantpipe_data::quality::{Action, Example, QualityReport};
use quantpipe_data::read::Progress;

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

pub fn right(t: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn action_text(a: &Action) -> String {
    match a {
        Action::None => "ok".into(),
        Action::Flagged => "flagged".into(),
        Action::Fatal { .. } => "FATAL".into(),
        Action::Repaired { rule } => format!("repaired: {rule}"),
    }
}

/// The full quality report of one series, as a person reads it.
pub fn quality_report(r: &QualityReport) -> String {
    let mut out = String::new();
    let inferred = |b: bool| if b { " (inferred)" } else { "" };
    out.push_str(&format!(
        "{} {}{}  calendar {}{}  {} → {}\nrows read {}, kept {}    quality score {:.1} / 100\n",
        r.symbol,
        r.timeframe,
        inferred(r.timeframe_inferred),
        r.calendar.name(),
        inferred(r.calendar_inferred),
        r.first.as_deref().unwrap_or("-"),
        r.last.as_deref().unwrap_or("-"),
        r.rows_read,
        r.rows_kept,
        r.score
    ));
    let mut t = table(&["check", "count", "action", "first examples"]);
    for c in &r.checks {
        let examples: Vec<String> = c.examples.iter().take(3).map(Example::describe).collect();
        t.add_row(vec![c.kind.label().to_string(), c.count.to_string(), action_text(&c.action), examples.join("\n")]);
    }
    right(&mut t, &[1]);
    out.push_str(&t.to_string());
    out.push('\n');
    out.push_str(&format!(
        "gaps: {} missing bars in {} gaps; {} market closures ({} calendar) not counted\n",
        r.gaps.missing_bars,
        r.gaps.gaps,
        r.gaps.closures,
        r.calendar.name()
    ));
    if !r.deductions.is_empty() {
        let parts: Vec<String> = r
            .deductions
            .iter()
            .map(|d| format!("{} −{:.2} ({:.3}% of bars)", d.component, d.points, d.rate * 100.0))
            .collect();
        out.push_str(&format!("score deductions: {}\n", parts.join("; ")));
    }
    out
}

/// A byte-progress bar on stderr, drawn only on a terminal and only for files big enough to take
/// more than about a second.
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::hidden();
        BarProgress { bar }
    }
}

const SHOW_ABOVE_BYTES: u64 = 4 << 20;

impl Progress for BarProgress {
    fn start(&self, label: &str, total_bytes: u64) {
        if std::io::stderr().is_terminal() && total_bytes > SHOW_ABOVE_BYTES {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.set_length(total_bytes);
            self.bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            self.bar.set_message(format!("reading {label}"));
        }
    }
    fn advance_to(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
