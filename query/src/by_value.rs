//! Tallies keyed by the string form of a property value (entry and exit
//! pages, clicked elements), found without hashing the string on every
//! row: a small direct-mapped cache maps the value's identity in the scan
//! ([`UserRows::prop_code`]: its index into a segment's values) to its
//! tally, and only a miss hashes the string form.

use footprint_storage::{UserRows, Value};
use rustc_hash::FxHashMap;

use crate::sessionize::str_form;

/// Cache slots (a power of two).
const SLOTS: usize = 1024;

/// Ids of values by property and code ([`UserRows::prop_code`]), direct-mapped:
/// a later code may evict an earlier one. Valid within one scan of one
/// shard (codes name values there only).
#[derive(Default)]
pub struct CodeCache {
    /// `(code + 1, id)`; 0 is an empty slot.
    slots: Vec<(u64, u32)>,
}

impl CodeCache {
    /// The id of property `k`'s value at row `i` of `u`, from the cache or
    /// else from `id` (and then cached); `None` when the row lacks the
    /// property.
    #[inline]
    pub fn id(
        &mut self,
        u: &UserRows<'_>,
        k: usize,
        i: usize,
        id: impl FnOnce(&Value) -> u32,
    ) -> Option<u32> {
        // The key names the property too (codes are per property); a
        // source index past 2^24 or a slot past 255 goes uncached.
        let key = match u.prop_code(k, i) {
            Some(code) if k < 256 && code < 1 << 56 => (code | (k as u64) << 56).wrapping_add(1),
            _ => return u.prop(k, i).map(id),
        };
        if self.slots.is_empty() {
            self.slots = vec![(0, 0); SLOTS];
        }
        let slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize & (SLOTS - 1);
        let (k0, cached) = self.slots[slot];
        if k0 == key {
            return Some(cached);
        }
        let n = id(u.prop(k, i)?);
        self.slots[slot] = (key, n);
        Some(n)
    }

    /// Forgets every code (when the scan that made them is over).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

/// Tallies of type `T` by string form. Its cache is valid within one scan
/// of one shard: an accumulator of [`crate::exec::Ctx::run`] is, and
/// [`ByValue::merge`] empties it.
pub struct ByValue<T> {
    ids: FxHashMap<String, u32>,
    tallies: Vec<T>,
    cache: CodeCache,
}

impl<T: Default> Default for ByValue<T> {
    fn default() -> Self {
        ByValue {
            ids: FxHashMap::default(),
            tallies: Vec::new(),
            cache: CodeCache::default(),
        }
    }
}

impl<T: Default> ByValue<T> {
    /// Distinct values tallied.
    pub fn len(&self) -> usize {
        self.tallies.len()
    }

    /// True when nothing was tallied.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    /// The tally of property `k`'s value at row `i` of `u`, made when
    /// missing; `None` when the row lacks the property.
    #[inline]
    pub fn at(&mut self, u: &UserRows<'_>, k: usize, i: usize) -> Option<&mut T> {
        let (ids, tallies) = (&mut self.ids, &mut self.tallies);
        let id = self.cache.id(u, k, i, |v| intern(ids, tallies, v))?;
        self.tallies.get_mut(id as usize)
    }

    /// The tally of `v`'s string form, made when missing.
    pub fn of(&mut self, v: &Value) -> &mut T {
        let id = self.id(v) as usize;
        &mut self.tallies[id]
    }

    fn id(&mut self, v: &Value) -> u32 {
        intern(&mut self.ids, &mut self.tallies, v)
    }

    /// Adds `other`'s tallies with `add`; empties the cache (its codes
    /// belong to the scan that made them).
    pub fn merge(&mut self, other: ByValue<T>, mut add: impl FnMut(&mut T, T)) {
        self.cache.clear();
        let mut tallies: Vec<Option<T>> = other.tallies.into_iter().map(Some).collect();
        for (name, id) in other.ids {
            let Some(t) = tallies.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            let mine = match self.ids.get(&name) {
                Some(&m) => m,
                None => {
                    let m = self.tallies.len() as u32;
                    self.ids.insert(name, m);
                    self.tallies.push(T::default());
                    m
                }
            };
            add(&mut self.tallies[mine as usize], t);
        }
    }

    /// Every (string form, tally), in no particular order.
    pub fn into_pairs(self) -> Vec<(String, T)> {
        let mut tallies: Vec<Option<T>> = self.tallies.into_iter().map(Some).collect();
        self.ids
            .into_iter()
            .filter_map(|(name, id)| Some((name, tallies.get_mut(id as usize)?.take()?)))
            .collect()
    }
}

/// The id of `v`'s string form in `ids`, with a new tally when missing.
fn intern<T: Default>(ids: &mut FxHashMap<String, u32>, tallies: &mut Vec<T>, v: &Value) -> u32 {
    let key = match v {
        Value::Str(s) => std::borrow::Cow::Borrowed(s.as_str()),
        other => std::borrow::Cow::Owned(str_form(other)),
    };
    if let Some(&id) = ids.get(key.as_ref()) {
        return id;
    }
    let id = tallies.len() as u32;
    ids.insert(key.into_owned(), id);
    tallies.push(T::default());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_string_forms_share_a_tally_and_merge_by_name() {
        let props: Vec<Vec<Option<Value>>> = vec![
            vec![Some(Value::Str("/a".into()))],
            vec![Some(Value::Int(1))],
            vec![None],
            vec![Some(Value::Str("1".into()))],
        ];
        let times = [1, 2, 3, 4];
        let events = [0, 0, 0, 0];
        let u = UserRows::owned(7, &times, &events, &props);
        let mut a: ByValue<u64> = ByValue::default();
        for i in 0..4 {
            if let Some(n) = a.at(&u, 0, i) {
                *n += 1;
            }
        }
        let mut b: ByValue<u64> = ByValue::default();
        *b.of(&Value::Str("/a".into())) += 5;
        *b.of(&Value::Str("/b".into())) += 1;
        a.merge(b, |x, y| *x += y);
        let mut pairs = a.into_pairs();
        pairs.sort();
        assert_eq!(
            pairs,
            vec![("/a".into(), 6), ("/b".into(), 1), ("1".into(), 2)]
        );
    }
}
