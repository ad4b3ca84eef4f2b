//! Integration tests that install their subscribers per thread (`set_default`), so they
//! can run in parallel in one binary. The global `init` is tested in `tests/global_init`.

mod grpc;
mod http;
