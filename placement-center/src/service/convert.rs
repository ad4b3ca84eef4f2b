//! Conversions between the protobuf messages and the domain types, with the request
//! validation that belongs at the boundary (sizes, required fields).

use robustmq_proto::placement as pb;

use crate::error::{Error, Result};
use crate::kv::command::{
    Compare, CompareResult, CompareTarget, DeleteOp, DeleteRangeOp, GetOp, KeyValue, Op,
    OpResponse, PutOp, RangeOp,
};
use crate::kv::watch::{Event, EventKind};
use crate::node::Limits;

impl From<KeyValue> for pb::KeyValue {
    fn from(kv: KeyValue) -> Self {
        pb::KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

impl From<Event> for pb::Event {
    fn from(e: Event) -> Self {
        let r#type = match e.kind {
            EventKind::Put => pb::event::EventType::Put,
            EventKind::Delete => pb::event::EventType::Delete,
        };
        pb::Event {
            r#type: r#type as i32,
            kv: Some(e.kv.into()),
        }
    }
}

/// Checks a key: not empty, not longer than the limit.
pub fn check_key(key: &[u8], limits: &Limits) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key is empty".into()));
    }
    if key.len() > limits.max_key_size {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes exceeds the limit of {}",
            key.len(),
            limits.max_key_size
        )));
    }
    Ok(())
}

pub fn put_op(req: pb::PutRequest, limits: &Limits) -> Result<PutOp> {
    check_key(&req.key, limits)?;
    if req.value.len() > limits.max_value_size {
        return Err(Error::InvalidArgument(format!(
            "value of {} bytes exceeds max_value_size {}",
            req.value.len(),
            limits.max_value_size
        )));
    }
    if req.lease < 0 {
        return Err(Error::InvalidArgument(format!(
            "lease id {} is negative",
            req.lease
        )));
    }
    Ok(PutOp {
        key: req.key,
        value: req.value,
        lease: req.lease,
        prev_kv: req.prev_kv,
    })
}

pub fn range_op(req: &pb::RangeRequest) -> Result<RangeOp> {
    if req.limit < 0 {
        return Err(Error::InvalidArgument(format!(
            "limit {} is negative",
            req.limit
        )));
    }
    Ok(RangeOp {
        prefix: req.prefix.clone(),
        limit: req.limit,
        keys_only: req.keys_only,
    })
}

pub fn delete_op(req: pb::DeleteRequest, limits: &Limits) -> Result<DeleteOp> {
    check_key(&req.key, limits)?;
    Ok(DeleteOp {
        key: req.key,
        prev_kv: req.prev_kv,
    })
}

pub fn delete_range_op(req: pb::DeleteRangeRequest) -> Result<DeleteRangeOp> {
    if req.prefix.is_empty() {
        return Err(Error::InvalidArgument(
            "delete_range needs a non-empty prefix".into(),
        ));
    }
    Ok(DeleteRangeOp {
        prefix: req.prefix,
        prev_kv: req.prev_kv,
    })
}

pub fn compare(c: pb::Compare, limits: &Limits) -> Result<Compare> {
    check_key(&c.key, limits)?;
    let result = match pb::compare::Result::try_from(c.result) {
        Ok(pb::compare::Result::Equal) => CompareResult::Equal,
        Ok(pb::compare::Result::NotEqual) => CompareResult::NotEqual,
        Ok(pb::compare::Result::Greater) => CompareResult::Greater,
        Ok(pb::compare::Result::Less) => CompareResult::Less,
        Err(_) => {
            return Err(Error::InvalidArgument(format!(
                "unknown compare result {}",
                c.result
            )))
        }
    };
    let revision = |n: i64, what: &str| {
        if n < 0 {
            Err(Error::InvalidArgument(format!(
                "compare {what} {n} is negative"
            )))
        } else {
            Ok(n)
        }
    };
    let target = match c.target {
        Some(pb::compare::Target::Value(v)) => CompareTarget::Value(v),
        Some(pb::compare::Target::Version(n)) => CompareTarget::Version(revision(n, "version")?),
        Some(pb::compare::Target::CreateRevision(n)) => {
            CompareTarget::CreateRevision(revision(n, "create_revision")?)
        }
        Some(pb::compare::Target::ModRevision(n)) => {
            CompareTarget::ModRevision(revision(n, "mod_revision")?)
        }
        None => return Err(Error::InvalidArgument("compare without a target".into())),
    };
    Ok(Compare {
        key: c.key,
        result,
        target,
    })
}

pub fn request_op(op: pb::RequestOp, limits: &Limits) -> Result<Op> {
    use pb::request_op::Request;
    Ok(match op.request {
        Some(Request::Put(p)) => Op::Put(put_op(p, limits)?),
        Some(Request::Get(g)) => {
            check_key(&g.key, limits)?;
            Op::Get(GetOp { key: g.key })
        }
        Some(Request::Range(r)) => Op::Range(range_op(&r)?),
        Some(Request::Delete(d)) => Op::Delete(delete_op(d, limits)?),
        Some(Request::DeleteRange(d)) => Op::DeleteRange(delete_range_op(d)?),
        None => return Err(Error::InvalidArgument("empty transaction operation".into())),
    })
}

/// A transaction operation's result, with the header every sub-response carries.
/// `op` is the operation that produced `r` (a single-key delete answers `delete`).
pub fn response_op(op: &Op, r: OpResponse, header: pb::ResponseHeader) -> pb::ResponseOp {
    use pb::response_op::Response;
    let header = Some(header);
    let response = match r {
        OpResponse::Put { prev_kv } => Response::Put(pb::PutResponse {
            header,
            prev_kv: prev_kv.map(Into::into),
        }),
        OpResponse::Get { kv } => Response::Get(pb::GetResponse {
            header,
            kv: kv.map(Into::into),
        }),
        OpResponse::Range { kvs, more, count } => Response::Range(pb::RangeResponse {
            header,
            kvs: kvs.into_iter().map(Into::into).collect(),
            more,
            count,
        }),
        OpResponse::Delete { deleted, prev_kvs } if matches!(op, Op::Delete(_)) => {
            Response::Delete(pb::DeleteResponse {
                header,
                deleted,
                prev_kv: prev_kvs.into_iter().next().map(Into::into),
            })
        }
        OpResponse::Delete { deleted, prev_kvs } => {
            Response::DeleteRange(pb::DeleteRangeResponse {
                header,
                deleted,
                prev_kvs: prev_kvs.into_iter().map(Into::into).collect(),
            })
        }
    };
    pb::ResponseOp {
        response: Some(response),
    }
}
