//! Python's `multiprocessing.Pool`, the scaling bench's peer: runs
//! `benches/python/scaling.py` and reads its samples.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use super::harness::python_samples;
use super::{Sample, Samples, Workload, JUDGED_WORKERS};

/// Python's measurements (`benches/python/scaling.py`).
pub(super) struct Python {
    /// multiprocessing's start method.
    pub(super) method: String,
    /// `(workload, config) → samples`, where config is `sequential`,
    /// `idle`, `pool:…` or `warm:…` (`idle` under whichever workload it came with:
    /// it does not depend on one).
    samples: HashMap<(String, String), Vec<Sample>>,
}

impl Python {
    pub(super) fn get(&self, workload: Workload, config: &str) -> Option<&Samples> {
        let key = (workload.key().to_string(), config.to_string());
        self.samples.get(&key).map(Vec::as_slice)
    }

    pub(super) fn idle(&self) -> Option<&Samples> {
        self.samples
            .iter()
            .find(|((_, config), _)| config == "idle")
            .map(|(_, samples)| samples.as_slice())
    }
}

/// Runs Python's measurements; `None` if python3 cannot run the script.
pub(super) fn python(workloads: &[Workload]) -> Option<Python> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/scaling.py");
    let output = Command::new("python3")
        .arg(script)
        .args([
            python_samples().min(3).to_string(),
            JUDGED_WORKERS.to_string(),
        ])
        .args(workloads.iter().map(|w| w.key()))
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut method = String::from("default");
    let mut samples: HashMap<(String, String), Vec<Sample>> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("method"), Some(name), None, None) => method = name.to_string(),
            (Some("sample"), Some(workload), Some(config), Some(rest)) => {
                let sample = Sample::parse(rest)?;
                let key = (workload.to_string(), config.to_string());
                samples.entry(key).or_default().push(sample);
            }
            _ => {}
        }
    }
    Some(Python { method, samples })
}
