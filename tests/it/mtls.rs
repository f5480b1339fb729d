//! Client certificates (mTLS) through real TLS: a subscriber on 127.0.0.1 that requires a client
//! certificate signed by its CA gets deliveries only from the subscriber configured with one.
//! Certificates are made for the test with rcgen.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::support::{event, wait_until, TestRouter, DEADLINE};

struct Pki {
    dir: tempfile::TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_der: rustls::pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["fanout-client".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        server_der: server.der().clone(),
        server_key_der: server_key.serialize_der(),
        dir,
    }
}

/// An HTTPS server on 127.0.0.1 that requires a client certificate from the CA; it records
/// the event ids it gets.
fn start_server(
    pki: &Pki,
) -> (
    String,
    Arc<Mutex<Vec<String>>>,
    actix_web::dev::ServerHandle,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![pki.server_der.clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key_der.clone().into()),
        )
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let shared = web::Data::from(Arc::clone(&received));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().app_data(shared.clone()).default_service(web::to(
            |request: actix_web::HttpRequest, seen: web::Data<Mutex<Vec<String>>>| async move {
                let id = request
                    .headers()
                    .get("ce-id")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(id);
                HttpResponse::Ok().finish()
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .listen_rustls_0_23(listener, config)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, received, handle)
}

#[tokio::test]
async fn a_client_certificate_opens_an_endpoint_that_requires_one() {
    let pki = pki();
    let (url, received, handle) = start_server(&pki);
    let path = |name: &str| pki.dir.path().join(name).display().to_string();
    let router = TestRouter::start(&format!(
        "
subscribers:
  with-cert:
    url: '{url}'
    tls: {{ client_cert: '{}', client_key: '{}', ca: '{}' }}
  without-cert:
    url: '{url}'
    tls: {{ ca: '{}' }}
    retry: {{ initial_interval: 10s }}
routes:
  - name: all
    to: [with-cert, without-cert]
",
        path("client.pem"),
        path("client.key"),
        path("ca.pem"),
        path("ca.pem"),
    ))
    .await;
    router
        .publish(event("com.example.shop.order.created", "m-1"))
        .await;
    let without = router.id("without-cert");
    // The one without a certificate is refused in the TLS handshake: a failed attempt.
    wait_until("the refused attempt recorded", DEADLINE, || {
        router
            .store
            .attempts(without, fanout::ids::EventSeq(1))
            .is_ok_and(|attempts| !attempts.is_empty())
    })
    .await;
    wait_until("one delivery over mTLS", DEADLINE, || {
        received.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(received.lock().unwrap()[0], "m-1");
    let attempts = router
        .store
        .attempts(without, fanout::ids::EventSeq(1))
        .unwrap();
    assert!(
        attempts[0].status.is_none(),
        "no HTTP answer without a certificate"
    );
    handle.stop(false).await;
}
