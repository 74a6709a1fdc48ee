//! The records Footprint stores: events, profile updates and identity links.

use crate::value::{Props, Value};

/// One tracked event, as ingested.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The user id (arbitrary Unicode, compared exactly).
    pub user: String,
    /// The event name.
    pub event: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub time: i64,
    /// Flattened properties, names unique; absent and `null` are not stored.
    pub props: Props,
}

impl Event {
    /// The value of property `name`, if present.
    pub fn prop(&self, name: &str) -> Option<&Value> {
        self.props.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// How a profile update changes a user's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOp {
    /// Overwrite the named properties.
    Set,
    /// Set the named properties only where they are not set yet.
    SetOnce,
    /// Remove the named properties (their values are ignored).
    Unset,
    /// Add numbers to numeric counters (missing counts as 0).
    Add,
    /// Append a value to a list property.
    Append,
    /// Add the values (a list's elements) a list property does not hold yet.
    Union,
    /// Remove every element equal to the value (or a list's elements)
    /// from a list property.
    Remove,
}

/// A profile update for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    /// The user id.
    pub user: String,
    /// The operation.
    pub op: ProfileOp,
    /// The properties it names.
    pub props: Props,
}

/// An identity link: events of `anonymous` belong to `known`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The anonymous id (cookie, device).
    pub anonymous: String,
    /// The known id it resolves to.
    pub known: String,
}

/// Earliest accepted event time: 1970-01-01T00:00:00Z.
pub const MIN_TIME: i64 = 0;
/// Latest accepted event time: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME: i64 = 253_402_300_799_999;
/// Longest accepted user id, event name or property name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest accepted string property value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Most properties one event may carry.
pub const MAX_PROPS: usize = 1000;
