//! Topic names, topic filters, matching and shared subscriptions (MQTT 5 §4.7–4.8,
//! 3.1.1 §4.7).
//!
//! The decoder checks PUBLISH and Will topic names itself; topic filters in SUBSCRIBE
//! and UNSUBSCRIBE are left to the broker (MQTT 5 rejects them one by one in SUBACK /
//! UNSUBACK), which uses [`parse_shared`] first and then [`validate_topic_filter`].

/// Why a topic name or filter is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum TopicError {
    /// Topic names and filters are at least one character long [MQTT-4.7.3-1].
    #[error("topic is empty")]
    Empty,
    /// Longer than a UTF-8 Encoded String can be.
    #[error("topic is longer than 65,535 bytes")]
    TooLong,
    /// U+0000 is never allowed [MQTT-4.7.3-2].
    #[error("topic contains U+0000")]
    NullCharacter,
    /// `+` or `#` in a topic name [MQTT-4.7.0-1].
    #[error("topic name contains a wildcard")]
    WildcardInName,
    /// `#` not alone in the last level [MQTT-4.7.1-1].
    #[error("'#' must be alone in the last level")]
    InvalidMultiLevelWildcard,
    /// `+` sharing a level with other characters [MQTT-4.7.1-2].
    #[error("'+' must be alone in its level")]
    InvalidSingleLevelWildcard,
    /// A `$share/` share name that is empty or contains `+` or `#` [MQTT-4.8.2-1, -2].
    #[error("share name is empty or contains a wildcard")]
    InvalidShareName,
    /// `$share/{group}` with no topic filter after the group [MQTT-4.8.2-2].
    #[error("shared subscription has no topic filter")]
    MissingSharedFilter,
}

const MAX_LEN: usize = 65_535;

fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        Err(TopicError::Empty)
    } else if topic.len() > MAX_LEN {
        Err(TopicError::TooLong)
    } else if topic.contains('\0') {
        Err(TopicError::NullCharacter)
    } else {
        Ok(())
    }
}

/// Checks a topic name (what PUBLISH carries): non-empty, at most 65,535 bytes, no
/// `+`, `#` or U+0000.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter's general syntax: non-empty, at most 65,535 bytes, no U+0000,
/// `#` only alone in the last level, `+` only alone in its level. `$share/` rules are
/// [`parse_shared`]'s.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::InvalidMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::InvalidSingleLevelWildcard);
        }
    }
    Ok(())
}

/// True if the (valid) topic `filter` matches the (valid) topic `name` (§4.7).
///
/// `#` matches any number of levels, including none, so `sport/#` matches `sport`;
/// `+` matches exactly one level, which may be empty (`a/+/b` matches `a//b`); a filter
/// starting with a wildcard does not match names starting with `$` [MQTT-4.7.2-1].
/// Shared subscriptions are matched with the filter [`parse_shared`] extracts.
pub fn matches(filter: &str, name: &str) -> bool {
    // A byte walk over both strings, one level at a time: this runs for every
    // subscription a message is checked against, so it avoids `split`'s per-level cost.
    let (f, n) = (filter.as_bytes(), name.as_bytes());
    if n.first() == Some(&b'$') && matches!(f.first(), Some(b'+' | b'#')) {
        return false;
    }
    let (mut i, mut j) = (0, 0);
    loop {
        // Here i and j are at the start of a level of the filter and of the name.
        match f.get(i) {
            Some(b'#') => return true,
            Some(b'+') => {
                i += 1;
                while j < n.len() && n[j] != b'/' {
                    j += 1;
                }
            }
            _ => {
                while i < f.len() && f[i] != b'/' {
                    if n.get(j) != Some(&f[i]) {
                        return false;
                    }
                    i += 1;
                    j += 1;
                }
                if j < n.len() && n[j] != b'/' {
                    return false;
                }
            }
        }
        // Both levels ended: at a '/' or at the end of the string.
        match (i < f.len(), j < n.len()) {
            (true, true) => {
                i += 1;
                j += 1;
            }
            (false, false) => return true,
            // The name ended: only a trailing "/#" matches the parent level.
            (true, false) => return &f[i..] == b"/#",
            (false, true) => return false,
        }
    }
}

/// A shared subscription's parts: `$share/{group}/{filter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name: non-empty, no `/`, `+` or `#`.
    pub group: &'a str,
    /// The topic filter the group subscribes to (valid, may contain wildcards).
    pub filter: &'a str,
}

/// Splits a `$share/{group}/{filter}` subscription (MQTT 5 §4.8.2); `Ok(None)` for an
/// ordinary filter.
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return Ok(None);
    };
    let Some((group, filter)) = rest.split_once('/') else {
        return Err(if rest.is_empty() || rest.contains(['+', '#']) {
            TopicError::InvalidShareName
        } else {
            TopicError::MissingSharedFilter
        });
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::InvalidShareName);
    }
    if filter.is_empty() {
        return Err(TopicError::MissingSharedFilter);
    }
    validate_topic_filter(filter)?;
    Ok(Some(SharedFilter { group, filter }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TopicError::*;

    #[test]
    fn topic_names() {
        let long = "a".repeat(65_536);
        let cases: [(&str, Result<(), TopicError>); 11] = [
            ("a", Ok(())),
            ("/", Ok(())),
            ("a//b/", Ok(())),
            ("$SYS/broker/uptime", Ok(())),
            ("sport/tennis player1", Ok(())),
            ("", Err(Empty)),
            ("a/+", Err(WildcardInName)),
            ("a/#", Err(WildcardInName)),
            ("a+b", Err(WildcardInName)),
            ("a\0b", Err(NullCharacter)),
            (&long, Err(TooLong)),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_topic_name(name), expected, "{name:.20}");
        }
        assert_eq!(validate_topic_name(&long[1..]), Ok(()));
    }

    #[test]
    fn topic_filters() {
        let cases: [(&str, Result<(), TopicError>); 19] = [
            ("#", Ok(())),
            ("+", Ok(())),
            ("/", Ok(())),
            ("sport/#", Ok(())),
            ("sport/tennis/#", Ok(())),
            ("+/tennis/#", Ok(())),
            ("sport/+/player1", Ok(())),
            ("+/+", Ok(())),
            ("/+", Ok(())),
            ("a//+//", Ok(())),
            ("", Err(Empty)),
            ("sport/tennis#", Err(InvalidMultiLevelWildcard)),
            ("sport/tennis/#/ranking", Err(InvalidMultiLevelWildcard)),
            ("#/", Err(InvalidMultiLevelWildcard)),
            ("##", Err(InvalidMultiLevelWildcard)),
            ("sport+", Err(InvalidSingleLevelWildcard)),
            ("sport/+tennis", Err(InvalidSingleLevelWildcard)),
            ("++", Err(InvalidSingleLevelWildcard)),
            ("a/\0", Err(NullCharacter)),
        ];
        for (filter, expected) in cases {
            assert_eq!(validate_topic_filter(filter), expected, "{filter}");
        }
    }

    #[test]
    fn matching() {
        let cases = [
            // Spec examples (§4.7.1).
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player2", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/tennis/+", "sport/tennis", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "/finance", true),
            // Empty levels.
            ("a/+/b", "a//b", true),
            ("a//b", "a//b", true),
            ("a/b", "a//b", false),
            ("+", "", true),
            ("/", "/", true),
            ("+/+", "/", true),
            ("+", "/", false),
            ("#", "/", true),
            ("/#", "/", true),
            ("a/#", "a/", true),
            // Exact, case-sensitive matching.
            ("a/b", "a/b", true),
            ("a/b", "A/b", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            // '$' topics are not matched by a leading wildcard.
            ("#", "$SYS/broker", false),
            ("+/broker", "$SYS/broker", false),
            ("+", "$SYS", false),
            ("$SYS/#", "$SYS/broker/clients", true),
            ("$SYS/#", "$SYS", true),
            ("$SYS/+", "$SYS/broker", true),
            ("a/#", "a/$SYS", true),
            ("a/+", "a/$x", true),
        ];
        for (filter, name, expected) in cases {
            assert_eq!(matches(filter, name), expected, "{filter} vs {name}");
        }
    }

    /// The spec's level-by-level definition, written the obvious way.
    fn reference_matches(filter: &str, name: &str) -> bool {
        if name.starts_with('$') && filter.starts_with(['+', '#']) {
            return false;
        }
        let (mut f, mut n) = (filter.split('/'), name.split('/'));
        loop {
            match (f.next(), n.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn matching_agrees_with_the_reference_on_every_small_pair() {
        // Every filter and name up to four characters over a small alphabet.
        fn all(alphabet: &[char], max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..max {
                frontier = frontier
                    .iter()
                    .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                    .collect();
                out.extend(frontier.iter().cloned());
            }
            out
        }
        let filters: Vec<String> = all(&['a', '/', '+', '#', '$'], 4)
            .into_iter()
            .filter(|f| validate_topic_filter(f).is_ok())
            .collect();
        let names: Vec<String> = all(&['a', 'b', '/', '$'], 4);
        for filter in &filters {
            for name in &names {
                assert_eq!(
                    matches(filter, name),
                    reference_matches(filter, name),
                    "{filter:?} vs {name:?}"
                );
            }
        }
    }

    #[test]
    fn shared_subscriptions() {
        let ok = |group, filter| Ok(Some(SharedFilter { group, filter }));
        assert_eq!(parse_shared("$share/g/a/b"), ok("g", "a/b"));
        assert_eq!(
            parse_shared("$share/consumer1/sport/tennis/+"),
            ok("consumer1", "sport/tennis/+")
        );
        assert_eq!(parse_shared("$share/g/#"), ok("g", "#"));
        assert_eq!(parse_shared("$share/g//"), ok("g", "/"));
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert_eq!(parse_shared("$share"), Ok(None));
        assert_eq!(parse_shared("$SHARE/g/a"), Ok(None));
        assert_eq!(parse_shared("$sharex/g/a"), Ok(None));
        assert_eq!(parse_shared("$share/grp"), Err(MissingSharedFilter));
        assert_eq!(parse_shared("$share/grp/"), Err(MissingSharedFilter));
        assert_eq!(parse_shared("$share/"), Err(InvalidShareName));
        assert_eq!(parse_shared("$share//a"), Err(InvalidShareName));
        assert_eq!(parse_shared("$share/+/a"), Err(InvalidShareName));
        assert_eq!(parse_shared("$share/g#/a"), Err(InvalidShareName));
        assert_eq!(parse_shared("$share/g+"), Err(InvalidShareName));
        assert_eq!(parse_shared("$share/g/a#"), Err(InvalidMultiLevelWildcard));
        assert_eq!(
            parse_shared("$share/g/a+/b"),
            Err(InvalidSingleLevelWildcard)
        );
    }
}
