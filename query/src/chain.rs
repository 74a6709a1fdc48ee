//! The funnel extras of ANALYSES.md: per-step windows (`steps[i].within`),
//! `hold` (every step carries step 1's value of a property, Amplitude's
//! "hold property constant"), and the chain search that explains why a
//! user stopped (`explain_users`).
//!
//! A user's level is the deepest k for which a chain e1..ek exists: entries
//! in (time, step) order, ek within the global window of e1, each step
//! within its `within` of the previous one, every step carrying step 1's
//! held values. From a fixed step-1 entry one pass in order decides it: an
//! entry can fill step k when some entry before it filled step k − 1, and
//! the latest such entry is the best predecessor (it leaves the most room
//! for `within`; the window and the held values do not depend on it).
//! Trying each step-1 entry in order finds the deepest level and, among
//! the deepest chains, the one with the earliest step 1. (Taking the
//! earliest entry for each step is not enough: an early step 2 can be too
//! far from step 3's `within`.)

use footprint_storage::{UserRows, Value};

use crate::funnel::Entry;

/// What the chain search needs besides the entries.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Per step (0-based), the most ms from the previous step's event.
    pub within: Vec<Option<i64>>,
    /// Scan slots of the held properties (`None`: no event has it).
    pub hold: Vec<Option<usize>>,
}

impl Extras {
    /// Whether any extra applies (without one, the plain funnel answers).
    pub fn any(&self) -> bool {
        !self.hold.is_empty() || self.within.iter().any(Option::is_some)
    }
}

/// The deepest chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// Steps reached (0 = none).
    pub level: usize,
    /// Indices into the entries of the chain's steps.
    pub at: Vec<usize>,
}

/// Why a user did not reach the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No event of the next step after the chain (or no step-1 event).
    NoEvent,
    /// Next-step events exist, but after the funnel window.
    OutsideWindow,
    /// One is inside the funnel window but not within the step's `within`.
    StepWindow,
    /// An exclusion event removed the user's chain.
    Excluded,
    /// One fits the windows but carries another held value.
    HeldValueDiffers,
}

impl Reason {
    /// The reason's name in results.
    pub fn name(self) -> &'static str {
        match self {
            Reason::NoEvent => "no_event",
            Reason::OutsideWindow => "outside_window",
            Reason::StepWindow => "step_window",
            Reason::Excluded => "excluded",
            Reason::HeldValueDiffers => "held_value_differs",
        }
    }
}

fn held<'a: 'b, 'b>(
    x: &'b Extras,
    u: &'b UserRows<'a>,
    row: u32,
) -> impl Iterator<Item = Option<&'a Value>> + 'b {
    x.hold
        .iter()
        .map(move |s| s.and_then(|k| u.prop(k, row as usize)))
}

/// Whether `row` carries step 1's held values (`first`); a missing value
/// never matches.
fn same_held(x: &Extras, u: &UserRows<'_>, first: u32, row: u32) -> bool {
    held(x, u, first).zip(held(x, u, row)).all(|(a, b)| {
        matches!((a, b), (Some(a), Some(b)) if a.compare(b) == Some(std::cmp::Ordering::Equal))
    })
}

/// Scratch of the per-start pass: per step the latest and the first
/// entry that can fill it; per entry its predecessor in a chain.
#[derive(Debug, Default)]
pub struct Scratch {
    latest: Vec<Option<usize>>,
    first: Vec<Option<usize>>,
    pred: Vec<usize>,
}

/// What the pass from one start classifies for [`reason`]: the entries of
/// step `probe` (1-based) that could not extend a chain.
struct Probe {
    step: usize,
    found: Option<Reason>,
}

/// The level reached from step-1 entry `i0`, filling `sc`; with a probe,
/// also why the probed step's entries could not join.
#[allow(clippy::too_many_arguments)]
fn from_start(
    entries: &[Entry],
    i0: usize,
    n: usize,
    window: i64,
    x: &Extras,
    u: &UserRows<'_>,
    sc: &mut Scratch,
    mut probe: Option<&mut Probe>,
) -> usize {
    sc.latest.clear();
    sc.latest.resize(n, None);
    sc.first.clear();
    sc.first.resize(n, None);
    sc.pred.resize(entries.len(), usize::MAX);
    sc.latest[0] = Some(i0);
    sc.first[0] = Some(i0);
    let (t1, _, r1) = entries[i0];
    // A step 1 without a held value cannot continue.
    if !held(x, u, r1).all(|v| v.is_some()) {
        return 1;
    }
    let end = t1.saturating_add(window);
    for (j, &(t, k, row)) in entries.iter().enumerate().skip(i0 + 1) {
        if t > end && probe.is_none() {
            break;
        }
        let k = usize::from(k);
        if k < 2 {
            continue;
        }
        let Some(p) = sc.latest[k - 2] else { continue };
        let step_ok = x
            .within
            .get(k - 1)
            .copied()
            .flatten()
            .is_none_or(|w| t - entries[p].0 <= w);
        let hold_ok = x.hold.is_empty() || same_held(x, u, r1, row);
        if t <= end && step_ok && hold_ok {
            sc.latest[k - 1] = Some(j);
            sc.first[k - 1].get_or_insert(j);
            sc.pred[j] = p;
            continue;
        }
        if let Some(pr) = probe.as_deref_mut() {
            if pr.step == k {
                let r = if t > end {
                    Reason::OutsideWindow
                } else if !step_ok {
                    Reason::StepWindow
                } else {
                    Reason::HeldValueDiffers
                };
                pr.found = Some(match pr.found {
                    None => r,
                    Some(f) => nearer(f, r),
                });
            }
        }
    }
    sc.latest
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |k| k + 1)
}

/// The nearer of two misses: a held value, then a step window, then the
/// funnel window.
fn nearer(a: Reason, b: Reason) -> Reason {
    let rank = |r: Reason| match r {
        Reason::HeldValueDiffers => 0,
        Reason::StepWindow => 1,
        _ => 2,
    };
    if rank(b) < rank(a) {
        b
    } else {
        a
    }
}

/// The deepest chain over `entries` (sorted by (time, step, row), step 0
/// never present) of an `n`-step funnel with global `window`: the one with
/// the earliest step 1, and in it the earliest entry of its last step.
pub fn search(
    entries: &[Entry],
    n: usize,
    window: i64,
    x: &Extras,
    u: &UserRows<'_>,
    sc: &mut Scratch,
) -> Chain {
    let mut best: Option<(usize, usize)> = None;
    for (i0, e) in entries.iter().enumerate() {
        if e.1 != 1 {
            continue;
        }
        let level = from_start(entries, i0, n, window, x, u, sc, None);
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, i0));
            if level == n {
                break;
            }
        }
    }
    let Some((level, i0)) = best else {
        return Chain::default();
    };
    // Rebuild the chosen start's chain.
    from_start(entries, i0, n, window, x, u, sc, None);
    let mut at = vec![0; level];
    let mut j = sc.first[level - 1].unwrap_or(i0);
    for k in (0..level).rev() {
        at[k] = j;
        if k > 0 {
            j = sc.pred[j];
        }
    }
    Chain { level, at }
}

/// Why `chain` (of an `n`-step funnel) did not reach its next step: the
/// nearest miss among the next step's entries that some chain of the same
/// start could have led to.
#[allow(clippy::too_many_arguments)]
pub fn reason(
    entries: &[Entry],
    chain: &Chain,
    n: usize,
    window: i64,
    x: &Extras,
    u: &UserRows<'_>,
    sc: &mut Scratch,
) -> Option<Reason> {
    if chain.level >= n {
        return None;
    }
    let Some(&i0) = chain.at.first() else {
        return Some(Reason::NoEvent);
    };
    let mut probe = Probe {
        step: chain.level + 1,
        found: None,
    };
    from_start(entries, i0, n, window, x, u, sc, Some(&mut probe));
    Some(probe.found.unwrap_or(Reason::NoEvent))
}
