//! Integration tests of the journal server, in one binary so they link once:
//! the client API and its errors on an in-process server (`api`), crash recovery of the
//! real binary killed with SIGKILL (`crash`), a three-node cluster of real binaries
//! losing its leader during appends (`replication`), and registration in an in-process
//! placement center (`membership`).

mod api;
mod crash;
mod harness;
mod membership;
mod replication;
