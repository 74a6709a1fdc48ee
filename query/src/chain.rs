//! The funnel extras of ANALYSES.md: per-step windows (`steps[i].within`),
//! `hold` (every step carries step 1's value of a property, Amplitude's
//! "hold property constant"), and the chain search that explains why a
//! user stopped (`explain_users`).
//!
//! A user's level is the deepest k for which a chain e1..ek exists: entries
//! in (time, step) order, ek within the global window of e1, each step
//! within its `within` of the previous one, every step carrying step 1's
//! held values. From a fixed step-1 entry, taking the earliest entry that
//! fits each next step is optimal (an earlier choice leaves every later
//! constraint looser), so trying each step-1 entry in order finds the
//! deepest level and, among the deepest chains, the one with the earliest
//! step 1.

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

/// The deepest chain over `entries` (sorted by (time, step, row), step 0
/// never present) of an `n`-step funnel with global `window`.
pub fn search(entries: &[Entry], n: usize, window: i64, x: &Extras, u: &UserRows<'_>) -> Chain {
    let mut best = Chain::default();
    let mut at = Vec::with_capacity(n);
    for (i0, &(t1, k, r1)) in entries.iter().enumerate() {
        if k != 1 {
            continue;
        }
        at.clear();
        at.push(i0);
        // A step 1 without a held value cannot continue.
        let holds = held(x, u, r1).all(|v| v.is_some());
        let mut prev = i0;
        while holds && at.len() < n {
            let s = at.len() + 1;
            let tp = entries[prev].0;
            let limit = x.within.get(s - 1).copied().flatten();
            let next = entries[prev + 1..]
                .iter()
                .enumerate()
                .take_while(|(_, e)| e.0 <= t1.saturating_add(window))
                .find(|(_, e)| {
                    usize::from(e.1) == s
                        && limit.is_none_or(|w| e.0 - tp <= w)
                        && (x.hold.is_empty() || same_held(x, u, r1, e.2))
                })
                .map(|(j, _)| prev + 1 + j);
            match next {
                Some(j) => {
                    at.push(j);
                    prev = j;
                }
                None => break,
            }
        }
        if at.len() > best.level {
            best = Chain {
                level: at.len(),
                at: at.clone(),
            };
            if best.level == n {
                break;
            }
        }
    }
    best
}

/// Why `chain` (of an `n`-step funnel) did not reach its next step.
pub fn reason(
    entries: &[Entry],
    chain: &Chain,
    n: usize,
    window: i64,
    x: &Extras,
) -> Option<Reason> {
    if chain.level >= n {
        return None;
    }
    let (Some(&first), Some(&last)) = (chain.at.first(), chain.at.last()) else {
        return Some(Reason::NoEvent);
    };
    let s = chain.level + 1;
    let t1 = entries[first].0;
    let tp = entries[last].0;
    let limit = x.within.get(s - 1).copied().flatten();
    let mut found = None;
    for e in entries[last + 1..].iter().filter(|e| usize::from(e.1) == s) {
        let r = if e.0 > t1.saturating_add(window) {
            Reason::OutsideWindow
        } else if limit.is_some_and(|w| e.0 - tp > w) {
            Reason::StepWindow
        } else {
            Reason::HeldValueDiffers
        };
        // The nearest miss: held value, then step window, then window.
        found = Some(match (found, r) {
            (None, r) => r,
            (Some(Reason::HeldValueDiffers), _) | (_, Reason::HeldValueDiffers) => {
                Reason::HeldValueDiffers
            }
            (Some(Reason::StepWindow), _) | (_, Reason::StepWindow) => Reason::StepWindow,
            (Some(f), _) => f,
        });
    }
    Some(found.unwrap_or(Reason::NoEvent))
}
