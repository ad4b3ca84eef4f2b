//! One child process: spawned with its output in a log file, killed (SIGKILL) when its
//! guard is dropped, stopped gracefully with SIGTERM then SIGKILL after a grace period.
//!
//! Children run in their own process group, so a Ctrl-C in the terminal reaches only the
//! launcher, which then stops them in order. Where util-linux `setpriv` is installed
//! (almost every Linux), it starts the child with a parent-death signal (SIGTERM), so the
//! children also go when the launcher is SIGKILLed; this is `prctl(PR_SET_PDEATHSIG)`
//! without unsafe code. The signal fires when the *thread* that spawned the child ends,
//! so spawn from a long-lived thread (the runtime's main or worker threads, not
//! `spawn_blocking`).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::error::{Error, Result};
use crate::spec::LaunchSpec;

/// How a stopped process ended.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    /// The process name.
    pub name: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Whether it needed SIGKILL (did not exit within the grace period).
    pub forced: bool,
}

/// A running child; dropping it SIGKILLs the process.
#[derive(Debug)]
pub struct ChildProcess {
    /// The process name, for messages.
    name: String,
    /// Its log file, for the tail shown when it fails.
    log: PathBuf,
    /// The process; `kill_on_drop` is set.
    child: Child,
}

/// `setpriv` if it can set a parent-death signal (checked once).
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = crate::binaries::find_on_path("setpriv")?;
            let help = std::process::Command::new(&path)
                .arg("--help")
                .output()
                .ok()?;
            String::from_utf8_lossy(&help.stdout)
                .contains("--pdeathsig")
                .then_some(path)
        })
        .as_deref()
}

impl ChildProcess {
    /// Starts `spec` (its log file is appended to, its working directory must exist).
    pub fn spawn(spec: &LaunchSpec) -> Result<ChildProcess> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(Error::io(format!("opening {}", spec.log.display())))?;
        let stderr = log
            .try_clone()
            .map_err(Error::io("duplicating the log handle"))?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "TERM", "--"]).arg(&spec.program);
                c
            }
            None => Command::new(&spec.program),
        };
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(Error::io(format!("starting {}", spec.command_line())))?;
        Ok(ChildProcess {
            name: spec.name.clone(),
            log: spec.log.clone(),
            child,
        })
    }

    /// The process name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid, until it has been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its exit status if it has exited (never blocks).
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .map_err(Error::io(format!("checking {}", self.name)))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Sends SIGTERM (through `kill(1)`: signalling directly needs unsafe code).
    pub async fn send_term(&self) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(()); // already reaped
        };
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(Error::io(format!("kill -TERM {pid} ({})", self.name)))?;
        Ok(())
    }

    /// Waits for the exit until `deadline`, then SIGKILLs and waits for that.
    pub async fn wait_or_kill(&mut self, deadline: Instant) -> Result<StopOutcome> {
        let left = deadline.saturating_duration_since(Instant::now());
        let what = || Error::io(format!("waiting for {}", self.name));
        let (status, forced) = match tokio::time::timeout(left, self.child.wait()).await {
            Ok(status) => (status.map_err(what())?, false),
            Err(_elapsed) => (self.kill().await?, true),
        };
        Ok(StopOutcome {
            name: self.name.clone(),
            status,
            forced,
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> Result<StopOutcome> {
        self.send_term().await?;
        self.wait_or_kill(Instant::now() + grace).await
    }

    /// SIGKILL and wait for the exit.
    pub async fn kill(&mut self) -> Result<ExitStatus> {
        // `kill` also reaps; an already exited child just reports its status.
        self.child
            .kill()
            .await
            .map_err(Error::io(format!("killing {}", self.name)))?;
        self.child
            .wait()
            .await
            .map_err(Error::io(format!("waiting for {}", self.name)))
    }
}

/// The last `lines` lines of the file at `path` (at most its last 64 KiB are read),
/// without a trailing Rust backtrace.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            // With RUST_BACKTRACE set, an error exit ends in a backtrace that would fill
            // the whole tail; the lines before it say what went wrong.
            let (text, cut) = match text.rfind("\nStack backtrace:") {
                Some(at) => (&text[..at], "\n(backtrace cut; see the log)"),
                None => (text.as_str(), ""),
            };
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n") + cut
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(log_tail(&path, 3), "line 48\nline 49\nline 50");
        assert!(log_tail(&dir.path().join("missing"), 3).starts_with("(cannot read"));
        std::fs::write(
            &path,
            "a\nError: address in use\n\nStack backtrace:\n   0: main\n",
        )
        .unwrap();
        assert_eq!(
            log_tail(&path, 2),
            "a\nError: address in use\n(backtrace cut; see the log)"
        );
    }
}
