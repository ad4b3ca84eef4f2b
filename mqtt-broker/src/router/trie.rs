//! A topic-filter trie: subscriptions are stored by filter level, a PUBLISH topic is
//! matched by walking its levels once.
//!
//! Each node holds the ordinary subscribers of the filter that ends there, keyed by
//! client id, and its shared-subscription groups. `+` and `#` children are kept in
//! their own fields rather than in the literal map: the match walk follows the literal
//! child, `+` and `#` at each level, and this way only the literal lookup hashes (a
//! profile of QoS 0 fan-in had SipHash of `"+"`/`"#"` at ~15 % of the broker's CPU).
//! The literal map hashes with aHash: keyed per map like std's SipHash (subscribers
//! choose the keys, so a fixed hash would let them pile filters into one bucket), at a
//! fraction of its cost (SipHash was still 3–4 % of a cross-node flood's CPU).
//! Filters whose first level is a wildcard never match topics starting with `$`
//! (MQTT 4.7.2).

use std::collections::HashMap;

use mqtt_codec::ByteString;

/// A filter node. `V` is the per-subscriber value (the router stores the session
/// handle and subscription options there).
#[derive(Debug)]
pub struct TrieNode<V> {
    /// Literal levels.
    children: HashMap<Box<str>, TrieNode<V>, ahash::RandomState>,
    /// The `+` child.
    plus: Option<Box<TrieNode<V>>>,
    /// The `#` child.
    hash: Option<Box<TrieNode<V>>>,
    /// Ordinary subscribers of the filter ending at this node.
    subscribers: HashMap<ByteString, V>,
    /// Shared groups (`$share/{group}/{filter}`) of the filter ending at this node.
    shared: HashMap<Box<str>, SharedGroup<V>>,
}

/// The members of one shared-subscription group, in join order; delivery rotates
/// through them.
#[derive(Debug)]
pub struct SharedGroup<V> {
    /// The filter the group shares (without `$share/{group}/`): with the group name it
    /// names the group cluster-wide.
    pub filter: ByteString,
    pub members: Vec<(ByteString, V)>,
    /// Index of the member to try first next time (round robin).
    pub cursor: std::sync::atomic::AtomicUsize,
}

impl<V> Default for TrieNode<V> {
    fn default() -> Self {
        Self {
            children: HashMap::default(),
            plus: None,
            hash: None,
            subscribers: HashMap::new(),
            shared: HashMap::new(),
        }
    }
}

impl<V> TrieNode<V> {
    fn node_mut(&mut self, filter: &str) -> &mut TrieNode<V> {
        filter.split('/').fold(self, |node, level| match level {
            "+" => node.plus.get_or_insert_with(Default::default),
            "#" => node.hash.get_or_insert_with(Default::default),
            _ => node.children.entry(level.into()).or_default(),
        })
    }

    /// Adds or replaces `client`'s subscription to `filter`; returns the replaced value.
    pub fn insert(&mut self, filter: &str, client: ByteString, value: V) -> Option<V> {
        self.node_mut(filter).subscribers.insert(client, value)
    }

    /// Adds or replaces `client` in shared group `group` of `filter`; returns the replaced value.
    pub fn insert_shared(
        &mut self,
        group: &str,
        filter: &str,
        client: ByteString,
        value: V,
    ) -> Option<V> {
        let node = self.node_mut(filter);
        let group = node
            .shared
            .entry(group.into())
            .or_insert_with(|| SharedGroup {
                filter: ByteString::from(filter),
                members: Vec::new(),
                cursor: Default::default(),
            });
        if let Some(slot) = group.members.iter_mut().find(|(c, _)| *c == client) {
            return Some(std::mem::replace(&mut slot.1, value));
        }
        group.members.push((client, value));
        None
    }

    /// Removes `client`'s subscription to `filter` (or to `group`'s share of it).
    /// Empty nodes are pruned so that the trie does not grow without bound.
    pub fn remove(&mut self, group: Option<&str>, filter: &str, client: &str) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        self.remove_at(&levels, group, client)
    }

    fn remove_at(&mut self, levels: &[&str], group: Option<&str>, client: &str) -> Option<V> {
        let Some((first, rest)) = levels.split_first() else {
            return match group {
                None => self.subscribers.remove(client),
                Some(g) => {
                    let shared = self.shared.get_mut(g)?;
                    let pos = shared.members.iter().position(|(c, _)| c == client)?;
                    let (_, v) = shared.members.remove(pos);
                    if shared.members.is_empty() {
                        self.shared.remove(g);
                    }
                    Some(v)
                }
            };
        };
        let wildcard = match *first {
            "+" => Some(&mut self.plus),
            "#" => Some(&mut self.hash),
            _ => None,
        };
        if let Some(slot) = wildcard {
            let child = slot.as_mut()?;
            let removed = child.remove_at(rest, group, client);
            if child.is_empty() {
                *slot = None;
            }
            return removed;
        }
        let child = self.children.get_mut(*first)?;
        let removed = child.remove_at(rest, group, client);
        if child.is_empty() {
            self.children.remove(*first);
        }
        removed
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.subscribers.is_empty()
            && self.shared.is_empty()
    }

    /// Calls `visit` for every node whose filter matches `topic`.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut visit: impl FnMut(&'a TrieNode<V>)) {
        let dollar = topic.starts_with('$');
        let levels = topic.split('/');
        self.walk(levels, true, dollar, &mut visit);
    }

    fn walk<'a, 'l>(
        &'a self,
        mut levels: impl Iterator<Item = &'l str> + Clone,
        first: bool,
        dollar: bool,
        visit: &mut impl FnMut(&'a TrieNode<V>),
    ) {
        let wildcards_allowed = !(first && dollar);
        if wildcards_allowed {
            // '#' matches this level and everything below it, including the parent level.
            if let Some(hash) = &self.hash {
                visit(hash);
            }
        }
        let Some(level) = levels.next() else {
            visit(self);
            return;
        };
        if !self.children.is_empty() {
            if let Some(child) = self.children.get(level) {
                child.walk(levels.clone(), false, dollar, visit);
            }
        }
        if wildcards_allowed {
            if let Some(plus) = &self.plus {
                plus.walk(levels, false, dollar, visit);
            }
        }
    }

    /// Ordinary subscribers at this node.
    pub fn subscribers(&self) -> &HashMap<ByteString, V> {
        &self.subscribers
    }

    /// Shared groups at this node.
    pub fn shared_groups(&self) -> impl Iterator<Item = (&str, &SharedGroup<V>)> {
        self.shared.iter().map(|(k, v)| (&**k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(trie: &TrieNode<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |n| out.extend(n.subscribers().values().copied()));
        out.sort();
        out
    }

    fn trie(filters: &[&str]) -> TrieNode<u32> {
        let mut t = TrieNode::default();
        for (i, f) in filters.iter().enumerate() {
            t.insert(f, ByteString::from(format!("c{i}")), i as u32);
        }
        t
    }

    #[test]
    fn literal_plus_and_hash() {
        let t = trie(&["a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "+"]);
        assert_eq!(matches(&t, "a/b"), vec![0, 1, 2, 3, 4]);
        assert_eq!(matches(&t, "a"), vec![2, 3, 6]);
        assert_eq!(matches(&t, "a/b/c"), vec![2, 3, 5]);
        assert_eq!(matches(&t, "x/b"), vec![3, 4]);
    }

    #[test]
    fn empty_levels_are_levels() {
        let t = trie(&["a//b", "a/+/b", "/+", "+/+"]);
        assert_eq!(matches(&t, "a//b"), vec![0, 1]);
        assert_eq!(matches(&t, "/x"), vec![2, 3]);
        assert_eq!(matches(&t, "/"), vec![2, 3]);
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        let t = trie(&["#", "+/broker", "$SYS/#", "$SYS/+"]);
        assert_eq!(matches(&t, "$SYS/broker"), vec![2, 3]);
        assert_eq!(matches(&t, "SYS/broker"), vec![0, 1]);
    }

    #[test]
    fn remove_prunes_and_replace_returns_old() {
        let mut t = trie(&["a/b/c"]);
        assert_eq!(t.insert("a/b/c", "c0".into(), 9), Some(0));
        assert_eq!(t.remove(None, "a/b/c", "c0"), Some(9));
        assert!(t.is_empty());
        assert_eq!(t.remove(None, "a/b/c", "c0"), None);
    }

    #[test]
    fn shared_groups() {
        let mut t: TrieNode<u32> = TrieNode::default();
        assert_eq!(t.insert_shared("g", "s/+", "c1".into(), 1), None);
        assert_eq!(t.insert_shared("g", "s/+", "c2".into(), 2), None);
        assert_eq!(t.insert_shared("g", "s/+", "c1".into(), 3), Some(1));
        let mut groups = 0;
        t.for_each_match("s/x", |n| {
            for (name, g) in n.shared_groups() {
                assert_eq!(name, "g");
                assert_eq!(g.members.len(), 2);
                groups += 1;
            }
        });
        assert_eq!(groups, 1);
        assert_eq!(t.remove(Some("g"), "s/+", "c1"), Some(3));
        assert_eq!(t.remove(Some("g"), "s/+", "c2"), Some(2));
        assert!(t.is_empty());
    }
}
