//! W3C trace context for events: every event written while a request is being served carries that request's
//! `traceparent` (see [`scope`]), so a trace can be followed from the HTTP request into every consumer.
//!
//! The gateway opens the scope around each request. Work that runs outside a request's task (the saga's steps,
//! inventory's batch writer) has no trace context; its events carry the booking's correlation id instead.

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
    async fn events_written_in_a_scope_carry_its_traceparent() {
        let outside = crate::Event::new("phoenix.test", "test.happened.v1", "s", &1).expect("event");
        assert_eq!(outside.traceparent, None);
        let traceparent = child_of(None);
        let inside = scope(traceparent.clone(), async {
            crate::Event::new("phoenix.test", "test.happened.v1", "s", &1).expect("event")
        })
        .await;
        assert_eq!(inside.traceparent, Some(traceparent));
    }
}
