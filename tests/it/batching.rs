//! Batched delivery through real HTTP: full batches at once, a partial batch after `max_wait`,
//! one signature per batch, and a failed batch retried whole under the same webhook-id.

use std::collections::BTreeMap;

use crate::support::{event, verify_signature, Reply, TestReceiver, TestRouter};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn batches_are_signed_once_and_a_failed_batch_is_retried_whole() {
    // The first request fails; everything after it succeeds.
    let erp =
        TestReceiver::scripted(|index, _| Reply::status(if index == 0 { 503 } else { 200 })).await;
    let router = TestRouter::start(&format!(
        "
subscribers:
  erp:
    url: '{}'
    secret: {SECRET}
    concurrency: 1
    batch: {{ max_events: 3, max_wait: 300ms }}
    retry: {{ initial_interval: 50ms, max_interval: 50ms, jitter: 0 }}
routes:
  - name: all
    to: [erp]
",
        erp.url
    ))
    .await;
    let events: Vec<serde_json::Value> = (0..7)
        .map(|index| event("com.example.shop.order.created", &format!("b-{index}")))
        .collect();
    let response = router.publish_batch(events).await;
    assert_eq!(response.status(), 202);
    let got = erp.wait_for(4).await;
    let mut by_id: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for received in &got {
        assert_eq!(
            received.header("content-type"),
            Some("application/cloudevents-batch+json")
        );
        assert!(
            verify_signature(SECRET, received),
            "one signature over the batch"
        );
        let batch: Vec<serde_json::Value> = serde_json::from_slice(&received.body).unwrap();
        let ids = batch
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect();
        by_id
            .entry(received.header("webhook-id").unwrap().to_owned())
            .or_default()
            .push(ids);
    }
    let first = got[0].header("webhook-id").unwrap();
    assert_eq!(
        by_id[first],
        [vec!["b-0", "b-1", "b-2"], vec!["b-0", "b-1", "b-2"]],
        "the failed batch went again whole, under the same webhook-id"
    );
    let mut others: Vec<Vec<String>> = by_id
        .iter()
        .filter(|(id, _)| id.as_str() != first)
        .flat_map(|(_, batches)| batches.clone())
        .collect();
    others.sort();
    assert_eq!(
        others,
        [
            vec!["b-3".to_owned(), "b-4".to_owned(), "b-5".to_owned()],
            vec!["b-6".to_owned()]
        ]
    );
    // The partial batch waited for max_wait after acceptance, not longer than needed.
    let last = got
        .iter()
        .find(|received| received.body.windows(5).any(|window| window == b"\"b-6\""))
        .unwrap();
    assert!(last.at - got[0].at >= std::time::Duration::from_millis(200));
    let view = router.store.dead_letter_count(router.id("erp"));
    assert_eq!(view, 0);
}

#[tokio::test]
async fn a_large_failed_batch_goes_again_as_one() {
    let erp =
        TestReceiver::scripted(|index, _| Reply::status(if index == 0 { 503 } else { 200 })).await;
    let router = TestRouter::start(&format!(
        "
subscribers:
  erp:
    url: '{}'
    concurrency: 1
    batch: {{ max_events: 200, max_wait: 100ms }}
    retry: {{ initial_interval: 50ms, max_interval: 50ms, jitter: 0.5 }}
routes:
  - name: all
    to: [erp]
",
        erp.url
    ))
    .await;
    let events: Vec<serde_json::Value> = (0..200)
        .map(|index| event("com.example.shop.order.created", &format!("l-{index}")))
        .collect();
    assert_eq!(router.publish_batch(events).await.status(), 202);
    let got = erp.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(
        got[0].body, got[1].body,
        "the same 200 events, in the same order"
    );
    let members: Vec<serde_json::Value> = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(members.len(), 200);
}
