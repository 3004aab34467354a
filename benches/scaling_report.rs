//! The scaling bench's report: its tables, and its lines of the
//! scoreboard (`Judged`).

use std::collections::HashMap;

use super::harness::{plain, ratio_figure, Score, Verdict};
use super::{
    both, median_of, ms_text, ns_text, times_text, Figures, Input, Samples, Workload,
    JUDGED_WORKERS,
};

/// One printed line of a table.
fn table_line(name: &str, cells: [String; 6]) {
    println!(
        "  {name:<36} {:>15} {:>15} {:>15} {:>15} {:>13} {:>11}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    );
}

/// Prints one pool configuration's line; its speed-up only if `speedup`.
pub(super) fn figures_line(name: &str, figures: &Figures, speedup: bool) {
    table_line(
        name,
        [
            both(&figures.wall, ms_text),
            if speedup {
                both(&figures.speedup, times_text)
            } else {
                String::from("-")
            },
            both(&figures.parent, ns_text),
            both(&figures.worker, ns_text),
            both(&figures.beyond, ns_text),
            both(&figures.feedable, |x| format!("{x:.1}")),
        ],
    );
}

/// Prints a sequential run's line: its wall time and its CPU per item,
/// the work.
pub(super) fn sequential_line(name: &str, items: u64, sequential: &Samples, workload: Workload) {
    let walls: Vec<f64> = sequential.iter().map(|s| s.wall).collect();
    let work: Vec<f64> = sequential
        .iter()
        .map(|s| s.parent * 1e9 / items as f64)
        .collect();
    table_line(
        name,
        [
            both(&walls, ms_text),
            String::from(if workload.has_speedup() { "1×" } else { "-" }),
            String::from("-"),
            both(&work, ns_text),
            String::from("-"),
            String::from("-"),
        ],
    );
}

pub(super) fn table_header(title: &str) {
    println!("{title}");
    table_line(
        "min / median",
        [
            "wall (ms)".into(),
            "speed-up".into(),
            "parent ns/item".into(),
            "worker ns/item".into(),
            "beyond work".into(),
            "feedable".into(),
        ],
    );
}

/// The scoreboard lines of one workload over one input.
pub(super) struct Judged<'a> {
    pub(super) workload: Workload,
    pub(super) input: Input,
    /// Ours, by worker count: a map after one on the same pool.
    pub(super) ours: &'a HashMap<usize, Figures>,
    /// Ours, by worker count: a fresh pool's first map.
    pub(super) first: &'a HashMap<usize, Figures>,
    /// Python's figures at [`JUDGED_WORKERS`], by chunk-size label, of a
    /// map after one.
    pub(super) python: &'a [(&'static str, Figures)],
    /// The same, of a fresh pool's first map.
    pub(super) python_first: &'a [(&'static str, Figures)],
}

impl Judged<'_> {
    fn what(&self, figure: &str) -> String {
        let input = match self.input {
            Input::Range => "Range",
            Input::Adapter => "iterator adapter",
            Input::Batches => "10 batches",
        };
        let workload = match self.workload {
            Workload::Primes => "primes seed",
            Workload::Doubles => "x*2 over 2·10^6",
        };
        format!("{workload}, {input}: {figure}")
    }

    fn python_peers(
        &self,
        pick: impl Fn(&Figures) -> &[f64],
        show: &dyn Fn(f64) -> String,
    ) -> Vec<String> {
        self.python
            .iter()
            .map(|(label, figures)| {
                format!(
                    "Python mp.Pool({JUDGED_WORKERS}) {label} {}",
                    show(median_of(pick(figures)))
                )
            })
            .collect()
    }

    /// A per-item CPU line: ours at [`JUDGED_WORKERS`] at most `target` ns.
    pub(super) fn cpu_line(
        &self,
        figure: &str,
        pick: impl Fn(&Figures) -> &[f64] + Copy,
        target: Option<f64>,
    ) -> Option<Score> {
        let ours = median_of(pick(self.ours.get(&JUDGED_WORKERS)?));
        let show = |ns: f64| format!("{ns:.1} ns/item");
        let ratio = self
            .python
            .first()
            .map(|(label, figures)| {
                let python = median_of(pick(figures));
                format!("{}× Python mp.Pool {label}", ratio_figure(ours / python))
            })
            .unwrap_or_else(|| String::from("-"));
        Some(Score {
            section: "scaling",
            what: self.what(&format!("{figure}, {JUDGED_WORKERS} workers")),
            ours: show(ours),
            peers: self.python_peers(pick, &show),
            ratio,
            target: target.map_or_else(|| String::from("-"), |t| format!("≤ {} ns/item", plain(t))),
            verdict: target.map_or(Verdict::NoTarget, |t| Verdict::from_check(ours <= t)),
        })
    }

    /// The parent's CPU per item in a fresh pool's first map, which pays
    /// once for what later maps reuse (see the module docs): shown, not
    /// judged.
    pub(super) fn first_map_line(&self) -> Option<Score> {
        let first = median_of(&self.first.get(&JUDGED_WORKERS)?.parent);
        let next = median_of(&self.ours.get(&JUDGED_WORKERS)?.parent);
        let show = |ns: f64| format!("{ns:.1} ns/item");
        Some(Score {
            section: "scaling",
            what: self.what(&format!(
                "parent CPU per item, a fresh pool's first map, {JUDGED_WORKERS} workers"
            )),
            ours: show(first),
            peers: self
                .python_first
                .iter()
                .map(|(label, figures)| {
                    format!(
                        "Python mp.Pool({JUDGED_WORKERS}) {label}, first map {}",
                        show(median_of(&figures.parent))
                    )
                })
                .collect(),
            ratio: format!(
                "{}× a map after one; its one-off cost {:.1} ms",
                ratio_figure(first / next),
                (first - next) * self.workload.items() as f64 * 1e-6
            ),
            target: String::from("-"),
            verdict: Verdict::NoTarget,
        })
    }

    pub(super) fn feedable_line(&self, target: Option<f64>) -> Option<Score> {
        let ours = median_of(&self.ours.get(&JUDGED_WORKERS)?.feedable);
        let show = |x: f64| format!("{x:.1}");
        Some(Score {
            section: "scaling",
            what: self.what("workers one parent can feed (worker ÷ parent CPU per item)"),
            ours: show(ours),
            peers: self.python_peers(|f| &f.feedable, &show),
            ratio: format!("on 32 cores: ~{:.1} of 32 workers busy", ours.min(32.0)),
            target: target.map_or_else(|| String::from("-"), |t| format!("≥ {}", plain(t))),
            verdict: target.map_or(Verdict::NoTarget, |t| Verdict::from_check(ours >= t)),
        })
    }

    pub(super) fn speedup_line(
        &self,
        workers: usize,
        target: f64,
        sequential_wall: f64,
    ) -> Option<Score> {
        let ours = median_of(&self.ours.get(&workers)?.speedup);
        let plural = if workers == 1 { "" } else { "s" };
        Some(Score {
            section: "scaling",
            what: self.what(&format!(
                "{workers} worker{plural}, wall time against sequential Rust"
            )),
            ours: format!("{}×", ratio_figure(ours)),
            peers: vec![format!(
                "sequential Rust {:.1} ms/run",
                sequential_wall * 1e3
            )],
            ratio: format!("{}× speed-up", ratio_figure(ours)),
            target: format!("≥ {}× speed-up", plain(target)),
            verdict: Verdict::from_check(ours >= target),
        })
    }
}
