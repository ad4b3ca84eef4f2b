//! Routing: which sessions does a PUBLISH go to.
//!
//! The [`Router`] owns the subscription trie behind a read-write lock: publishers take
//! the read lock to match, SUBSCRIBE/UNSUBSCRIBE take the write lock. Matching yields
//! one [`Target`] per session (overlapping subscriptions merged: the highest QoS and
//! every subscription identifier, MQTT 5 §3.3.4) plus one member per shared group.
//! In a cluster a shared group may have members on several nodes; the publishing node
//! picks the node per message and [`SharedSelection`] tells the local match which
//! groups it serves.

mod trie;

pub use trie::TrieNode;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use mqtt_codec::{ByteString, QoS, SubscriptionOptions};

use crate::message::Message;
use crate::session::{Session, Subscription};

/// What the trie stores for each subscriber.
#[derive(Debug, Clone)]
struct Entry {
    session: Arc<Session>,
    options: SubscriptionOptions,
    id: Option<u32>,
}

/// A session a message goes to, with the per-subscriber delivery parameters.
#[derive(Debug)]
pub struct Target {
    pub session: Arc<Session>,
    /// min(published QoS, highest matching subscription QoS).
    pub qos: QoS,
    /// True when some matching subscription has Retain As Published.
    pub retain_as_published: bool,
    pub subscription_ids: Vec<u32>,
}

/// A shared-subscription group as the cluster names it: group name and filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedKey {
    pub group: ByteString,
    pub filter: ByteString,
}

/// Which shared-subscription groups one local delivery serves.
#[derive(Debug, Clone, Copy)]
pub enum SharedSelection<'a> {
    /// Every matching group: standalone, or no group has members elsewhere.
    All,
    /// Every matching group but these: another node delivers them this time.
    Except(&'a [SharedKey]),
    /// Only these: a forwarded message, for the groups its publishing node chose us for.
    Only(&'a [SharedKey]),
}

impl SharedSelection<'_> {
    fn includes(&self, group: &str, filter: &str) -> bool {
        let listed =
            |keys: &[SharedKey]| keys.iter().any(|k| k.group == group && k.filter == filter);
        match self {
            Self::All => true,
            Self::Except(keys) => !listed(keys),
            Self::Only(keys) => listed(keys),
        }
    }
}

/// The subscription table of this broker.
#[derive(Debug, Default)]
pub struct Router {
    trie: RwLock<TrieNode<Entry>>,
    /// Number of subscriptions (ordinary and shared members).
    len: AtomicUsize,
}

impl Router {
    /// Adds or replaces a subscription of `session`. Returns true if it replaced one.
    pub fn subscribe(&self, session: &Arc<Session>, sub: &Subscription) -> bool {
        let entry = Entry {
            session: session.clone(),
            options: sub.options,
            id: sub.id,
        };
        let mut trie = self.trie.write().unwrap_or_else(|e| e.into_inner());
        let client = session.client_id.clone();
        let replaced = match &sub.share_group {
            None => trie.insert(&sub.filter, client, entry),
            Some(group) => trie.insert_shared(group, &sub.filter, client, entry),
        }
        .is_some();
        if !replaced {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        replaced
    }

    /// Number of subscriptions held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one subscription of `client_id`. Returns true if it existed.
    pub fn unsubscribe(&self, client_id: &str, sub: &Subscription) -> bool {
        let mut trie = self.trie.write().unwrap_or_else(|e| e.into_inner());
        let removed = trie
            .remove(sub.share_group.as_deref(), &sub.filter, client_id)
            .is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Removes every subscription of a session that ended; returns those it held.
    pub fn remove_session(&self, session: &Session) -> Vec<Subscription> {
        let mut subs: Vec<Subscription> = session.lock().subscriptions.values().cloned().collect();
        let mut trie = self.trie.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|sub| {
            let removed = trie
                .remove(sub.share_group.as_deref(), &sub.filter, &session.client_id)
                .is_some();
            if removed {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            removed
        });
        subs
    }

    /// Collects the targets of `message` into `out` (cleared first; reuse it across
    /// calls), serving the shared groups `shared` selects.
    pub fn route(&self, message: &Message, shared: SharedSelection<'_>, out: &mut Vec<Target>) {
        out.clear();
        let trie = self.trie.read().unwrap_or_else(|e| e.into_inner());
        let mut nodes = 0;
        trie.for_each_match(&message.topic, |node| {
            nodes += 1;
            for (client, entry) in node.subscribers() {
                if entry.options.no_local && *client == message.publisher {
                    continue;
                }
                out.push(target(entry, message.qos));
            }
            for (name, group) in node.shared_groups() {
                if !shared.includes(name, &group.filter) {
                    continue;
                }
                if let Some(entry) = pick_member(&group.members, &group.cursor) {
                    out.push(target(entry, message.qos));
                }
            }
        });
        drop(trie);
        if nodes > 1 && out.len() > 1 {
            merge_overlapping(out);
        }
    }
}

fn target(entry: &Entry, published: QoS) -> Target {
    Target {
        session: entry.session.clone(),
        qos: published.min(entry.options.qos),
        retain_as_published: entry.options.retain_as_published,
        subscription_ids: entry.id.into_iter().collect(),
    }
}

/// Round robin over the group's members, preferring online ones; an offline member is
/// chosen only when none is online (its session then queues QoS 1/2).
fn pick_member<'a>(
    members: &'a [(ByteString, Entry)],
    cursor: &std::sync::atomic::AtomicUsize,
) -> Option<&'a Entry> {
    if members.is_empty() {
        return None;
    }
    let n = members.len();
    let start = cursor.load(Ordering::Relaxed) % n;
    let chosen = (0..n)
        .map(|i| (start + i) % n)
        .find(|&i| members[i].1.session.is_online())
        .unwrap_or(start);
    // Go on after the member chosen, not after `start`: otherwise the online member
    // following an offline one gets its turns too and the rotation is uneven.
    // Concurrent publishers may race here; each message still goes to one member.
    cursor.store(chosen + 1, Ordering::Relaxed);
    Some(&members[chosen].1)
}

/// Merges targets of the same session (overlapping subscriptions): one delivery with
/// the maximum QoS and all subscription identifiers.
fn merge_overlapping(out: &mut Vec<Target>) {
    out.sort_by_key(|t| Arc::as_ptr(&t.session));
    let mut merged: Vec<Target> = Vec::with_capacity(out.len());
    for t in out.drain(..) {
        match merged.last_mut() {
            Some(last) if Arc::ptr_eq(&last.session, &t.session) => {
                last.qos = last.qos.max(t.qos);
                last.retain_as_published |= t.retain_as_published;
                last.subscription_ids.extend(t.subscription_ids);
            }
            _ => merged.push(t),
        }
    }
    *out = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sub(filter: &str, qos: QoS, id: Option<u32>) -> Subscription {
        let (share_group, filter) = match mqtt_codec::topic::parse_shared(filter).unwrap() {
            Some(s) => (Some(s.group.into()), s.filter.into()),
            None => (None, filter.into()),
        };
        Subscription {
            share_group,
            filter,
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
            id,
        }
    }

    fn msg(topic: &str, qos: QoS, publisher: &str) -> Message {
        Message {
            topic: topic.into(),
            payload: Default::default(),
            qos,
            retain: false,
            properties: Default::default(),
            publisher: publisher.into(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        }
    }

    impl Router {
        fn route_all(&self, message: &Message, out: &mut Vec<Target>) {
            self.route(message, SharedSelection::All, out)
        }
    }

    #[test]
    fn shared_selection_serves_only_the_chosen_groups() {
        let router = Router::default();
        let a = Arc::new(Session::new("a".into()));
        let b = Arc::new(Session::new("b".into()));
        router.subscribe(&a, &sub("$share/g1/job/+", QoS::AtLeastOnce, None));
        router.subscribe(&b, &sub("$share/g2/job/+", QoS::AtLeastOnce, None));
        let g1 = [SharedKey {
            group: "g1".into(),
            filter: "job/+".into(),
        }];
        let m = msg("job/1", QoS::AtLeastOnce, "p");
        let mut out = vec![];
        router.route(&m, SharedSelection::Only(&g1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].session.client_id, "a");
        router.route(&m, SharedSelection::Except(&g1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].session.client_id, "b");
        router.route_all(&m, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn overlapping_subscriptions_merge_to_max_qos_and_all_ids() {
        let router = Router::default();
        let s = Arc::new(Session::new("c".into()));
        router.subscribe(&s, &sub("a/+", QoS::AtMostOnce, Some(1)));
        router.subscribe(&s, &sub("a/#", QoS::AtLeastOnce, Some(2)));
        let mut out = vec![];
        router.route_all(&msg("a/b", QoS::ExactlyOnce, "p"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].qos, QoS::AtLeastOnce);
        let mut ids = out[0].subscription_ids.clone();
        ids.sort();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn no_local_skips_the_publisher() {
        let router = Router::default();
        let s = Arc::new(Session::new("me".into()));
        let mut local = sub("t", QoS::AtMostOnce, None);
        local.options.no_local = true;
        router.subscribe(&s, &local);
        let mut out = vec![];
        router.route_all(&msg("t", QoS::AtMostOnce, "me"), &mut out);
        assert!(out.is_empty());
        router.route_all(&msg("t", QoS::AtMostOnce, "other"), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn shared_group_round_robins_over_online_members() {
        let router = Router::default();
        let a = Arc::new(Session::new("a".into()));
        let b = Arc::new(Session::new("b".into()));
        let c = Arc::new(Session::new("c".into()));
        a.set_online(true);
        b.set_online(true);
        for s in [&a, &b, &c] {
            router.subscribe(s, &sub("$share/g/job/+", QoS::AtLeastOnce, None));
        }
        let mut counts = std::collections::HashMap::new();
        let mut out = vec![];
        for _ in 0..10 {
            router.route_all(&msg("job/1", QoS::AtLeastOnce, "p"), &mut out);
            assert_eq!(out.len(), 1, "one delivery per group");
            *counts
                .entry(out[0].session.client_id.to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(
            counts.get("c"),
            None,
            "offline member skipped while others are online"
        );
        assert!(counts["a"] >= 4 && counts["b"] >= 4, "{counts:?}");
    }

    #[test]
    fn unsubscribe_and_remove_session() {
        let router = Router::default();
        let s = Arc::new(Session::new("c".into()));
        let x = sub("x/#", QoS::AtMostOnce, None);
        assert!(!router.subscribe(&s, &x));
        assert!(router.subscribe(&s, &x), "same filter replaces");
        assert!(router.unsubscribe("c", &x));
        assert!(!router.unsubscribe("c", &x));
        router.subscribe(&s, &x);
        s.lock().subscriptions.insert("x/#".into(), x);
        router.remove_session(&s);
        let mut out = vec![];
        router.route_all(&msg("x/1", QoS::AtMostOnce, "p"), &mut out);
        assert!(out.is_empty());
    }
}
