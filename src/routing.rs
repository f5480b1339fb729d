//! The compiled routing table: which subscribers an event goes to.
//!
//! Pure and synchronous: no I/O, no async, no store. The ingress holds the current table behind
//! an atomic pointer, so a reload swaps it whole and a request finishes on the table it started
//! with.

use std::collections::HashMap;

use crate::config::filter::Candidate;
use crate::config::{Filter, RouteConfig};
use crate::event::Event;
use crate::ids::SubscriberId;

/// Routes in file order, each with its filter and its subscribers' ids.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: Vec<Route>,
}

#[derive(Debug)]
struct Route {
    name: String,
    filter: Option<Filter>,
    subscribers: Vec<SubscriberId>,
    operational: bool,
}

impl RoutingTable {
    /// Builds the table; `ids` maps every subscriber name the routes use to its id (the
    /// configuration was validated, so a name without an id is a programming error and skipped).
    pub fn new(routes: &[RouteConfig], ids: &HashMap<String, SubscriberId>) -> RoutingTable {
        let routes = routes
            .iter()
            .map(|route| Route {
                operational: route.operational,
                name: route.name.clone(),
                filter: route.filter.clone(),
                subscribers: route
                    .to
                    .iter()
                    .filter_map(|name| ids.get(name).copied())
                    .collect(),
            })
            .collect();
        RoutingTable { routes }
    }

    /// The subscribers of every route `event` matches, each once, in id order.
    pub fn subscribers_for(&self, event: &Event) -> Vec<SubscriberId> {
        let candidate = Candidate::new(event);
        let mut subscribers: Vec<SubscriberId> = self
            .routes
            .iter()
            .filter(|route| route.matches(&candidate))
            .flat_map(|route| route.subscribers.iter().copied())
            .collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        subscribers
    }

    /// The subscribers of the routes marked `operational` that `event` (one of fanout's own
    /// operational events) matches, each once.
    pub fn operational_subscribers_for(&self, event: &Event) -> Vec<SubscriberId> {
        let candidate = Candidate::new(event);
        let mut subscribers: Vec<SubscriberId> = self
            .routes
            .iter()
            .filter(|route| route.operational && route.matches(&candidate))
            .flat_map(|route| route.subscribers.iter().copied())
            .collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        subscribers
    }

    /// The subscribers of the route `name` if `event` matches it (`None`: no such route).
    pub fn route_subscribers(&self, name: &str, event: &Event) -> Option<Vec<SubscriberId>> {
        let route = self.routes.iter().find(|route| route.name == name)?;
        Some(if route.matches(&Candidate::new(event)) {
            route.subscribers.clone()
        } else {
            Vec::new()
        })
    }

    /// Whether a route of this name exists.
    pub fn has_route(&self, name: &str) -> bool {
        self.routes.iter().any(|route| route.name == name)
    }

    /// The names of the routes `event` matches, in file order.
    pub fn matching_routes(&self, event: &Event) -> Vec<&str> {
        let candidate = Candidate::new(event);
        self.routes
            .iter()
            .filter(|route| route.matches(&candidate))
            .map(|route| route.name.as_str())
            .collect()
    }
}

/// How one route judged an event, with a line per filter node (for `fanout match` and the
/// dashboard's route tester).
#[derive(Debug, serde::Serialize)]
pub struct Verdict {
    pub route: String,
    pub matched: bool,
    /// The route's subscribers.
    pub to: Vec<String>,
    /// One line per filter node, marked `✓` or `✗`, with the event's actual value.
    pub reasons: Vec<String>,
}

/// Judges `event` against every route of a configuration, in file order. Returns each route's
/// verdict and the subscribers the event would reach, each once, in the order first reached.
pub fn explain(routes: &[RouteConfig], event: &Event) -> (Vec<Verdict>, Vec<String>) {
    let mut reached: Vec<String> = Vec::new();
    let verdicts = routes
        .iter()
        .map(|route| {
            let (matched, reasons) = match &route.filter {
                None => (true, vec!["✓ no filters: matches every event".to_owned()]),
                Some(filter) => {
                    let mut reasons = Vec::new();
                    let matched = filter.explain(event, 0, &mut reasons);
                    (matched, reasons)
                }
            };
            if matched {
                for name in &route.to {
                    if !reached.contains(name) {
                        reached.push(name.clone());
                    }
                }
            }
            Verdict {
                route: route.name.clone(),
                matched,
                to: route.to.clone(),
                reasons,
            }
        })
        .collect();
    (verdicts, reached)
}

impl Route {
    fn matches(&self, candidate: &Candidate<'_>) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.test(candidate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttrValue;

    fn event(ty: &str) -> Event {
        let attributes = [
            ("specversion", "1.0"),
            ("id", "1"),
            ("source", "/shop"),
            ("type", ty),
        ];
        Event::from_attributes(
            attributes
                .iter()
                .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
                .collect(),
            None,
        )
        .unwrap()
    }

    fn route(name: &str, prefix: Option<&str>, to: &[&str]) -> RouteConfig {
        RouteConfig {
            operational: false,
            name: name.into(),
            filter: prefix.map(|prefix| Filter::Prefix(vec![("type".into(), prefix.into())])),
            to: to.iter().map(|name| name.to_string()).collect(),
        }
    }

    #[test]
    fn union_of_matching_routes_without_duplicates() {
        let ids: HashMap<String, SubscriberId> = [("erp", 1), ("pim", 2), ("slack", 3)]
            .iter()
            .map(|(name, id)| (name.to_string(), SubscriberId(*id)))
            .collect();
        let table = RoutingTable::new(
            &[
                route("orders", Some("com.shop.order."), &["erp", "slack"]),
                route("all", None, &["slack"]),
                route("prices", Some("com.shop.price."), &["pim", "erp"]),
            ],
            &ids,
        );
        assert_eq!(
            table.subscribers_for(&event("com.shop.order.created")),
            [SubscriberId(1), SubscriberId(3)]
        );
        assert_eq!(
            table.subscribers_for(&event("com.shop.price.changed")),
            [1, 2, 3].map(SubscriberId)
        );
        assert_eq!(
            table.subscribers_for(&event("com.other")),
            [SubscriberId(3)]
        );
        assert_eq!(
            table.matching_routes(&event("com.shop.order.x")),
            ["orders", "all"]
        );
        assert!(RoutingTable::default()
            .subscribers_for(&event("x"))
            .is_empty());
    }

    #[test]
    fn explain_gives_each_route_its_reasons() {
        let routes = [
            route("orders", Some("com.shop.order."), &["erp", "slack"]),
            route("prices", Some("com.shop.price."), &["pim"]),
            route("all", None, &["slack"]),
        ];
        let (verdicts, reached) = explain(&routes, &event("com.shop.order.created"));
        assert_eq!(reached, ["erp", "slack"]);
        assert!(verdicts[0].matched && !verdicts[1].matched && verdicts[2].matched);
        assert_eq!(
            verdicts[1].reasons,
            ["✗ prefix type \"com.shop.price.\" (event has \"com.shop.order.created\")"]
        );
        assert_eq!(verdicts[2].reasons, ["✓ no filters: matches every event"]);
    }
}
