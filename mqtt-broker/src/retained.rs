//! Retained messages: the last retained PUBLISH per topic, delivered to new subscribers.
//!
//! [`RetainedStore`] is the narrow interface the broker uses, so that a clustered store
//! (placement-center index, journal payloads) can replace [`MemoryRetainedStore`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::message::Message;

/// Where retained messages live.
pub trait RetainedStore: Send + Sync + std::fmt::Debug {
    /// Sets (non-empty payload) or clears (empty payload) the retained message of its topic.
    fn retain(&self, message: Arc<Message>);
    /// Unexpired retained messages whose topics match `filter`.
    fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>>;
    /// Number of retained messages.
    fn len(&self) -> usize;
    /// Removes every message whose topic does not start with `$`: the cluster-wide
    /// ones, before a cluster mirror loads them again (`$SYS` stays per node).
    fn clear_shared(&self);
    /// True when nothing is retained.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }

    fn clear(&mut self, levels: &[&str]) -> bool {
        let removed = match levels.split_first() {
            None => self.message.take().is_some(),
            Some((first, rest)) => {
                let Some(child) = self.children.get_mut(*first) else {
                    return false;
                };
                let removed = child.clear(rest);
                if child.is_empty() {
                    self.children.remove(*first);
                }
                removed
            }
        };
        removed
    }

    fn collect(&self, filter: &[&str], first: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
        let Some((level, rest)) = filter.split_first() else {
            out.extend(self.message.iter().filter(|m| !m.is_expired(now)).cloned());
            return;
        };
        // Wildcards at the first level do not match `$` topics (MQTT 4.7.2).
        let visible = |name: &str| !(first && name.starts_with('$'));
        match *level {
            "#" => {
                out.extend(
                    self.message
                        .iter()
                        .filter(|m| !first && !m.is_expired(now))
                        .cloned(),
                );
                for (name, child) in &self.children {
                    if visible(name) {
                        child.collect_all(now, out);
                    }
                }
            }
            "+" => {
                for (name, child) in &self.children {
                    if visible(name) {
                        child.collect(rest, false, now, out);
                    }
                }
            }
            literal => {
                if let Some(child) = self.children.get(literal) {
                    child.collect(rest, false, now, out);
                }
            }
        }
    }

    fn count(&self) -> usize {
        usize::from(self.message.is_some()) + self.children.values().map(Node::count).sum::<usize>()
    }

    fn collect_all(&self, now: Instant, out: &mut Vec<Arc<Message>>) {
        out.extend(self.message.iter().filter(|m| !m.is_expired(now)).cloned());
        for child in self.children.values() {
            child.collect_all(now, out);
        }
    }
}

/// Retained messages in memory, in a topic-level tree so that a wildcard subscribe
/// walks only the matching branches.
#[derive(Debug, Default)]
pub struct MemoryRetainedStore {
    inner: RwLock<(Node, usize)>,
}

impl RetainedStore for MemoryRetainedStore {
    fn retain(&self, message: Arc<Message>) {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let (root, count) = &mut *guard;
        let levels: Vec<&str> = message.topic.split('/').collect();
        if message.payload.is_empty() {
            if root.clear(&levels) {
                *count -= 1;
            }
            return;
        }
        let node = levels.iter().fold(root, |node, level| {
            node.children.entry((*level).into()).or_default()
        });
        if node.message.replace(message).is_none() {
            *count += 1;
        }
    }

    fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        guard.0.collect(&levels, true, now, &mut out);
        out
    }

    fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).1
    }

    fn clear_shared(&self) {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let (root, count) = &mut *guard;
        root.message = None;
        root.children.retain(|name, _| name.starts_with('$'));
        *count = root.count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_codec::QoS;
    use std::time::Duration;

    fn msg(topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            publisher: "p".into(),
            received_at: Instant::now(),
            remote: false,
            trace: None,
        })
    }

    fn topics(store: &MemoryRetainedStore, filter: &str) -> Vec<String> {
        let mut t: Vec<String> = store
            .matching(filter, Instant::now())
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        t.sort();
        t
    }

    #[test]
    fn set_replace_delete_and_match() {
        let s = MemoryRetainedStore::default();
        s.retain(msg("a/b", b"1"));
        s.retain(msg("a/b", b"2"));
        s.retain(msg("a/c/d", b"3"));
        s.retain(msg("a", b"4"));
        s.retain(msg("$SYS/x", b"5"));
        assert_eq!(s.len(), 4);
        assert_eq!(&s.matching("a/b", Instant::now())[0].payload[..], b"2");
        assert_eq!(topics(&s, "a/#"), ["a", "a/b", "a/c/d"]);
        assert_eq!(topics(&s, "a/+"), ["a/b"]);
        assert_eq!(topics(&s, "#"), ["a", "a/b", "a/c/d"]);
        assert_eq!(topics(&s, "+/x"), Vec::<String>::new());
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/x"]);
        s.retain(msg("a/b", b""));
        assert_eq!(s.len(), 3);
        assert_eq!(topics(&s, "a/+"), Vec::<String>::new());
        s.clear_shared();
        assert_eq!(s.len(), 1);
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/x"]);
    }

    #[test]
    fn expired_messages_are_not_returned() {
        let s = MemoryRetainedStore::default();
        let mut m = (*msg("e", b"x")).clone();
        m.properties.expires_at = Some(Instant::now() - Duration::from_secs(1));
        s.retain(Arc::new(m));
        assert!(s.matching("e", Instant::now()).is_empty());
    }
}
