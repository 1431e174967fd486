//! Helpers shared by lark-auth's integration tests.

pub(crate) mod redis_server;
