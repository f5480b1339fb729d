//! The integration tests: one binary, real HTTP servers on 127.0.0.1, real sled stores in temp
//! dirs, and the real `fanout` binary for the process tests.

mod admin;
mod batching;
mod cesql;
mod dashboard;
mod delivery;
mod handshake;
mod health;
mod hooks;
mod hostile;
mod ingest;
mod mtls;
mod ordering;
mod process;
mod receiver_auth;
mod routing;
mod security;
mod support;
