//! Request bodies: read within the size limit and the time limit, gunzipped,
//! and parsed into rows, all charged to the server-wide budget of memory
//! that requests in flight may hold.
//!
//! A request holds a [`Charge`] from its first byte to its reply. The charge
//! grows as the body arrives, as it is decoded and as rows are parsed from
//! it (by an estimate of their heap size, a megabyte at a time), and shrinks
//! as the body's bytes are dropped. When the budget cannot cover a request,
//! it is answered `503 busy` (or `413 too_large` when that request alone
//! would need more than the whole budget), and everything it held is freed.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderMap, StatusCode};
use footprint_engine::storage::parse;
use footprint_engine::{Alias, Event, ProfileUpdate, Value};
use serde_json::Value as Json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// The budget counts KiB, so one `u32` acquire covers any body.
const UNIT: usize = 1024;
/// Parsed rows are charged in steps of this many bytes (fewer semaphore
/// operations; a request may overrun its charge by at most this).
const STEP: usize = 1 << 20;

/// The memory that bodies in flight may hold, shared by all requests.
#[derive(Clone)]
pub(crate) struct Budget {
    sem: Arc<Semaphore>,
    units: usize,
}

impl Budget {
    /// A budget of `bytes` (rounded down to whole KiB, at least one).
    pub(crate) fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            sem: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Bytes not held by any request now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }

    fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            permit: None,
            units: 0,
        }
    }
}

/// What one request holds of the [`Budget`]; given back when dropped.
pub(crate) struct Charge {
    budget: Budget,
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl Charge {
    /// Grows the charge to cover `bytes` in all (never shrinks it).
    pub(crate) fn cover(&mut self, bytes: usize) -> Result<(), ApiError> {
        let want = bytes.div_ceil(UNIT);
        if want <= self.units {
            return Ok(());
        }
        if want > self.budget.units {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "this request needs more memory (its body as sent, decoded and parsed into rows) than the {} MiB that this server gives to all request bodies (--max-inflight-mb); send smaller batches",
                    (self.budget.units * UNIT) >> 20
                ),
            ));
        }
        let more = u32::try_from(want - self.units).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .sem
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| {
                ApiError::busy(
                    "requests in flight hold all the memory this server gives to request bodies (--max-inflight-mb); retry shortly",
                )
            })?;
        self.units += more as usize;
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }

    /// Gives back what is held beyond `bytes`.
    fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.div_ceil(UNIT);
        if keep < self.units {
            if let Some(p) = &mut self.permit {
                drop(p.split(self.units - keep));
                self.units = keep;
            }
        }
    }
}

/// How a body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The body's encoding; `415` for one we do not decode.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(v) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        match v.to_str().map(str::trim) {
            Ok(s) if s.eq_ignore_ascii_case("identity") => Ok(Encoding::Identity),
            Ok(s) if s.eq_ignore_ascii_case("gzip") || s.eq_ignore_ascii_case("x-gzip") => {
                Ok(Encoding::Gzip)
            }
            _ => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_encoding",
                format!(
                    "Content-Encoding {} is not supported; use gzip or none",
                    String::from_utf8_lossy(v.as_bytes())
                ),
            )),
        }
    }
}

fn too_large(max: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("{what} exceeds {max} bytes (--max-body-mb)"),
    )
}

/// Reads a whole body as sent, within `max` bytes and `timeout`, charged to
/// `budget` as it arrives (the declared `Content-Length` up front).
pub(crate) async fn read(
    budget: &Budget,
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
    timeout: Duration,
) -> Result<(Vec<u8>, Charge), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max, "the body"));
    }
    let declared = declared.unwrap_or(0) as usize;
    let mut charge = budget.charge();
    charge.cover(declared)?;
    let mut buf = Vec::with_capacity(declared);
    let reading = async {
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the body could not be read: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                let len = buf.len() + data.len();
                if len > max {
                    return Err(too_large(max, "the body"));
                }
                charge.cover(len)?;
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} ms (--body-timeout-ms)",
                    timeout.as_millis()
                ),
            ))
        }
    }
    charge.shrink_to(buf.len());
    Ok((buf, charge))
}

/// Decodes a body read by [`read`]: gzip (all members) to at most `max`
/// bytes, the decoded bytes charged as they come. Blocking: call it off the
/// async threads.
pub(crate) fn decode(
    raw: Vec<u8>,
    encoding: Encoding,
    max: usize,
    charge: &mut Charge,
) -> Result<Vec<u8>, ApiError> {
    if encoding == Encoding::Identity {
        return Ok(raw);
    }
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(&raw[..]);
    let mut block = vec![0u8; 64 << 10];
    loop {
        let n = d.read(&mut block).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("gzip body cannot be decoded: {e}"),
            )
        })?;
        if n == 0 {
            break;
        }
        if out.len() + n > max {
            return Err(too_large(max, "the decompressed body"));
        }
        charge.cover(raw.len() + out.len() + n)?;
        out.extend_from_slice(&block[..n]);
    }
    drop(d);
    drop(raw);
    charge.shrink_to(out.len());
    Ok(out)
}

/// Rows parsed from a decoded body (NDJSON or a JSON array) with `parse`,
/// their estimated heap size charged as they are made. The body's text is
/// dropped, and its charge given back, before this returns. `fast`, when
/// given, reads a plain NDJSON line without a JSON tree (`None`: the line
/// goes to `parse`).
pub(crate) fn parse_rows<T: HeapSize>(
    text: Vec<u8>,
    charge: &mut Charge,
    fast: Option<fn(&str) -> Option<T>>,
    parse: impl Fn(Json) -> Result<T, String>,
) -> Result<parse::Rows<T>, ApiError> {
    let base = text.len();
    let held = std::cell::Cell::new(0usize);
    let mut charged = 0usize;
    let failed = std::cell::RefCell::new(None);
    let charge = std::cell::RefCell::new(charge);
    // Every row, however read, is charged before it is kept.
    let keep = |row: T| -> Result<T, String> {
        if failed.borrow().is_some() {
            return Err(String::new());
        }
        held.set(held.get() + row.heap_size());
        let now = held.get();
        if now > charged {
            // A step ahead, or just what is held when the step does not fit.
            let mut c = charge.borrow_mut();
            let covered = c
                .cover(base + now + STEP)
                .map(|()| now + STEP)
                .or_else(|_| c.cover(base + now).map(|()| now));
            match covered {
                Ok(n) => charged = n,
                Err(e) => {
                    *failed.borrow_mut() = Some(e);
                    return Err(String::new());
                }
            }
        }
        Ok(row)
    };
    let keep = std::cell::RefCell::new(keep);
    let rows = parse::parse_json_rows_with(
        &text,
        1,
        |line| {
            if failed.borrow().is_some() {
                // Over budget: the request fails; parse nothing more into memory.
                return Some(Err(String::new()));
            }
            let row = fast.and_then(|g| g(line))?;
            Some((keep.borrow_mut())(row))
        },
        |v| {
            if failed.borrow().is_some() {
                return Err(String::new());
            }
            let row = parse(v)?;
            (keep.borrow_mut())(row)
        },
    );
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    drop(text);
    charge.into_inner().shrink_to(held.get());
    Ok(rows)
}

/// Rows parsed from a decoded CSV body with `csv`. The rows are charged
/// once parsed (a CSV row holds about what its text did), and the text is
/// dropped before this returns.
pub(crate) fn parse_csv_rows<T: HeapSize>(
    text: Vec<u8>,
    charge: &mut Charge,
    csv: fn(&[u8]) -> parse::Rows<T>,
) -> Result<parse::Rows<T>, ApiError> {
    let rows = csv(&text);
    let held: usize = rows.rows.iter().map(HeapSize::heap_size).sum();
    charge.cover(text.len() + held)?;
    drop(text);
    charge.shrink_to(held);
    Ok(rows)
}

/// An estimate of the memory a parsed row holds.
pub(crate) trait HeapSize {
    /// Bytes, counting the row itself and what it owns.
    fn heap_size(&self) -> usize;
}

/// What allocating `n` bytes on the heap costs (allocators round up).
fn alloc(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.next_multiple_of(16)
    }
}

fn props_size(props: &[(String, Value)]) -> usize {
    alloc(std::mem::size_of_val(props))
        + props
            .iter()
            .map(|(k, v)| {
                alloc(k.len())
                    + match v {
                        Value::Str(s) => alloc(s.len()),
                        _ => 0,
                    }
            })
            .sum::<usize>()
}

impl HeapSize for Event {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<Event>()
            + alloc(self.user.len())
            + alloc(self.event.len())
            + props_size(&self.props)
    }
}

impl HeapSize for ProfileUpdate {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<ProfileUpdate>() + alloc(self.user.len()) + props_size(&self.props)
    }
}

impl HeapSize for Alias {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<Alias>() + alloc(self.anonymous.len()) + alloc(self.known.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_grow_shrink_and_are_given_back() {
        let budget = Budget::new(10 * UNIT);
        let mut a = budget.charge();
        a.cover(3 * UNIT + 1).unwrap();
        assert_eq!(budget.available(), 6 * UNIT);
        let mut b = budget.charge();
        let e = b.cover(7 * UNIT).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        );
        let e = b.cover(11 * UNIT).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        );
        a.shrink_to(UNIT);
        assert_eq!(budget.available(), 9 * UNIT);
        b.cover(7 * UNIT).unwrap();
        drop(a);
        drop(b);
        assert_eq!(budget.available(), 10 * UNIT);
    }

    #[test]
    fn parsing_is_charged_and_fails_over_budget() {
        let row = r#"{"user":"u1","event":"visit","time":1,"props":{"a":1,"b":2,"c":3}}"#;
        let text = format!("{row}\n").repeat(50_000).into_bytes();
        // Rows read through a JSON tree, or straight (the fast path), are
        // charged alike.
        let fast: fn(&str) -> Option<Event> = parse::fast_event;
        for fast in [None, Some(fast)] {
            // Enough room: the rows are charged, the text given back.
            let budget = Budget::new(64 << 20);
            let mut charge = budget.charge();
            charge.cover(text.len()).unwrap();
            let rows = parse_rows(text.clone(), &mut charge, fast, parse::event_from_json).unwrap();
            assert_eq!(rows.rows.len(), 50_000);
            let held: usize = rows.rows.iter().map(HeapSize::heap_size).sum();
            assert_eq!(charge.units, held.div_ceil(UNIT));
            assert!(held > text.len(), "{held} vs {}", text.len());
            // Room for the text but not for its rows: busy, nothing kept.
            let budget = Budget::new(text.len() + (2 << 20));
            let mut charge = budget.charge();
            charge.cover(text.len()).unwrap();
            let _hog = {
                let mut c = budget.charge();
                c.cover(1 << 20).unwrap();
                c
            };
            let e =
                parse_rows(text.clone(), &mut charge, fast, parse::event_from_json).unwrap_err();
            assert_eq!(e.code, "busy");
            drop(charge);
            assert_eq!(budget.available(), budget.units * UNIT - (1 << 20));
        }
    }
}
