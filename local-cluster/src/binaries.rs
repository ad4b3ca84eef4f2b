//! Finding the service binaries (beside the launcher's own executable by default) and,
//! under `cargo run`, building them first so a stale binary is never started.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::Service;

/// The directory of the running executable: where cargo puts the other binaries of the
/// same build. A test executable lives one level deeper (`target/debug/deps`), so `deps`
/// is stepped out of. `.` if the executable's path is unknown.
pub fn default_bin_dir() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().map(Path::to_path_buf).unwrap_or(dir),
        _ => dir,
    }
}

/// The first executable file called `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The cargo profile flags that build into `bin_dir` (`target/debug` → none,
/// `target/release` → `--release`, `target/<p>` → `--profile <p>`).
pub fn profile_args(bin_dir: &Path) -> Vec<String> {
    match bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => Vec::new(),
        Some("release") => vec!["--release".to_owned()],
        Some(profile) => vec!["--profile".to_owned(), profile.to_owned()],
    }
}

/// Runs `cargo build <profile> -p placement-center -p journal-server -p mqtt-broker
/// --bins` for the workspace this crate belongs to; cargo's output goes to the terminal.
pub async fn cargo_build(cargo: &Path, bin_dir: &Path, services: &[Service]) -> Result<()> {
    let mut args = vec!["build".to_owned()];
    args.extend(profile_args(bin_dir));
    for service in services {
        args.extend(["-p".to_owned(), service.name().to_owned()]);
    }
    args.push("--bins".to_owned());
    // The workspace of this source tree, so it works from any directory.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    if manifest.is_file() {
        args.extend(["--manifest-path".to_owned(), manifest.display().to_string()]);
    }
    let command = format!("{} {}", cargo.display(), args.join(" "));
    let status = Command::new(cargo)
        .args(&args)
        .status()
        .await
        .map_err(Error::io(format!("running {command}")))?;
    if !status.success() {
        return Err(Error::Build { command, status });
    }
    Ok(())
}

/// Checks that every binary of `services` is in `bin_dir`.
pub fn check_binaries(bin_dir: &Path, services: &[Service]) -> Result<()> {
    for service in services {
        let path = bin_dir.join(service.name());
        if !path.is_file() {
            return Err(Error::MissingBinary {
                path,
                package: service.name(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_follows_the_directory_name() {
        assert!(profile_args(Path::new("target/debug")).is_empty());
        assert_eq!(profile_args(Path::new("target/release")), ["--release"]);
        assert_eq!(
            profile_args(Path::new("target/bench")),
            ["--profile", "bench"]
        );
    }

    #[test]
    fn test_executables_find_the_binaries_one_level_up() {
        // This unit test runs from target/<profile>/deps.
        let dir = default_bin_dir();
        assert_ne!(dir.file_name().unwrap(), "deps", "{}", dir.display());
    }

    #[test]
    fn missing_binary_names_the_package() {
        let err = check_binaries(Path::new("/nonexistent"), &[Service::JournalServer]).unwrap_err();
        assert!(
            err.to_string()
                .contains("cargo build -p journal-server --bins"),
            "{err}"
        );
        assert!(find_on_path("sh").is_some());
    }
}
