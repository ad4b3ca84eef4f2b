//! Generated gRPC code shared by every service. Each service's messages live in their
//! own protobuf package and module here; conversions to domain types live beside the
//! services that use them.
pub mod placement {
    tonic::include_proto!("robustmq.placement.v1");
}
pub mod broker {
    tonic::include_proto!("robustmq.broker.v1");
}
pub mod journal {
    tonic::include_proto!("robustmq.journal.v1");
}
