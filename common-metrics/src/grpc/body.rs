//! The response body wrapper that sees the trailers (and so the final `grpc-status`) of
//! a call, and the response future that decides whether a body needs watching at all.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::call::RpcCall;
use super::{grpc_status, http_to_grpc};

pin_project! {
    /// A response body that finishes its call when the trailers pass by. Polled inside
    /// the call's span, so work a streaming handler does per item is traced under it.
    pub struct RpcBody<B> {
        #[pin]
        inner: B,
        call: Option<RpcCall>,
        // Status when the body ends (or fails) without `grpc-status`.
        fallback: i32,
    }
}

impl<B> RpcBody<B> {
    /// A body whose call already finished (trailers-only response): passes through.
    fn finished(inner: B) -> Self {
        RpcBody {
            inner,
            call: None,
            fallback: super::UNKNOWN,
        }
    }
}

impl<B: Body> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = {
            let _entered = this.call.as_ref().map(|call| call.span.enter());
            this.inner.poll_frame(cx)
        };
        // Only the trailers or the end of the body settle the call; data frames do not.
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|trailers| grpc_status(trailers).unwrap_or(*this.fallback)),
            // A stream error, or an end without trailers, is a broken call: gRPC always
            // ends a response with `grpc-status`.
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some(*this.fallback),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            // Taken, not borrowed: dropping the call right after finishing closes the span
            // now rather than when the transport gets round to dropping the body.
            if let Some(mut call) = this.call.take() {
                call.finish(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The future of a traced call's response headers.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<RpcCall>,
        // Status when the inner service fails or the body ends without `grpc-status`.
        fallback: i32,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, call: RpcCall, fallback: i32) -> Self {
        ResponseFuture {
            inner,
            call: Some(call),
            fallback,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<RpcBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            // The handler (server) or the transport (client) runs inside the span.
            let _entered = this.call.as_ref().map(|call| call.span.enter());
            ready!(this.inner.poll(cx))
        };
        let Some(mut call) = this.call.take() else {
            // Polled again after completion: the inner future decides what that means.
            return Poll::Ready(result.map(|response| response.map(RpcBody::finished)));
        };
        Poll::Ready(match result {
            Ok(response) => {
                let status = response.status();
                if let Some(code) = grpc_status(response.headers()) {
                    // Trailers-only: the status is already here and the body is empty.
                    call.finish(code);
                    Ok(response.map(RpcBody::finished))
                } else if status != http::StatusCode::OK {
                    call.finish(http_to_grpc(status));
                    Ok(response.map(RpcBody::finished))
                } else {
                    // The status arrives in the trailers, after the last message.
                    let fallback = *this.fallback;
                    Ok(response.map(|inner| RpcBody {
                        inner,
                        call: Some(call),
                        fallback,
                    }))
                }
            }
            Err(err) => {
                call.finish(*this.fallback);
                Err(err)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::call::{rpc_labels, Side};
    use crate::grpc::metrics::GrpcServerMetrics;
    use crate::testing::{find, parse_metrics};
    use prometheus_client::registry::Registry;
    use std::collections::VecDeque;

    /// A body that yields prepared frames.
    struct Frames(VecDeque<Frame<&'static [u8]>>);

    impl Body for Frames {
        type Data = &'static [u8];
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn trailers(code: &'static str) -> Frame<&'static [u8]> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static(code));
        Frame::trailers(map)
    }

    fn handled(registry: &Registry, code: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        find(
            &parse_metrics(&text),
            "grpc_server_handled_total",
            &[("grpc_method", "Append"), ("grpc_code", code)],
        )
    }

    fn body(metrics: &GrpcServerMetrics, frames: Vec<Frame<&'static [u8]>>) -> RpcBody<Frames> {
        let call = RpcCall::new(
            tracing::Span::none(),
            metrics.0.clone(),
            rpc_labels("/j.Journal/Append"),
            Side::Server,
        );
        RpcBody {
            inner: Frames(frames.into()),
            call: Some(call),
            fallback: crate::grpc::UNKNOWN,
        }
    }

    #[test]
    fn status_is_taken_from_trailers_after_the_data() {
        let mut registry = Registry::default();
        let metrics = GrpcServerMetrics::register(&mut registry);
        let mut body = std::pin::pin!(body(&metrics, vec![Frame::data(&b"x"[..]), trailers("5")]));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert_eq!(
            handled(&registry, "NotFound"),
            None,
            "finished before the trailers"
        );
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert_eq!(handled(&registry, "NotFound"), Some(1.0));
    }

    #[test]
    fn dropped_before_trailers_is_canceled_and_missing_status_unknown() {
        let mut registry = Registry::default();
        let metrics = GrpcServerMetrics::register(&mut registry);
        drop(body(&metrics, vec![trailers("0")]));
        assert_eq!(handled(&registry, "Canceled"), Some(1.0));

        let mut ended = std::pin::pin!(body(&metrics, vec![Frame::data(&b"x"[..])]));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Poll::Ready(Some(_)) = ended.as_mut().poll_frame(&mut cx) {}
        assert_eq!(handled(&registry, "Unknown"), Some(1.0));
    }
}
