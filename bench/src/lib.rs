//! Shared pieces of the benchmark suite: the wire protocols the load generator speaks,
//! reading a server's CPU time and memory from `/proc`, and the first stdout line every
//! server prints.

pub mod proto;

use std::fs;

/// The first line every benchmark server prints on stdout, as the reference app does.
pub fn print_listening(addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on ws://{addr}/");
    let _ = out.flush();
}

/// Total CPU time (user + system) of process `pid` in nanoseconds: the sum of the
/// run times in `/proc/PID/task/*/schedstat` (nanosecond precision) plus, for threads
/// that exited already, nothing: the servers here keep their threads. Falls back to
/// `utime + stime` of `/proc/PID/stat` (10 ms ticks) where schedstat is missing.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in dir.flatten() {
            let Ok(s) = fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any {
        return Some(total);
    }
    stat_cpu_ns(pid)
}

/// `utime + stime` of `/proc/PID/stat`, in nanoseconds (assumes the usual 100 Hz ticks).
pub fn stat_cpu_ns(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}

/// Resident set size of process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(super::cpu_ns(pid).is_some());
        assert!(super::stat_cpu_ns(pid).is_some());
        assert!(super::rss_bytes(pid).unwrap() > 0);
    }
}

pub mod subset;
