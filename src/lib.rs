//! fanout: a CloudEvents event router.
//!
//! Events walk one way through the modules below, listed in data-path order:
//! `config` compiles `routes.yaml`; `ingress` turns HTTP requests into validated [`event::Event`]s;
//! `routing` decides which subscribers get each event; `store` makes the event and its deliveries
//! durable in sled; `delivery` signs and sends them, retrying and dead-lettering; `app` wires it all
//! together and owns the shutdown order. `ARCHITECTURE.md` has the map and the invariants.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod event;
pub mod ids;
pub mod ingress;
pub mod metrics;
pub mod operational;
pub mod reload;
pub mod routing;
pub mod store;
