//! Topic access control: ordered allow/deny rules for publish and subscribe.
//!
//! The ACL file is TOML:
//! ```toml
//! default = "deny"            # when no rule matches (default "allow")
//! [[rules]]
//! permission = "allow"        # or "deny"
//! action = "publish"          # "subscribe" or "all"
//! topic = "devices/%c/#"      # %u = username, %c = client id
//! username = "alice"          # optional: only this user
//! clientid = "sensor-1"       # optional: only this client id
//! ```
//! Rules are tried in order and the first that applies decides. A rule with `%u` does
//! not apply to anonymous clients, and a substituted value containing `+`, `#` or `/`
//! makes the rule not apply (a client id must not widen a rule). For subscribe, an
//! allow rule applies when its filter covers every topic of the requested filter; a
//! deny rule applies when the two filters can match a common topic.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::error::BrokerError;

/// What a client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Permission {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RuleAction {
    Publish,
    Subscribe,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    permission: Permission,
    action: RuleAction,
    topic: String,
    username: Option<String>,
    clientid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default = "default_permission")]
    default: Permission,
    #[serde(default)]
    rules: Vec<Rule>,
}

fn default_permission() -> Permission {
    Permission::Allow
}

/// The broker's access-control list: the rules of the ACL file (none: allow
/// everything), unless the cluster's ACL is set in the placement center, which then
/// replaces them on every broker.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    file: AclRules,
    cluster: Arc<ClusterAcl>,
}

/// The cluster-wide ACL as mirrored from the placement center (`/mqtt/acl`).
#[derive(Debug, Default)]
pub struct ClusterAcl {
    /// Mirrors `rules.is_some()`, so that checking costs no lock while it is unset.
    set: AtomicBool,
    rules: RwLock<Option<AclRules>>,
}

impl ClusterAcl {
    /// Replaces the cluster's rules (`None`: the ACL file applies again).
    pub fn replace(&self, rules: Option<AclRules>) {
        let set = rules.is_some();
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
        self.set.store(set, Ordering::Release);
    }
}

impl Acl {
    /// Loads an ACL file; errors name the file and the field or rule.
    pub fn from_file(path: &Path) -> Result<Self, BrokerError> {
        let err = |message: String| BrokerError::AuthFile {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            file: AclRules::parse(&text).map_err(err)?,
            cluster: Default::default(),
        })
    }

    /// Where the cluster-wide ACL is kept up to date.
    pub fn cluster(&self) -> &Arc<ClusterAcl> {
        &self.cluster
    }

    /// Decides whether `client_id` (logged in as `username`) may do `action` on `topic`
    /// (a topic name for publish, a topic filter for subscribe).
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        action: Action,
        topic: &str,
    ) -> bool {
        if self.cluster.set.load(Ordering::Acquire) {
            let cluster = self.cluster.rules.read().unwrap_or_else(|e| e.into_inner());
            if let Some(rules) = cluster.as_ref() {
                return rules.check(username, client_id, action, topic);
            }
        }
        self.file.check(username, client_id, action, topic)
    }
}

/// One set of ACL rules (a file's, or the cluster's).
#[derive(Debug, Clone)]
pub struct AclRules {
    default: Permission,
    rules: Vec<Rule>,
}

impl Default for AclRules {
    fn default() -> Self {
        Self {
            default: Permission::Allow,
            rules: Vec::new(),
        }
    }
}

impl AclRules {
    /// Parses the TOML format above; errors name the field or rule.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: AclFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, rule) in file.rules.iter().enumerate() {
            let probe = rule.topic.replace("%u", "u").replace("%c", "c");
            mqtt_codec::topic::validate_topic_filter(&probe)
                .map_err(|e| format!("rules[{i}].topic {:?}: {e}", rule.topic))?;
        }
        Ok(Self {
            default: file.default,
            rules: file.rules,
        })
    }

    fn check(&self, username: Option<&str>, client_id: &str, action: Action, topic: &str) -> bool {
        for rule in &self.rules {
            let action_matches = matches!(
                (rule.action, action),
                (RuleAction::All, _)
                    | (RuleAction::Publish, Action::Publish)
                    | (RuleAction::Subscribe, Action::Subscribe)
            );
            if !action_matches
                || rule
                    .username
                    .as_deref()
                    .is_some_and(|u| Some(u) != username)
                || rule.clientid.as_deref().is_some_and(|c| c != client_id)
            {
                continue;
            }
            let Some(pattern) = substitute(&rule.topic, username, client_id) else {
                continue;
            };
            let applies = match (action, rule.permission) {
                (Action::Publish, _) => mqtt_codec::topic::matches(&pattern, topic),
                (Action::Subscribe, Permission::Allow) => covers(&pattern, topic),
                (Action::Subscribe, Permission::Deny) => overlaps(&pattern, topic),
            };
            if applies {
                return rule.permission == Permission::Allow;
            }
        }
        self.default == Permission::Allow
    }
}

fn substitute(pattern: &str, username: Option<&str>, client_id: &str) -> Option<String> {
    let safe = |v: &str| !v.contains(['+', '#', '/']);
    let mut out = pattern.to_owned();
    if out.contains("%u") {
        let user = username.filter(|u| safe(u))?;
        out = out.replace("%u", user);
    }
    if out.contains("%c") {
        if !safe(client_id) {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    Some(out)
}

/// True when every topic matched by `requested` is matched by `allowed`.
fn covers(allowed: &str, requested: &str) -> bool {
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    loop {
        match (a.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(x), Some(y)) if x == y && x != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when some topic is matched by both filters.
fn overlaps(f1: &str, f2: &str) -> bool {
    let mut a = f1.split('/');
    let mut b = f2.split('/');
    loop {
        match (a.next(), b.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl.toml");
        std::fs::write(&path, text).unwrap();
        Acl::from_file(&path).unwrap()
    }

    const RULES: &str = r#"
default = "deny"
[[rules]]
permission = "deny"
action = "all"
topic = "secret/#"
[[rules]]
permission = "allow"
action = "all"
topic = "devices/%c/#"
[[rules]]
permission = "allow"
action = "subscribe"
topic = "public/+"
[[rules]]
permission = "allow"
action = "publish"
topic = "users/%u"
username = "alice"
"#;

    #[test]
    fn the_cluster_acl_replaces_the_file_while_it_is_set() {
        let acl = acl(RULES);
        assert!(!acl.check(None, "c", Action::Publish, "open/x"));
        let open = AclRules::parse("default = \"allow\"").unwrap();
        acl.cluster().replace(Some(open));
        assert!(acl.check(None, "c", Action::Publish, "open/x"));
        acl.cluster().replace(None);
        assert!(!acl.check(None, "c", Action::Publish, "open/x"));
        assert!(AclRules::parse("rules = 1").is_err());
    }

    #[test]
    fn first_matching_rule_decides() {
        let acl = acl(RULES);
        assert!(acl.check(None, "d1", Action::Publish, "devices/d1/temp"));
        assert!(!acl.check(None, "d1", Action::Publish, "devices/d2/temp"));
        assert!(acl.check(None, "d1", Action::Subscribe, "devices/d1/#"));
        assert!(acl.check(None, "x", Action::Subscribe, "public/news"));
        assert!(acl.check(None, "x", Action::Subscribe, "public/+"));
        assert!(
            !acl.check(None, "x", Action::Subscribe, "public/#"),
            "# is wider than +"
        );
        assert!(
            !acl.check(None, "x", Action::Subscribe, "#"),
            "overlaps secret/# deny"
        );
        assert!(acl.check(Some("alice"), "x", Action::Publish, "users/alice"));
        assert!(!acl.check(Some("bob"), "x", Action::Publish, "users/bob"));
        assert!(
            !acl.check(None, "x", Action::Publish, "public/news"),
            "default deny"
        );
    }

    #[test]
    fn wildcards_in_client_id_do_not_widen_rules() {
        let acl = acl(RULES);
        assert!(!acl.check(None, "+", Action::Subscribe, "devices/+/#"));
        assert!(!acl.check(None, "#", Action::Publish, "devices/#/x"));
    }

    #[test]
    fn covers_and_overlaps() {
        assert!(covers("a/#", "a"));
        assert!(covers("a/+/c", "a/b/c"));
        assert!(!covers("a/+/c", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(overlaps("a/+", "+/b"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/b", "a/b/c"));
    }

    #[test]
    fn bad_rule_names_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl.toml");
        std::fs::write(
            &path,
            "[[rules]]\npermission=\"allow\"\naction=\"all\"\ntopic=\"a/#/b\"\n",
        )
        .unwrap();
        let err = Acl::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("rules[0].topic"), "{err}");
    }
}
