//! Username/password authentication against a file of argon2 hashes.
//!
//! The file has one `username:hash` line per user, where `hash` is an argon2 PHC
//! string (`$argon2id$v=19$...`); `#` starts a comment. `mqtt-broker passwd` writes
//! such lines. Passwords are compared only through argon2 and never logged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::error::BrokerError;

/// The outcome of checking a CONNECT's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Known user with the right password, or an anonymous client where allowed.
    Allowed,
    /// Unknown user or wrong password.
    BadCredentials,
    /// No username and the listener does not accept anonymous clients.
    NotAuthorized,
}

/// Username → argon2 PHC hash.
pub type Users = HashMap<String, String>;

/// The users the broker knows: those of its password file and, in a cluster, those
/// stored in the placement center (which win when a name is in both).
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    /// Empty when no password file is configured.
    users: Arc<Users>,
    /// Mirrored from the placement center (`/mqtt/users/{name}`).
    cluster: Arc<RwLock<Users>>,
}

impl Authenticator {
    /// Loads a password file; every malformed line is an error naming its number.
    pub fn from_file(path: &Path) -> Result<Self, BrokerError> {
        let err = |message: String| BrokerError::AuthFile {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| err(format!("line {}: expected username:hash", n + 1)))?;
            PasswordHash::new(hash)
                .map_err(|e| err(format!("line {}: not an argon2 PHC hash: {e}", n + 1)))?;
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self {
            users: Arc::new(users),
            cluster: Default::default(),
        })
    }

    /// Where the cluster's users are kept up to date.
    pub fn cluster_users(&self) -> &Arc<RwLock<Users>> {
        &self.cluster
    }

    fn cluster_lock(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.cluster.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of users (file and cluster).
    pub fn len(&self) -> usize {
        let cluster = self.cluster_lock();
        cluster.len()
            + self
                .users
                .keys()
                .filter(|u| !cluster.contains_key(*u))
                .count()
    }

    /// True when no users are configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.cluster_lock().is_empty()
    }

    fn hash_of(&self, username: &str) -> Option<String> {
        self.cluster_lock()
            .get(username)
            .or_else(|| self.users.get(username))
            .cloned()
    }

    /// Checks credentials. Argon2 is deliberately slow, so this runs on the blocking pool.
    pub async fn check(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        anonymous_allowed: bool,
    ) -> AuthResult {
        let Some(username) = username else {
            return if anonymous_allowed {
                AuthResult::Allowed
            } else {
                AuthResult::NotAuthorized
            };
        };
        let (Some(hash), Some(password)) = (self.hash_of(username), password.map(<[u8]>::to_vec))
        else {
            // A username without a password file entry: anonymous rules apply only
            // when there are no users at all.
            return if self.is_empty() && anonymous_allowed {
                AuthResult::Allowed
            } else {
                AuthResult::BadCredentials
            };
        };
        let ok = tokio::task::spawn_blocking(move || verify(&hash, &password))
            .await
            .unwrap_or(false);
        if ok {
            AuthResult::Allowed
        } else {
            AuthResult::BadCredentials
        }
    }
}

fn verify(hash: &str, password: &[u8]) -> bool {
    Argon2::default().verify_password(password, hash).is_ok()
}

/// Hashes a password into an argon2id PHC string for the password file.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(password)
        .map(|h: PasswordHash| h.to_string())
        .map_err(|e| e.to_string())
}

/// Adds or replaces `user` in the password file at `path` (created if missing).
pub fn set_password(path: &Path, user: &str, password: &[u8]) -> Result<(), String> {
    if user.is_empty() || user.contains(':') || user.contains('\n') {
        return Err("username must be non-empty and contain no ':' or newline".into());
    }
    let hash = hash_password(password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out: String = old
        .lines()
        .filter(|l| l.split_once(':').is_none_or(|(u, _)| u != user))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{user}:{hash}\n"));
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        set_password(&path, "alice", b"s3cret").unwrap();
        set_password(&path, "bob", b"x").unwrap();
        set_password(&path, "alice", b"new").unwrap();
        let auth = Authenticator::from_file(&path).unwrap();
        assert_eq!(auth.len(), 2);
        assert_eq!(
            auth.check(Some("alice"), Some(b"new"), false).await,
            AuthResult::Allowed
        );
        assert_eq!(
            auth.check(Some("alice"), Some(b"s3cret"), false).await,
            AuthResult::BadCredentials
        );
        assert_eq!(
            auth.check(Some("eve"), Some(b"x"), true).await,
            AuthResult::BadCredentials
        );
        assert_eq!(
            auth.check(Some("bob"), None, true).await,
            AuthResult::BadCredentials
        );
        assert_eq!(
            auth.check(None, None, false).await,
            AuthResult::NotAuthorized
        );
        assert_eq!(auth.check(None, None, true).await, AuthResult::Allowed);
    }

    #[tokio::test]
    async fn cluster_users_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        set_password(&path, "alice", b"file").unwrap();
        let auth = Authenticator::from_file(&path).unwrap();
        auth.cluster_users().write().unwrap().extend([
            ("alice".to_owned(), hash_password(b"cluster").unwrap()),
            ("carol".to_owned(), hash_password(b"c").unwrap()),
        ]);
        assert_eq!(auth.len(), 2);
        let check = |u: &'static str, p: &'static [u8]| auth.check(Some(u), Some(p), false);
        assert_eq!(check("alice", b"cluster").await, AuthResult::Allowed);
        assert_eq!(check("alice", b"file").await, AuthResult::BadCredentials);
        assert_eq!(check("carol", b"c").await, AuthResult::Allowed);
    }

    #[test]
    fn malformed_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# users\nalice:plaintext\n").unwrap();
        let err = Authenticator::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("plaintext"), "never echo secrets: {err}");
    }
}
