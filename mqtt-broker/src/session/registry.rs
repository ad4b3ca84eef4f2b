//! The registry of sessions by client id: opening (create, resume or take over) and
//! closing them.
//!
//! This is the narrow interface a clustered session store will later implement: the
//! connection code only ever asks to open a session for a client id and to close it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use mqtt_codec::ByteString;
use tokio::sync::oneshot;

use super::{ConnectionSlot, Kick, Session};

/// The result of [`SessionRegistry::open`].
#[derive(Debug)]
pub struct OpenedSession {
    pub session: Arc<Session>,
    /// True when an existing session was resumed (CONNACK Session Present).
    pub present: bool,
    /// A previous session for this client id that ended now (clean start); the caller
    /// removes its subscriptions from the router.
    pub discarded: Option<Arc<Session>>,
    /// The generation of this connection on the session.
    pub generation: u64,
}

/// All sessions of this broker, online and offline.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: Mutex<HashMap<ByteString, Arc<Session>>>,
}

impl SessionRegistry {
    fn map(&self) -> MutexGuard<'_, HashMap<ByteString, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the session for `client_id` on behalf of connection `conn_id`.
    ///
    /// An existing owner is kicked (session takeover). With `clean_start` any existing
    /// session is discarded and a new one created; otherwise an existing one is resumed.
    pub fn open(
        &self,
        client_id: &ByteString,
        clean_start: bool,
        conn_id: u64,
        kick: oneshot::Sender<Kick>,
    ) -> OpenedSession {
        let mut map = self.map();
        let existing = map.get(client_id).cloned();
        if let Some(old) = &existing {
            let mut st = old.lock();
            if let Some(slot) = st.connection.take() {
                // The old connection may already be gone; then nobody listens.
                let _ = slot.kick.send(Kick::TakenOver);
            }
            old.set_online(false);
            if clean_start {
                st.ended = true;
                old.ended_signal.cancel();
            }
        }
        let (session, present, discarded) = match existing {
            Some(old) if !clean_start => (old, true, None),
            other => {
                let fresh = Arc::new(Session::new(client_id.clone()));
                map.insert(client_id.clone(), fresh.clone());
                (fresh, false, other)
            }
        };
        let generation = {
            let mut st = session.lock();
            st.generation += 1;
            st.connection = Some(ConnectionSlot { conn_id, kick });
            st.generation
        };
        session.set_online(true);
        OpenedSession {
            session,
            present,
            discarded,
            generation,
        }
    }

    /// Gives up the session of `client_id` to another broker: its connection (if any) is
    /// told it was taken over and the session ends here. Without `clean_start` the client
    /// resumes it elsewhere, so a delayed will is not sent (the generation moves on).
    /// Returns the session (for its state and routes), if there was one.
    pub fn take(&self, client_id: &str, clean_start: bool) -> Option<Arc<Session>> {
        let session = self.map().remove(client_id)?;
        let mut st = session.lock();
        if let Some(slot) = st.connection.take() {
            let _ = slot.kick.send(Kick::TakenOver);
        }
        session.set_online(false);
        if !clean_start {
            st.generation += 1;
        }
        st.ended = true;
        session.ended_signal.cancel();
        drop(st);
        Some(session)
    }

    /// Releases the session from connection `conn_id`. Returns true when the session
    /// ended (expiry interval 0) and was removed; the caller then removes its routes.
    /// Does nothing if another connection has taken the session over.
    pub fn close(&self, session: &Arc<Session>, conn_id: u64, expiry_interval: u32) -> bool {
        let mut map = self.map();
        let mut st = session.lock();
        if !st.is_owned_by(conn_id) {
            return false;
        }
        st.connection = None;
        st.expiry_interval = expiry_interval;
        session.set_online(false);
        if expiry_interval == 0 {
            st.ended = true;
            session.ended_signal.cancel();
            Self::remove_entry(&mut map, session);
            return true;
        }
        false
    }

    /// Removes an offline session whose expiry timer (started at `generation`) ran
    /// out. Returns false if the client came back meanwhile.
    pub fn expire(&self, session: &Arc<Session>, generation: u64) -> bool {
        let mut map = self.map();
        let mut st = session.lock();
        if st.generation != generation || st.connection.is_some() || st.ended {
            return false;
        }
        st.ended = true;
        session.ended_signal.cancel();
        Self::remove_entry(&mut map, session);
        true
    }

    fn remove_entry(map: &mut HashMap<ByteString, Arc<Session>>, session: &Arc<Session>) {
        if map
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            map.remove(&session.client_id);
        }
    }

    /// Number of sessions, online and offline.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every session (for shutdown and statistics).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(
        reg: &SessionRegistry,
        id: &str,
        clean: bool,
        conn: u64,
    ) -> (OpenedSession, oneshot::Receiver<Kick>) {
        let (tx, rx) = oneshot::channel();
        (reg.open(&ByteString::from(id), clean, conn, tx), rx)
    }

    #[test]
    fn resume_takeover_and_clean_start() {
        let reg = SessionRegistry::default();
        let (first, mut kick1) = open(&reg, "c", false, 1);
        assert!(!first.present);
        let (second, _kick2) = open(&reg, "c", false, 2);
        assert!(second.present, "persistent session resumed");
        assert!(Arc::ptr_eq(&first.session, &second.session));
        assert_eq!(kick1.try_recv(), Ok(Kick::TakenOver));
        // The old connection closing later must not release the new owner.
        assert!(!reg.close(&first.session, 1, 0));
        assert!(second.session.is_online());
        let (third, _k3) = open(&reg, "c", true, 3);
        assert!(!third.present);
        assert!(third
            .discarded
            .is_some_and(|d| Arc::ptr_eq(&d, &second.session)));
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn take_kicks_the_owner_and_forgets_the_session() {
        let reg = SessionRegistry::default();
        let (s, mut kick) = open(&reg, "c", false, 1);
        let generation = s.session.lock().generation;
        let taken = reg.take("c", false).expect("session exists");
        assert!(Arc::ptr_eq(&taken, &s.session));
        assert_eq!(kick.try_recv(), Ok(Kick::TakenOver));
        assert!(taken.lock().ended && taken.lock().generation > generation);
        assert!(reg.is_empty());
        assert!(reg.take("c", false).is_none());
    }

    #[test]
    fn close_with_zero_expiry_ends_session_and_expire_respects_generation() {
        let reg = SessionRegistry::default();
        let (s, _k) = open(&reg, "a", false, 1);
        assert!(reg.close(&s.session, 1, 0));
        assert!(reg.is_empty());

        let (s, _k) = open(&reg, "b", false, 2);
        assert!(!reg.close(&s.session, 2, 60));
        let (again, _k) = open(&reg, "b", false, 3);
        assert!(!reg.expire(&s.session, s.generation), "client came back");
        assert!(!reg.close(&again.session, 3, 60));
        assert!(reg.expire(&again.session, again.generation));
        assert!(reg.is_empty());
    }
}
