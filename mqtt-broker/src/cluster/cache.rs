//! The cluster route table as this broker sees it: a local mirror of every node's
//! `/mqtt/routes/` entries in a topic trie, so that deciding where a PUBLISH goes
//! never calls the placement center.
//!
//! [`RouteCache::plan`] answers, for one message: which other nodes have ordinary
//! subscribers, and for each matching shared group, which node delivers it this time
//! (round robin over the nodes with members, this one included). One message goes to
//! each chosen node once, however many of its subscriptions match.

use std::sync::atomic::Ordering;
use std::sync::RwLock;

use mqtt_codec::ByteString;
use placement_client::pb;
use prometheus_client::metrics::gauge::Gauge;

use super::mirror::Mirror;
use super::routes::RouteKey;
use crate::message::Message;
use crate::router::{SharedKey, TrieNode};

/// Where one message goes beyond this node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ForwardPlan {
    /// Each peer that gets the message, with the shared groups it delivers for.
    pub nodes: Vec<(u64, Vec<SharedKey>)>,
    /// Shared groups another node delivers this time; the local delivery skips them.
    pub remote_groups: Vec<SharedKey>,
}

impl ForwardPlan {
    fn node(&mut self, id: u64) -> &mut Vec<SharedKey> {
        let i = match self.nodes.iter().position(|(n, _)| *n == id) {
            Some(i) => i,
            None => {
                self.nodes.push((id, Vec::new()));
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i].1
    }
}

/// Every node's route-table entries, matched like subscriptions: the "subscriber" of a
/// filter is a node id.
#[derive(Debug)]
pub struct RouteCache {
    this_node: u64,
    trie: RwLock<TrieNode<u64>>,
    len: Gauge,
}

impl RouteCache {
    /// An empty cache for node `this_node`; `len` reports the number of entries.
    pub fn new(this_node: u64, len: Gauge) -> Self {
        Self {
            this_node,
            trie: RwLock::new(TrieNode::default()),
            len,
        }
    }

    /// Where `message` goes beyond this node.
    pub fn plan(&self, message: &Message) -> ForwardPlan {
        let mut plan = ForwardPlan::default();
        let trie = self.trie.read().unwrap_or_else(|e| e.into_inner());
        trie.for_each_match(&message.topic, |node| {
            for &id in node.subscribers().values() {
                if id != self.this_node {
                    plan.node(id);
                }
            }
            for (group, members) in node.shared_groups() {
                let n = members.members.len();
                if n == 0 {
                    continue;
                }
                let turn = members.cursor.fetch_add(1, Ordering::Relaxed) % n;
                let chosen = members.members[turn].1;
                if chosen != self.this_node {
                    let key = SharedKey {
                        group: group.into(),
                        filter: members.filter.clone(),
                    };
                    plan.remote_groups.push(key.clone());
                    plan.node(chosen).push(key);
                }
            }
        });
        plan
    }

    fn insert(trie: &mut TrieNode<u64>, node: u64, route: RouteKey) -> bool {
        let id = ByteString::from(node.to_string());
        match route {
            RouteKey::Filter(f) => trie.insert(&f, id, node).is_none(),
            RouteKey::Shared(k) => trie.insert_shared(&k.group, &k.filter, id, node).is_none(),
        }
    }

    fn remove(trie: &mut TrieNode<u64>, node: u64, route: &RouteKey) -> bool {
        let id = node.to_string();
        match route {
            RouteKey::Filter(f) => trie.remove(None, f, &id).is_some(),
            RouteKey::Shared(k) => trie.remove(Some(&k.group), &k.filter, &id).is_some(),
        }
    }
}

/// Feeds the cache from the `/mqtt/routes/` mirror.
impl Mirror for std::sync::Arc<RouteCache> {
    fn reset(&mut self, kvs: Vec<pb::KeyValue>) {
        let mut fresh = TrieNode::default();
        let mut count = 0;
        for kv in kvs {
            if let Some((node, route)) = std::str::from_utf8(&kv.key).ok().and_then(RouteKey::parse)
            {
                count += i64::from(RouteCache::insert(&mut fresh, node, route));
            }
        }
        *self.trie.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.len.set(count);
    }

    fn apply(&mut self, event: pb::Event) {
        let Some(kv) = event.kv else { return };
        let Some((node, route)) = std::str::from_utf8(&kv.key).ok().and_then(RouteKey::parse)
        else {
            return;
        };
        let mut trie = self.trie.write().unwrap_or_else(|e| e.into_inner());
        if event.r#type == pb::event::EventType::Delete as i32 {
            if RouteCache::remove(&mut trie, node, &route) {
                self.len.dec();
            }
        } else if RouteCache::insert(&mut trie, node, route) {
            self.len.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    fn put(key: String) -> pb::Event {
        pb::Event {
            r#type: pb::event::EventType::Put as i32,
            kv: Some(pb::KeyValue {
                key: key.into_bytes(),
                ..Default::default()
            }),
        }
    }

    fn delete(key: String) -> pb::Event {
        pb::Event {
            r#type: pb::event::EventType::Delete as i32,
            ..put(key)
        }
    }

    fn msg(topic: &str) -> Message {
        Message {
            topic: topic.into(),
            payload: Default::default(),
            qos: mqtt_codec::QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            publisher: "p".into(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        }
    }

    fn filter(f: &str) -> RouteKey {
        RouteKey::Filter(f.into())
    }

    fn shared(g: &str, f: &str) -> RouteKey {
        RouteKey::Shared(SharedKey {
            group: g.into(),
            filter: f.into(),
        })
    }

    #[test]
    fn one_forward_per_node_and_never_to_itself() {
        let mut cache = Arc::new(RouteCache::new(1, Gauge::default()));
        for (node, f) in [(1, "a/#"), (2, "a/+"), (2, "a/b"), (3, "x/#")] {
            cache.apply(put(filter(f).key(node)));
        }
        let plan = cache.plan(&msg("a/b"));
        assert_eq!(plan.nodes, vec![(2, vec![])]);
        assert!(plan.remote_groups.is_empty());
        assert_eq!(cache.len.get(), 4);
        cache.apply(delete(filter("a/+").key(2)));
        cache.apply(delete(filter("a/b").key(2)));
        assert!(cache.plan(&msg("a/b")).nodes.is_empty());
        assert_eq!(cache.len.get(), 2);
    }

    #[test]
    fn shared_groups_rotate_over_nodes_including_this_one() {
        let mut cache = Arc::new(RouteCache::new(1, Gauge::default()));
        for node in [1, 2, 3] {
            cache.apply(put(shared("g", "job/+").key(node)));
        }
        let mut local = 0;
        let mut remote = std::collections::HashMap::new();
        for _ in 0..9 {
            let plan = cache.plan(&msg("job/7"));
            match plan.nodes.as_slice() {
                [] => {
                    assert!(plan.remote_groups.is_empty());
                    local += 1;
                }
                [(node, groups)] => {
                    assert_eq!(groups.len(), 1);
                    assert_eq!(plan.remote_groups, *groups);
                    *remote.entry(*node).or_insert(0) += 1;
                }
                other => panic!("one node per group: {other:?}"),
            }
        }
        assert_eq!(local, 3);
        assert_eq!(remote.get(&2), Some(&3));
        assert_eq!(remote.get(&3), Some(&3));
    }

    #[test]
    fn reset_replaces_everything() {
        let mut cache = Arc::new(RouteCache::new(1, Gauge::default()));
        cache.apply(put(filter("old").key(2)));
        cache.reset(vec![pb::KeyValue {
            key: filter("new").key(3).into_bytes(),
            ..Default::default()
        }]);
        assert!(cache.plan(&msg("old")).nodes.is_empty());
        assert_eq!(cache.plan(&msg("new")).nodes, vec![(3, vec![])]);
        assert_eq!(cache.len.get(), 1);
    }
}
