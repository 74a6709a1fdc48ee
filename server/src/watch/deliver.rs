//! Posting one webhook batch: the body as persisted, its idempotency key
//! and its signature. A 2xx reply is delivery; anything else (another
//! status, a refused connection, a timeout) is a failure to retry.

use std::time::Duration;

use super::sign;

/// How long one post may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A failed post, said for logs and `GET /v1/watches/ID`.
#[derive(Debug, Clone)]
pub struct Failed(pub String);

/// The HTTP client of webhook posts (one per process: it keeps
/// connections).
pub struct Poster {
    agent: ureq::Agent,
}

impl Default for Poster {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .user_agent("footprint-watch/1")
            .build();
        Poster {
            agent: ureq::Agent::new_with_config(config),
        }
    }
}

impl Poster {
    /// POSTs `body` to `url` with the watch's headers.
    pub fn post(
        &self,
        url: &str,
        watch: &str,
        key: &str,
        secret: &str,
        body: &[u8],
    ) -> Result<(), Failed> {
        let r = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .header("X-Footprint-Watch", watch)
            .header(sign::HEADER, sign::signature(secret, body))
            .send(body);
        match r {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(Failed(format!("{url} answered {}", resp.status()))),
            Err(e) => Err(Failed(format!("{url}: {e}"))),
        }
    }
}
