//! Raft: the openraft type configuration, the peer network (client side) and the
//! peer-only gRPC service (server side).

pub mod network;
pub mod peer_service;

use std::io::Cursor;

use openraft::BasicNode;

use crate::kv::{Command, CommandResponse};

openraft::declare_raft_types!(
    /// The placement center's Raft types: commands in, responses out, u64 node ids, nodes
    /// known by their gRPC address, snapshots as in-memory byte buffers.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A member's id.
pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;
