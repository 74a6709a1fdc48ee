//! The HTTP API and the bulk loader of the `footprint` binary, as a library
//! so that the binary, the tests and the fuzz targets drive the same code.
//! See `server/API.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod http;
pub mod ingest;
pub mod scores;
pub mod watch;
