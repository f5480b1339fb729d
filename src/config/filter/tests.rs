use super::*;
use crate::event::AttrValue;

fn event() -> Event {
    Event::from_attributes(
        vec![
            ("specversion".into(), AttrValue::String("1.0".into())),
            ("id".into(), AttrValue::String("1".into())),
            ("source".into(), AttrValue::String("/shop/eu".into())),
            (
                "type".into(),
                AttrValue::String("com.shop.order.created".into()),
            ),
            ("subject".into(), AttrValue::String("orders/42".into())),
            ("region".into(), AttrValue::String("eu-west".into())),
            ("priority".into(), AttrValue::Integer(5)),
        ],
        None,
    )
    .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[track_caller]
fn check(filter: Filter, expected: bool) {
    assert_eq!(filter.matches(&event()), expected, "{filter:?}");
}

#[test]
fn dialects_match_as_the_subscriptions_api_says() {
    check(
        Filter::Exact(pairs(&[("type", "com.shop.order.created")])),
        true,
    );
    check(Filter::Exact(pairs(&[("type", "com.shop.order")])), false);
    check(
        Filter::Exact(pairs(&[("type", "COM.SHOP.ORDER.CREATED")])),
        false,
    );
    check(Filter::Exact(pairs(&[("specversion", "1.0")])), true);
    check(Filter::Prefix(pairs(&[("type", "com.shop.order.")])), true);
    check(Filter::Prefix(pairs(&[("type", "com.shop.price.")])), false);
    check(Filter::Suffix(pairs(&[("type", ".created")])), true);
    check(Filter::Suffix(pairs(&[("subject", "/43")])), false);
    // Extensions, typed ones by their canonical string form.
    check(Filter::Exact(pairs(&[("region", "eu-west")])), true);
    check(Filter::Prefix(pairs(&[("region", "eu")])), true);
    check(Filter::Exact(pairs(&[("priority", "5")])), true);
    // A missing attribute never matches, not even a suffix of "".
    check(Filter::Exact(pairs(&[("tenant", "a")])), false);
    check(Filter::Prefix(pairs(&[("dataschema", "h")])), false);
    // Several pairs in one expression are AND-ed.
    check(
        Filter::Exact(pairs(&[
            ("type", "com.shop.order.created"),
            ("region", "us"),
        ])),
        false,
    );
}

#[test]
fn composition_nests() {
    let created = Filter::Suffix(pairs(&[("type", ".created")]));
    let us = Filter::Prefix(pairs(&[("region", "us")]));
    check(Filter::All(vec![created.clone(), us.clone()]), false);
    check(Filter::Any(vec![created.clone(), us.clone()]), true);
    check(Filter::Not(Box::new(us.clone())), true);
    check(Filter::Not(Box::new(created.clone())), false);
    check(
        Filter::All(vec![
            Filter::Any(vec![
                us.clone(),
                Filter::Exact(pairs(&[("source", "/shop/eu")])),
            ]),
            Filter::Not(Box::new(Filter::Not(Box::new(created)))),
        ]),
        true,
    );
    check(
        Filter::Any(vec![us, Filter::Exact(pairs(&[("id", "2")]))]),
        false,
    );
}

#[test]
fn serialises_in_the_routes_file_form() {
    let filter = Filter::All(vec![
        Filter::Prefix(pairs(&[("type", "com.shop.")])),
        Filter::Not(Box::new(Filter::Exact(pairs(&[("source", "/test")])))),
    ]);
    assert_eq!(
        serde_json::to_value(&filter).unwrap(),
        serde_json::json!({ "all": [
            { "prefix": { "type": "com.shop." } },
            { "not": { "exact": { "source": "/test" } } },
        ]})
    );
}
