//! CPU time spent while a benchmark measures, read from Linux's `/proc`: the whole machine's (the platform, the load
//! generator and a PostgreSQL server on the same host alike) and this process's own. Elsewhere there is no reading
//! and the benchmarks print none.

use std::time::Duration;

/// The kernel's unit for CPU times in `/proc` (`USER_HZ`): 100 per second on every architecture Linux runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// All cores, busy (everything but idle and waiting for I/O).
    machine_busy: u64,
    /// This process, user and system.
    process: u64,
}

/// CPU used between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Used {
    pub machine: Duration,
    pub process: Duration,
}

impl Sample {
    /// Now, or `None` where `/proc` cannot be read.
    pub fn now() -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(Sample {
            machine_busy: machine_busy(&stat)?,
            process: process_ticks(&own)?,
        })
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: Sample) -> Used {
        let secs = |ticks: u64| Duration::from_secs_f64(ticks as f64 / TICKS_PER_SEC);
        Used {
            machine: secs(self.machine_busy.saturating_sub(earlier.machine_busy)),
            process: secs(self.process.saturating_sub(earlier.process)),
        }
    }
}

impl Used {
    /// One line for a benchmark's details: cores busy over `elapsed`, and the cost of each of `units`.
    pub fn describe(&self, elapsed: Duration, units: u64, unit: &str) -> String {
        let cores = |used: Duration| used.as_secs_f64() / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let each = |used: Duration| used.as_secs_f64() * 1000.0 / units.max(1) as f64;
        format!(
            "CPU while measured: {:.2} cores busy on the machine, {:.2} in this process; per {unit}: {:.2} ms on the \
             machine, {:.2} ms in this process",
            cores(self.machine),
            cores(self.process),
            each(self.machine),
            each(self.process),
        )
    }
}

/// Busy ticks of all cores from `/proc/stat`'s first line (`cpu user nice system idle iowait irq softirq steal ...`).
fn machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// User plus system ticks from `/proc/self/stat`: fields 14 and 15, counted after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn process_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is the first after the name, so field n is at n - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_counts_everything_but_idle_and_io_wait() {
        let stat = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\nintr 1 2 3\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 50 + 3 + 2 + 7));
        assert_eq!(machine_busy("intr 1 2\n"), None);
        assert_eq!(machine_busy("cpu 1 x 3 4\n"), None);
    }

    #[test]
    fn process_ticks_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(process_ticks(stat), Some(1234 + 567));
        assert_eq!(process_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn used_is_the_difference_and_describes_cores_and_cost() {
        let earlier = Sample {
            machine_busy: 1_000,
            process: 300,
        };
        let later = Sample {
            machine_busy: 1_400,
            process: 400,
        };
        let used = later.since(earlier);
        assert_eq!(used.machine, Duration::from_secs(4));
        assert_eq!(used.process, Duration::from_secs(1));
        let line = used.describe(Duration::from_secs(2), 500, "confirmed booking");
        assert_eq!(
            line,
            "CPU while measured: 2.00 cores busy on the machine, 0.50 in this process; per confirmed booking: 8.00 ms \
             on the machine, 2.00 ms in this process"
        );
    }
}
