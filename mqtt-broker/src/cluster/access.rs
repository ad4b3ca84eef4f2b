//! Users and the ACL, cluster-wide: kept in the placement center and mirrored by every
//! broker, so that a user added once can log in on any broker and one ACL rules them
//! all. `mqtt-broker cluster-user` and `mqtt-broker cluster-acl` write them.
//!
//! * `/mqtt/users/{username}`: the user's argon2 PHC hash. These users add to the
//!   brokers' password files (and win over a file entry of the same name).
//! * `/mqtt/acl`: an ACL in the file format of `acl.rs`. While set, it replaces the
//!   brokers' ACL files.

use std::sync::{Arc, RwLock};

use placement_client::{pb, PlacementClient};

use super::mirror::Mirror;
use crate::acl::{AclRules, ClusterAcl};
use crate::auth::Users;

pub const USERS_PREFIX: &str = "/mqtt/users/";
pub const ACL_KEY: &str = "/mqtt/acl";

/// Keeps a broker's copy of the cluster's users.
pub struct UsersMirror(pub Arc<RwLock<Users>>);

impl UsersMirror {
    fn set(users: &mut Users, kv: &pb::KeyValue) {
        let name = std::str::from_utf8(&kv.key)
            .ok()
            .and_then(|k| k.strip_prefix(USERS_PREFIX));
        match (name, std::str::from_utf8(&kv.value)) {
            (Some(name), Ok(hash)) if argon2::PasswordHash::new(hash).is_ok() => {
                users.insert(name.to_owned(), hash.to_owned());
            }
            (Some(name), _) => {
                tracing::warn!(
                    user = name,
                    "cluster user without a valid argon2 hash; ignored"
                );
                users.remove(name);
            }
            (None, _) => {}
        }
    }

    fn users(&self) -> std::sync::RwLockWriteGuard<'_, Users> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Mirror for UsersMirror {
    fn reset(&mut self, kvs: Vec<pb::KeyValue>) {
        let mut users = self.users();
        users.clear();
        for kv in &kvs {
            Self::set(&mut users, kv);
        }
    }

    fn apply(&mut self, event: pb::Event) {
        let Some(kv) = event.kv else { return };
        let mut users = self.users();
        if event.r#type == pb::event::EventType::Delete as i32 {
            if let Some(name) = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|k| k.strip_prefix(USERS_PREFIX))
            {
                users.remove(name);
            }
        } else {
            Self::set(&mut users, &kv);
        }
    }
}

/// Keeps a broker's copy of the cluster's ACL.
pub struct AclMirror(pub Arc<ClusterAcl>);

impl AclMirror {
    fn set(&self, kv: Option<&pb::KeyValue>) {
        let rules = kv.and_then(|kv| {
            let parsed = std::str::from_utf8(&kv.value)
                .map_err(|e| e.to_string())
                .and_then(AclRules::parse);
            match parsed {
                Ok(rules) => Some(rules),
                Err(e) => {
                    // `cluster-acl` checks before it stores; keep the last good rules.
                    tracing::error!(error = %e, "the cluster ACL in the placement center is invalid; keeping the rules in force");
                    None
                }
            }
        });
        if rules.is_some() || kv.is_none() {
            self.0.replace(rules);
        }
    }
}

impl Mirror for AclMirror {
    fn reset(&mut self, kvs: Vec<pb::KeyValue>) {
        let kv = kvs.iter().find(|kv| kv.key == ACL_KEY.as_bytes());
        self.set(kv);
    }

    fn apply(&mut self, event: pb::Event) {
        let Some(kv) = event.kv else { return };
        if kv.key != ACL_KEY.as_bytes() {
            return;
        }
        if event.r#type == pb::event::EventType::Delete as i32 {
            self.set(None);
        } else {
            self.set(Some(&kv));
        }
    }
}

/// Adds or replaces a cluster user.
pub async fn put_user(client: &PlacementClient, user: &str, password: &[u8]) -> Result<(), String> {
    if user.is_empty() || user.contains(['/', ':', '\n']) {
        return Err("username must be non-empty and contain no '/', ':' or newline".into());
    }
    let hash = crate::auth::hash_password(password)?;
    client
        .put(format!("{USERS_PREFIX}{user}"), hash.into_bytes())
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Removes a cluster user; false when there was none.
pub async fn delete_user(client: &PlacementClient, user: &str) -> Result<bool, String> {
    client
        .delete(format!("{USERS_PREFIX}{user}"))
        .await
        .map(|r| r.deleted > 0)
        .map_err(|e| e.to_string())
}

/// Stores the cluster ACL after checking it (`None` removes it).
pub async fn put_acl(client: &PlacementClient, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(text) => {
            AclRules::parse(text)?;
            client
                .put(ACL_KEY, text.as_bytes().to_vec())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        None => client
            .delete(ACL_KEY)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}
