//! The HTTP client one service uses to call another that runs in a different process.
//!
//! A service's `Client` is an enum: `Local` calls the service's functions directly, `Remote` wraps this
//! [`Client`]. Calls carry the internal token (and the principal, when acting for one); a problem answered by the
//! other side comes back as the same [`Problem`], so errors pass through unchanged.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ClientIp, Principal, Problem, internal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The other service answered with a problem.
    #[error("{0}")]
    Problem(Problem),
    #[error("calling {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from {url}: {status}")]
    Unexpected { url: String, status: StatusCode },
}

impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        match error {
            Error::Problem(problem) => problem,
            other => Problem::unavailable(&other, 1),
        }
    }
}

/// Calls one remote service at `base_url`.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl Client {
    pub fn new(base_url: &str, token: &str, timeout: Duration) -> Result<Client, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `body` (if any) as JSON to `path` and decodes a 2xx JSON answer.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        principal: Option<&Principal>,
    ) -> Result<T, Error> {
        self.call_keyed(method, path, body, principal, None).await
    }

    /// [`call`](Self::call) with an `Idempotency-Key` header, for requests that create or move money or capacity:
    /// a retry after a lost answer gets the first answer instead of doing the work twice.
    pub async fn call_keyed<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        principal: Option<&Principal>,
        idempotency_key: Option<&str>,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.base_url);
        let mut headers = axum::http::HeaderMap::new();
        internal::write_headers(&mut headers, &self.token, principal, ClientIp(None));
        if let Some(key) = idempotency_key
            && let Ok(value) = axum::http::HeaderValue::from_str(key)
        {
            headers.insert(crate::IDEMPOTENCY_KEY, value);
        }
        if let Some(traceparent) = crate::trace::current()
            && let Ok(value) = axum::http::HeaderValue::from_str(&traceparent)
        {
            headers.insert(crate::trace::HEADER, value);
        }
        let mut request = self.http.request(method, &url).headers(headers);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| Error::Unexpected { url, status });
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) => Err(Error::Problem(problem)),
            Err(_) => Err(Error::Unexpected { url, status }),
        }
    }

    /// True when the remote service answers its `/healthz`.
    pub async fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.base_url);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }
}
