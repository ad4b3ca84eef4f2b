//! The redaction rule: which field names hold secrets.
//!
//! A field is secret when its name contains one of [`SECRET_WORDS`], ignoring ASCII case:
//! `password`, `db_password`, `auth_token`, `Authorization`, `client_secret`, `api_key`.
//! Matching on "contains" over-redacts a few harmless names (`token_count`); that is the
//! safe way to be wrong. The rule applies to the *field name* only: a secret written into
//! a message string (`info!("pw={pw}")`) cannot be recognised, so never format secrets.

/// Words that mark a field as secret.
pub const SECRET_WORDS: [&str; 7] = [
    "password",
    "passwd",
    "token",
    "secret",
    "authorization",
    "api_key",
    "apikey",
];

/// What a secret field's value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Whether a field with this name must not be printed or exported.
pub fn is_secret_field(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_WORDS.iter().any(|word| {
        let word = word.as_bytes();
        name.len() >= word.len()
            && name
                .windows(word.len())
                .any(|window| window.eq_ignore_ascii_case(word))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "Password",
            "db_password",
            "passwd",
            "token",
            "auth_token",
            "refreshToken",
            "secret",
            "client_secret",
            "authorization",
            "Authorization",
            "api_key",
            "apiKey",
        ] {
            assert!(is_secret_field(name), "{name} should be secret");
        }
    }

    #[test]
    fn ordinary_names() {
        for name in [
            "client_id",
            "topic",
            "qos",
            "latency",
            "user",
            "pass",
            "key",
            "",
        ] {
            assert!(!is_secret_field(name), "{name} should not be secret");
        }
    }
}
