//! Memory of a child process from `/proc/PID/status`, finding the PID of
//! a child started by the e2e harness (which keeps its `Child` private) by
//! its command line, and the machine's load average.

use std::path::Path;

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most that was ever resident (kernel's high-water mark).
    pub hwm: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines (in kB) of a `/proc/PID/status`
/// text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line[name.len()..].trim_start_matches(':').trim();
        let kb: u64 = rest.strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS")?,
        hwm: field("VmHWM")?,
    })
}

/// Reads the memory of `pid`; `None` once it has exited.
pub fn memory(pid: u32) -> Option<Memory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// The PID of a child of this process whose command line has `arg` as one
/// of its arguments (e.g. the unique path of its config file).
pub fn find_child(arg: &Path) -> Option<u32> {
    let me = std::process::id();
    let want = arg.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        (parent_of(&stat)? == me).then_some(())?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmdline.split(|b| *b == 0).any(|a| a == want).then_some(pid)
    })
}

/// The parent PID field of a `/proc/PID/stat` line; the command name in
/// parentheses may itself contain spaces and parentheses.
fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_in_bytes() {
        let text = "Name:\tdcmms-gateway\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss: 10 * 1024 * 1024,
                hwm: 20 * 1024 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tx\nVmRSS:\t12 kB\n"), None);
        assert_eq!(parse_status("VmRSS:\tlots\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(parent_of("123 (a) b) S 77 123 123 0"), Some(77));
        assert_eq!(parent_of("123 (dcmms-gateway) S 4242 1 1"), Some(4242));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn reads_its_own_memory_and_finds_a_child_by_argument() {
        assert_eq!(load_average().map(|l| l.split(' ').count()), Some(3));
        let me = memory(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.hwm >= me.rss, "{me:?}");
        let marker = std::env::temp_dir().join(format!("bench-marker-{}", std::process::id()));
        // `sh -c SCRIPT MARKER` keeps MARKER as its $0 argument while it waits.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true"])
            .arg(&marker)
            .spawn()
            .unwrap();
        // Right after spawn the child may not have exec'd `sh` yet (its
        // command line is still ours), so look for it until it shows up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            match find_child(&marker) {
                Some(pid) => break Some(pid),
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                None => break None,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, Some(child.id()));
        assert_eq!(find_child(Path::new("/no/such/argument")), None);
    }
}
