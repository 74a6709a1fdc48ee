//! The typed property columns of an export: one per property whose values
//! all share one type, so that other engines filter without parsing JSON.
//! `footprint export --parquet` and the ClickHouse DDL and loader
//! ([`crate::clickhouse`]) pick the same columns with [`typed_columns`].

use footprint_storage::Store;

use crate::Result;

/// The type of a typed property column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// Every value is a string.
    Str,
    /// Every value is an integer.
    Int,
    /// Every value is a number, some or all of them floats.
    Float,
    /// Every value is a boolean.
    Bool,
}

impl ColumnType {
    /// The name of the type in an export's manifest.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Str => "string",
            ColumnType::Int => "int64",
            ColumnType::Float => "double",
            ColumnType::Bool => "bool",
        }
    }

    /// The type [`ColumnType::name`] names.
    pub fn parse(s: &str) -> Option<ColumnType> {
        [
            ColumnType::Str,
            ColumnType::Int,
            ColumnType::Float,
            ColumnType::Bool,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

/// One typed column per single-typed property, by name (ints and floats
/// together are [`ColumnType::Float`]); a property seen with several types
/// has none (it is only in `props`).
pub fn typed_columns(store: &Store) -> Result<Vec<(String, ColumnType)>> {
    let mut typed = Vec::new();
    for (name, kinds) in store.prop_types()? {
        let ty = match kinds.keys().copied().collect::<Vec<_>>()[..] {
            ["string"] => Some(ColumnType::Str),
            ["int"] => Some(ColumnType::Int),
            ["float"] | ["float", "int"] => Some(ColumnType::Float),
            ["bool"] => Some(ColumnType::Bool),
            _ => None,
        };
        if let Some(ty) = ty {
            typed.push((name, ty));
        }
    }
    Ok(typed)
}
