//! Watches the argument lists of every process on the machine while the agent applies pushes:
//! a secret passed on a command line is readable by every user through `/proc/PID/cmdline`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the watch saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Passes over `/proc`.
    pub passes: u64,
    /// Program names (argv[0] file names) seen at least once.
    pub programs: BTreeSet<String>,
    /// `"<secret kind> in argv of <program> (pid N)"`.
    pub leaks: BTreeSet<String>,
}

pub struct ArgvWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Seen>,
}

impl ArgvWatch {
    /// Starts polling `/proc` as fast as it can until [`ArgvWatch::finish`].
    pub fn start(secrets: &'static [(&'static str, &'static str)]) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen = Seen::default();
            let me = std::process::id();
            while !flag.load(Ordering::Relaxed) {
                seen.passes += 1;
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if pid == me {
                        continue;
                    }
                    let Ok(argv) = std::fs::read(e.path().join("cmdline")) else {
                        continue;
                    };
                    let prog = argv
                        .split(|b| *b == 0)
                        .next()
                        .map(|a| {
                            String::from_utf8_lossy(a)
                                .rsplit('/')
                                .next()
                                .unwrap_or("")
                                .to_string()
                        })
                        .unwrap_or_default();
                    if !prog.is_empty() {
                        seen.programs.insert(prog.clone());
                    }
                    for (s, kind) in secrets {
                        if argv.windows(s.len()).any(|w| w == s.as_bytes()) {
                            seen.leaks
                                .insert(format!("{kind} in argv of {prog} (pid {pid})"));
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            seen
        });
        ArgvWatch { stop, handle }
    }

    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("argv watch")
    }
}

/// Wrappers, first in the agent's `PATH`, for the tools the agent runs (vtysh, swanctl, nft,
/// ...): each records its whole argument list, then runs the real tool. Unlike sampling
/// `/proc`, this sees every invocation, however short.
pub struct ToolRecorder {
    /// Holds the wrappers (removed on drop).
    _bin: tempfile::TempDir,
    pub log: std::path::PathBuf,
    /// `PATH` for the agent: the wrappers, then the test's own `PATH`.
    pub path: String,
}

impl ToolRecorder {
    pub fn new(programs: &[&str]) -> ToolRecorder {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::Builder::new()
            .prefix("vr-scan-bin")
            .tempdir()
            .unwrap();
        let log = bin.path().join("argv.log");
        let old = std::env::var("PATH").unwrap_or_default();
        for p in programs {
            let real = old
                .split(':')
                .map(|d| std::path::Path::new(d).join(p))
                .find(|c| c.is_file());
            let Some(real) = real else { continue };
            let w = bin.path().join(p);
            std::fs::write(
                &w,
                format!(
                    "#!/bin/sh\nprintf '%s\\0' {p} \"$@\" >> '{log}'\nprintf '\\n' >> '{log}'\nexec '{real}' \"$@\"\n",
                    log = log.display(),
                    real = real.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!("{}:{old}", bin.path().display());
        ToolRecorder {
            _bin: bin,
            log,
            path,
        }
    }

    /// Every recorded invocation: (program, argument bytes).
    pub fn calls(&self) -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let prog = l.split(|b| *b == 0).next().unwrap_or(&[]);
                (String::from_utf8_lossy(prog).into_owned(), l.to_vec())
            })
            .collect()
    }
}
