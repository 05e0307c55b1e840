//! A closed-loop HTTP load generator: `concurrency` clients, each sending its next request as soon as the last is
//! answered, over keep-alive connections, for a fixed time. Latency goes into an HDR histogram.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Report {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.50) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }

    /// The sum of what many clients measured over `elapsed`.
    pub async fn collect(
        elapsed: Duration,
        clients: Vec<tokio::task::JoinHandle<(u64, u64, Histogram<u64>)>>,
    ) -> anyhow::Result<Report> {
        let mut report = Report {
            requests: 0,
            errors: 0,
            elapsed,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")?,
        };
        for client in clients {
            let (requests, errors, histogram) = client.await.context("load client")?;
            report.requests += requests;
            report.errors += errors;
            report.latency.add(histogram).context("merging histograms")?;
        }
        Ok(report)
    }

    /// Two measurements of the same thing, as one.
    pub fn merge(mut self, other: Report) -> anyhow::Result<Report> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latency.add(other.latency).context("merging histograms")?;
        Ok(self)
    }
}

/// GETs `url` (with `authorization`, if any) from `concurrency` clients for `warmup` and then `duration`; only the
/// second period is measured. Any answer other than 200 counts as an error.
pub async fn get(
    url: &str,
    authorization: Option<&str>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Report> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector);
    let uri: hyper::Uri = url.parse().context("benchmark URL")?;
    // Built once: the generator's own per-request work must not be charged to the route with the bigger header.
    let authorization = authorization
        .map(hyper::header::HeaderValue::from_str)
        .transpose()
        .context("authorization header")?;
    let started = Instant::now();
    let measure_from = started + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let uri = uri.clone();
        let authorization = authorization.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
            let (mut requests, mut errors) = (0u64, 0u64);
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let mut request = Request::new(Empty::<Bytes>::new());
                *request.uri_mut() = uri.clone();
                if let Some(value) = &authorization {
                    request
                        .headers_mut()
                        .insert(hyper::header::AUTHORIZATION, value.clone());
                }
                let ok = match client.request(request).await {
                    Ok(response) => {
                        let ok = response.status() == 200;
                        ok && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if sent >= measure_from {
                    requests += 1;
                    if !ok {
                        errors += 1;
                    }
                    let _ = histogram.record(sent.elapsed().as_micros().max(1) as u64);
                }
            }
            (requests, errors, histogram)
        }));
    }
    Report::collect(duration, tasks).await
}
