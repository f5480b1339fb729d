//! Credentials on deliveries, as the receiver sees them: bearer (header and `access_token`
//! query), basic, and OAuth 2.0 client credentials (fetched, cached, refreshed before expiry,
//! fetched again after a 401). Secrets never appear in the admin API.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::{event, Reply, TestReceiver, TestRouter};

const TOKEN: &str = "auth-admin-token-0123456789";

#[tokio::test]
async fn bearer_basic_and_query_tokens_reach_the_receiver() {
    let header = TestReceiver::start().await;
    let query = TestReceiver::start().await;
    let basic = TestReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret-from-a-file\n").unwrap();
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  header: {{ url: '{}', auth: {{ bearer: tok-header-123 }} }}
  query: {{ url: '{}?tenant=eu', auth: {{ bearer: {{ token: 'tok/query+1', in: query }} }} }}
  basic: {{ url: '{}', auth: {{ basic: {{ username: shop, password: 'file:{}' }} }} }}
routes:
  - name: all
    to: [header, query, basic]
",
        header.url,
        query.url,
        basic.url,
        password_file.display()
    ))
    .await;
    router
        .publish(event("com.example.shop.order.created", "a-1"))
        .await;
    let got = header.wait_for(1).await;
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer tok-header-123")
    );
    let got = query.wait_for(1).await;
    assert_eq!(got[0].path, "/hook?tenant=eu&access_token=tok%2Fquery%2B1");
    assert_eq!(got[0].header("authorization"), None);
    let got = basic.wait_for(1).await;
    let expected = base64::engine::general_purpose::STANDARD.encode("shop:s3cret-from-a-file");
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    for name in ["header", "query", "basic"] {
        let view = router
            .admin_get(&format!("/api/v1/subscribers/{name}"), TOKEN)
            .await
            .to_string();
        assert!(
            !view.contains("tok-header") && !view.contains("tok/query") && !view.contains("s3cret"),
            "{view}"
        );
    }
}

#[tokio::test]
async fn oauth2_tokens_are_cached_refreshed_before_expiry_and_replaced_after_a_401() {
    // The token endpoint hands out tok-0, tok-1, ... each valid for one second.
    let issuer = TestReceiver::scripted(|index, _| {
        Reply::json(
            200,
            serde_json::json!({ "access_token": format!("tok-{index}"), "token_type": "Bearer", "expires_in": 1 }),
        )
    })
    .await;
    // The receiver refuses tok-1 once, as if it had been revoked.
    let receiver = TestReceiver::scripted(|_, received| {
        let refused = received.header("authorization") == Some("Bearer tok-1")
            && received.event_id() == "o-3";
        Reply::status(if refused { 401 } else { 200 })
    })
    .await;
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp:
    url: '{}'
    concurrency: 1
    retry: {{ initial_interval: 20ms, jitter: 0 }}
    auth:
      oauth2: {{ token_url: '{}', client_id: fanout, client_secret: client-secret-1, scope: 'orders:write' }}
routes:
  - name: all
    to: [erp]
",
        receiver.url, issuer.url
    ))
    .await;
    for id in ["o-1", "o-2"] {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
    }
    let got = receiver.wait_for(2).await;
    let fetched = Instant::now();
    assert!(got
        .iter()
        .all(|received| received.header("authorization") == Some("Bearer tok-0")));
    assert_eq!(issuer.count(), 1, "the token is cached");
    let request = &issuer.received()[0];
    let form = String::from_utf8(request.body.clone()).unwrap();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=orders%3Awrite")
    );
    let client = base64::engine::general_purpose::STANDARD.encode("fanout:client-secret-1");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {client}").as_str())
    );
    // Half of its one-second lifetime later, it is refreshed before it expires.
    tokio::time::sleep_until((fetched + Duration::from_millis(600)).into()).await;
    router
        .publish(event("com.example.shop.order.created", "o-3"))
        .await;
    // o-3 gets tok-1, which is refused; the retry goes with a new token.
    let got = receiver.wait_for(4).await;
    assert_eq!(got[2].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(got[3].event_id(), "o-3");
    assert_eq!(got[3].header("authorization"), Some("Bearer tok-2"));
    let view = router
        .wait_admin(
            "/api/v1/subscribers/erp",
            TOKEN,
            "three deliveries",
            |view| view["delivered_total"] == 3,
        )
        .await;
    assert!(!view.to_string().contains("client-secret-1"));
}
