//! W3C trace context: every event written while a request is being served carries that request's `traceparent`
//! (see [`scope`]), and every call to another service forwards it ([`crate::remote::Client`]), so a trace can be
//! followed from the HTTP request through the services into every consumer.
//!
//! The gateway opens the scope around each request. Work that outlives the request's task carries the context
//! over: a task it spawns is started with [`spawn`], a saga keeps the `traceparent` of the request that started it
//! and runs each step in a child of it, and inventory's batch writer takes it with each command it queues. Sweepers
//! run outside any trace.

use std::future::Future;

tokio::task_local! {
    static TRACEPARENT: String;
}

/// Runs `future` with `traceparent` as the current trace context.
pub async fn scope<F: Future>(traceparent: String, future: F) -> F::Output {
    TRACEPARENT.scope(traceparent, future).await
}

/// The current trace context, inside a request's task.
pub fn current() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok()
}

/// The HTTP header that carries the trace context.
pub const HEADER: &str = "traceparent";

/// Runs `future` in the trace context `traceparent`, or outside any when there is none.
pub async fn within<F: Future>(traceparent: Option<String>, future: F) -> F::Output {
    match traceparent {
        Some(traceparent) => scope(traceparent, future).await,
        None => future.await,
    }
}

/// `tokio::spawn`, keeping the current trace context in the spawned task.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(within(current(), future))
}

/// The trace id of a valid `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zeros).
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

/// The trace context of a request: a new span in the caller's trace when `incoming` is a valid `traceparent`, else
/// a new trace (sampled).
pub fn child_of(incoming: Option<&str>) -> String {
    let ids = uuid::Uuid::new_v4();
    let span = format!("{:016x}", ids.as_u64_pair().0 | 1);
    match incoming.and_then(trace_id) {
        Some(trace) => {
            let flags = incoming.and_then(|t| t.rsplit('-').next()).unwrap_or("01");
            format!("00-{trace}-{span}-{flags}")
        }
        None => format!("00-{}-{span}-01", uuid::Uuid::new_v4().simple()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_and_anything_else_starts_a_trace() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(incoming), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let child = child_of(Some(incoming));
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{child}");
        assert!(!child.contains("00f067aa0ba902b7"), "a span of its own: {child}");
        assert!(trace_id(&child).is_some());
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
            let fresh = child_of(Some(bad));
            assert!(trace_id(&fresh).is_some(), "{fresh}");
            assert!(!fresh.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        }
    }

    #[tokio::test]
    async fn a_spawned_task_keeps_the_trace_context_and_none_is_outside_any() {
        let traceparent = child_of(None);
        let (seen, plain) = scope(traceparent.clone(), async {
            let seen = spawn(async { current() }).await.expect("task");
            let plain = tokio::spawn(async { current() }).await.expect("task");
            (seen, plain)
        })
        .await;
        assert_eq!((seen, plain), (Some(traceparent.clone()), None));
        assert_eq!(within(None, async { current() }).await, None);
        assert_eq!(
            within(Some(traceparent.clone()), async { current() }).await,
            Some(traceparent)
        );
    }
}
