//! A tower layer that lets a request through only if a check passes, answering the check's problem otherwise.
//! Route role checks and the internal-token check are both gates.

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};

use crate::Problem;

/// Decides whether a request may pass; may also enrich it (the internal check restores extensions).
pub trait Check: Clone + Send + Sync + 'static {
    fn check(&self, request: &mut Request) -> Result<(), Problem>;
}

#[derive(Debug, Clone)]
pub struct Gate<S, C> {
    inner: S,
    check: C,
}

impl<S, C> Gate<S, C> {
    pub fn new(inner: S, check: C) -> Gate<S, C> {
        Gate { inner, check }
    }
}

impl<S, C> tower::Service<Request> for Gate<S, C>
where
    S: tower::Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    C: Check,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.check.check(&mut request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(problem) => Either::Right(ready(Ok(problem.into_response()))),
        }
    }
}
