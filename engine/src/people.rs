//! People and the schema as a caller's scope ([`QueryOptions::scope`])
//! sees them: looking a user up (`GET /v1/users/ID`, `GET /v1/profiles`)
//! and the counts of `GET /v1/schema`.
//!
//! A user outside the scope looks exactly like one never seen, so a
//! scoped caller cannot learn whether an id exists. Schema counts under a
//! scope count in-scope people only: events and profile properties are
//! counted over them, and the per-type counts of event properties (which
//! would read every property of every in-scope event) are withheld
//! (`None`); the names of events and properties are the whole data set's.

use std::collections::BTreeMap;
use std::time::Instant;

use footprint_query::exec::{Ctx, Prune};
use footprint_query::limits::{Metered, Usage};
use footprint_query::Limits;

use crate::{Engine, QueryOptions, Result};

/// What `GET /v1/schema` shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Schema {
    /// Events per name (in-scope people's only, under a scope; names
    /// with none left out).
    pub events: BTreeMap<String, u64>,
    /// Per event property, the value kinds seen with how many events
    /// carry each (`None` under a scope: withheld).
    pub properties: BTreeMap<String, BTreeMap<&'static str, Option<u64>>>,
    /// Per profile property, how many people have it (in-scope people's
    /// profiles only, under a scope).
    pub profile_properties: BTreeMap<String, u64>,
}

/// Rows per event id, for the scoped schema scan.
struct Counts(Vec<u64>);

impl Metered for Counts {
    fn usage(&self) -> Usage {
        Usage {
            cells: self.0.len() as u64,
            samples: 0,
        }
    }
}

impl Engine {
    /// The ids of the person `name` is, the known id first, when `name`
    /// has sent an event or has a profile and `opts.scope` admits their
    /// person; `None` otherwise (the two look the same).
    pub fn person(&self, name: &str, opts: &QueryOptions) -> Result<Option<Vec<u32>>> {
        let Some(uid) = self.store().user_id(name) else {
            return Ok(None);
        };
        let one: roaring::RoaringBitmap = std::iter::once(uid).collect();
        if let Some(scope) = self.resolve_scope(opts, Some(&one))? {
            return Ok(scope.admits(uid).then(|| scope.ids_of(uid)));
        }
        let groups = self.store().snapshot().aliases.groups();
        if !groups.members.contains(uid) {
            return Ok(Some(vec![uid]));
        }
        Ok(Some(
            groups
                .groups
                .iter()
                .find(|(_, m)| m.contains(&uid))
                .map_or_else(|| vec![uid], |(_, m)| m.clone()),
        ))
    }

    /// The schema: event names with their counts, event property types,
    /// profile property names with how many people have each — as
    /// `opts.scope` sees them (see the module docs). Gives up with a
    /// timeout error past `opts.timeout`.
    pub fn schema(&self, opts: &QueryOptions) -> Result<Schema> {
        let store = self.store();
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let scoped = opts.scope.is_some();
        let properties = store
            .prop_types_within(deadline)?
            .into_iter()
            .map(|(name, kinds)| {
                let kinds = kinds
                    .into_iter()
                    .map(|(k, n)| (k, (!scoped).then_some(n)))
                    .collect();
                (name, kinds)
            })
            .collect();
        if !scoped {
            return Ok(Schema {
                events: store.event_counts()?,
                properties,
                profile_properties: store.snapshot().profiles.property_counts(),
            });
        }
        let (events, profile_properties) = self.pool.install(|| -> Result<_> {
            let mut ctx = Ctx::new(store, opts.clone(), Limits::default());
            ctx.apply_scope()?;
            ctx.order_free();
            let counts = ctx.run(
                None,
                Prune::None,
                || Counts(Vec::new()),
                |acc, u| {
                    for &e in u.events {
                        let e = e as usize;
                        if acc.0.len() <= e {
                            acc.0.resize(e + 1, 0);
                        }
                        acc.0[e] += 1;
                    }
                },
                |mut a, b| {
                    if a.0.len() < b.0.len() {
                        a.0.resize(b.0.len(), 0);
                    }
                    for (x, y) in a.0.iter_mut().zip(b.0) {
                        *x += y;
                    }
                    a
                },
            )?;
            let names = store.event_names();
            let events = counts
                .0
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(e, n)| (names.get(e).cloned().unwrap_or_default(), n))
                .collect();
            // Profiles of the same snapshot as the counts, of every id
            // of an in-scope person (as the unscoped count has every id).
            let mut props: BTreeMap<String, u64> = BTreeMap::new();
            for uid in ctx.scope().map(|s| s.all_ids()).into_iter().flatten() {
                if let Some(p) = ctx.profile(uid) {
                    for k in p.to_map().keys() {
                        *props.entry(k.clone()).or_default() += 1;
                    }
                }
            }
            Ok((events, props))
        })?;
        Ok(Schema {
            events,
            properties,
            profile_properties,
        })
    }
}
