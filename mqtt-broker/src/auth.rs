//! Username/password authentication against a file of argon2 hashes.
//!
//! The file has one `username:hash` line per user, where `hash` is an argon2 PHC
//! string (`$argon2id$v=19$...`); `#` starts a comment. `mqtt-broker passwd` writes
//! such lines. Passwords are compared only through argon2 and never logged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

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

/// The users the broker knows.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    /// Username → argon2 PHC hash. Empty when no password file is configured.
    users: Arc<HashMap<String, String>>,
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
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no users are configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
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
        let (Some(hash), Some(password)) = (
            self.users.get(username).cloned(),
            password.map(<[u8]>::to_vec),
        ) else {
            // A username without a password file entry: anonymous rules apply only
            // when there is no password file at all.
            return if self.users.is_empty() && anonymous_allowed {
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
