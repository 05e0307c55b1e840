//! A circuit breaker: stop calling a provider that is failing, and let one call find out when it is back.
//!
//! Closed, it counts the outcomes of recent calls. When at least `min_calls` calls of the last `window_secs` are in
//! and `failure_percent` of them failed, it opens: for `open_secs` every call is refused at once, without touching
//! the provider. Then it half-opens: one probe call goes through; its success closes the circuit, its failure opens
//! it again. A failure here is the provider's (a timeout, an outage), never a decline: a decline is a healthy
//! provider's answer.
//!
//! Time is `tokio::time::Instant`, so tests drive it with paused time.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Outcomes kept at most, whatever the traffic: enough for a ratio, bounded in memory.
const MAX_WINDOW_CALLS: usize = 1_000;

/// How long a caller refused while a probe is out should wait.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerOptions {
    /// Outcomes older than this are forgotten.
    pub window_secs: u64,
    /// Fewer calls than this in the window never open the circuit: one failure in two calls is not an outage.
    pub min_calls: u32,
    /// The share of failed calls in the window, in percent, that opens the circuit.
    pub failure_percent: u8,
    /// How long the circuit stays open before a probe may test the provider again.
    pub open_secs: u64,
}

impl Default for BreakerOptions {
    fn default() -> BreakerOptions {
        BreakerOptions {
            window_secs: 30,
            min_calls: 10,
            failure_percent: 50,
            open_secs: 30,
        }
    }
}

impl BreakerOptions {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                (1..=3_600).contains(&self.window_secs),
                "window_secs must be between 1 and 3600",
            ),
            (
                (1..=1_000).contains(&self.min_calls),
                "min_calls must be between 1 and 1000",
            ),
            (
                (1..=100).contains(&self.failure_percent),
                "failure_percent must be between 1 and 100",
            ),
            (
                (1..=3_600).contains(&self.open_secs),
                "open_secs must be between 1 and 3600",
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message.to_owned()),
            None => Ok(()),
        }
    }
}

/// Where the circuit stands, as callers and tests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    /// Calls are refused for `retry_after` more.
    Open {
        retry_after: Duration,
    },
    /// The open period is over: the next call is a probe (or one is already out).
    HalfOpen,
}

/// What kind of call the breaker let through; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary call while closed.
    Call,
    /// The one call that tests a half-open circuit.
    Probe,
}

/// The breaker refused a call; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// A change worth a log line and a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed,
}

#[derive(Debug)]
enum State {
    /// Recent outcomes, oldest first: (when, failed).
    Closed {
        calls: VecDeque<(Instant, bool)>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

#[derive(Debug)]
pub struct Breaker {
    options: BreakerOptions,
    state: State,
}

impl Breaker {
    pub fn new(options: BreakerOptions) -> Breaker {
        Breaker {
            options,
            state: State::Closed { calls: VecDeque::new() },
        }
    }

    pub fn circuit(&self, now: Instant) -> Circuit {
        match &self.state {
            State::Closed { .. } => Circuit::Closed,
            State::Open { until } if now < *until => Circuit::Open {
                retry_after: *until - now,
            },
            State::Open { .. } | State::HalfOpen { .. } => Circuit::HalfOpen,
        }
    }

    /// Lets a call through, or refuses it while the circuit is open (or a probe is already out).
    pub fn admit(&mut self, now: Instant) -> Result<Admission, Refused> {
        match &mut self.state {
            State::Closed { .. } => Ok(Admission::Call),
            State::Open { until } if now < *until => Err(Refused {
                retry_after: *until - now,
            }),
            State::Open { .. } => {
                self.state = State::HalfOpen { probing: true };
                Ok(Admission::Probe)
            }
            State::HalfOpen { probing: true } => Err(Refused {
                retry_after: PROBE_RETRY_AFTER,
            }),
            State::HalfOpen { probing } => {
                *probing = true;
                Ok(Admission::Probe)
            }
        }
    }

    /// Records how an admitted call went (`failed`: the provider timed out or was unavailable).
    pub fn record(&mut self, admission: Admission, failed: bool, now: Instant) -> Option<Transition> {
        let open_for = Duration::from_secs(self.options.open_secs);
        match (&mut self.state, admission) {
            (State::Closed { calls }, Admission::Call) => {
                calls.push_back((now, failed));
                let window = Duration::from_secs(self.options.window_secs);
                while calls
                    .front()
                    .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window)
                    || calls.len() > MAX_WINDOW_CALLS
                {
                    calls.pop_front();
                }
                if failed && self.too_many_failures() {
                    self.state = State::Open { until: now + open_for };
                    return Some(Transition::Opened);
                }
                None
            }
            (State::HalfOpen { .. }, Admission::Probe) if failed => {
                self.state = State::Open { until: now + open_for };
                None
            }
            (State::HalfOpen { .. }, Admission::Probe) => {
                self.state = State::Closed { calls: VecDeque::new() };
                Some(Transition::Closed)
            }
            // A call let through before the circuit changed state says nothing about the provider now.
            _ => None,
        }
    }

    /// An admitted call that never reached the provider (its caller went away, or no slot was free): a probe's
    /// turn passes to the next call.
    pub fn abandon(&mut self, admission: Admission) {
        if let (State::HalfOpen { probing }, Admission::Probe) = (&mut self.state, admission) {
            *probing = false;
        }
    }

    fn too_many_failures(&self) -> bool {
        let State::Closed { calls } = &self.state else {
            return false;
        };
        let failures = calls.iter().filter(|(_, failed)| *failed).count();
        calls.len() >= self.options.min_calls as usize
            && failures * 100 >= calls.len() * usize::from(self.options.failure_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(min_calls: u32) -> Breaker {
        Breaker::new(BreakerOptions {
            window_secs: 10,
            min_calls,
            failure_percent: 50,
            open_secs: 30,
        })
    }

    /// Admits and records one call per outcome, all at `at`; returns the last transition.
    fn calls(breaker: &mut Breaker, failures: &[bool], at: Instant) -> Option<Transition> {
        let mut last = None;
        for failed in failures {
            let admission = breaker.admit(at).expect("closed");
            last = breaker.record(admission, *failed, at).or(last);
        }
        last
    }

    #[test]
    fn failures_below_the_minimum_number_of_calls_never_open() {
        let mut b = breaker(5);
        let now = Instant::now();
        assert_eq!(calls(&mut b, &[true, true, true, true], now), None);
        assert_eq!(b.circuit(now), Circuit::Closed);
    }

    #[test]
    fn half_of_the_calls_failing_opens() {
        let mut b = breaker(4);
        let now = Instant::now();
        assert_eq!(calls(&mut b, &[false, false, true], now), None);
        assert_eq!(calls(&mut b, &[true], now), Some(Transition::Opened));
        assert_eq!(
            b.circuit(now),
            Circuit::Open {
                retry_after: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn fewer_failures_than_the_threshold_keep_it_closed() {
        let mut b = breaker(4);
        let now = Instant::now();
        assert_eq!(calls(&mut b, &[false, false, false, true, false, true], now), None);
        assert_eq!(b.circuit(now), Circuit::Closed);
    }

    #[test]
    fn outcomes_older_than_the_window_are_forgotten() {
        let mut b = breaker(4);
        let start = Instant::now();
        calls(&mut b, &[true, true, true], start);
        // Eleven seconds later the three failures are out of the 10-second window: one more is not enough.
        let later = start + Duration::from_secs(11);
        assert_eq!(calls(&mut b, &[true], later), None);
        assert_eq!(b.circuit(later), Circuit::Closed);
    }

    #[test]
    fn open_refuses_every_call_until_open_secs_pass_then_lets_one_probe_through() {
        let mut b = breaker(2);
        let start = Instant::now();
        calls(&mut b, &[true, true], start);
        let refused = b.admit(start + Duration::from_secs(29)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));

        let after = start + Duration::from_secs(30);
        assert_eq!(b.circuit(after), Circuit::HalfOpen);
        assert_eq!(b.admit(after), Ok(Admission::Probe));
        assert!(b.admit(after).is_err(), "only one probe at a time");
        assert_eq!(b.record(Admission::Probe, false, after), Some(Transition::Closed));
        assert_eq!(b.circuit(after), Circuit::Closed);
        assert_eq!(b.admit(after), Ok(Admission::Call));
    }

    #[test]
    fn a_failed_probe_opens_again_for_the_whole_period() {
        let mut b = breaker(2);
        let start = Instant::now();
        calls(&mut b, &[true, true], start);
        let probe_at = start + Duration::from_secs(30);
        let probe = b.admit(probe_at).unwrap();
        assert_eq!(b.record(probe, true, probe_at), None);
        assert_eq!(
            b.circuit(probe_at),
            Circuit::Open {
                retry_after: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn an_abandoned_probe_passes_its_turn_on() {
        let mut b = breaker(2);
        let start = Instant::now();
        calls(&mut b, &[true, true], start);
        let at = start + Duration::from_secs(30);
        let probe = b.admit(at).unwrap();
        b.abandon(probe);
        assert_eq!(b.admit(at), Ok(Admission::Probe));
    }

    #[test]
    fn late_outcomes_of_calls_admitted_before_opening_are_ignored() {
        let mut b = breaker(2);
        let start = Instant::now();
        let early = b.admit(start).unwrap();
        calls(&mut b, &[true, true], start);
        assert_eq!(b.record(early, false, start), None);
        assert!(matches!(b.circuit(start), Circuit::Open { .. }));
        let probe_at = start + Duration::from_secs(30);
        let probe = b.admit(probe_at).unwrap();
        // An ordinary call's success arriving now does not close the circuit; only the probe's does.
        assert_eq!(b.record(Admission::Call, false, probe_at), None);
        assert_eq!(b.circuit(probe_at), Circuit::HalfOpen);
        assert_eq!(b.record(probe, false, probe_at), Some(Transition::Closed));
    }

    #[test]
    fn options_are_checked() {
        assert!(BreakerOptions::default().validate().is_ok());
        let zero = BreakerOptions {
            open_secs: 0,
            ..BreakerOptions::default()
        };
        assert_eq!(zero.validate().unwrap_err(), "open_secs must be between 1 and 3600");
    }
}
