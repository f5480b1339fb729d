//! The dashboard: a single page (HTML, one script, one stylesheet, an icon) compiled into the
//! binary and served at `/ui`, so it works offline and needs no other server. The files hold no
//! data and are served without a token; every number on the page comes from `/api/v1` with the
//! token the login form keeps in the browser's session storage (never in a URL).
//!
//! A strict Content-Security-Policy allows only these files and the API: no inline script, no
//! other origin.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::AdminState;

/// (path, media type, contents).
const FILES: [(&str, &str, &str); 4] = [
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "/ui/app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
    (
        "/ui/favicon.svg",
        "image/svg+xml",
        include_str!("ui/favicon.svg"),
    ),
    (
        "/ui/",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
];

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Registers `/ui` (redirected to `/ui/`), `/` (likewise) and the files.
pub fn configure(config: &mut web::ServiceConfig) {
    for (path, media_type, contents) in FILES {
        config.service(
            web::resource(path)
                .route(web::get().to(move || async move { file(media_type, contents) })),
        );
    }
    config.service(web::resource("/ui/auth").route(web::get().to(auth)));
    for path in ["/ui", "/"] {
        config.service(web::resource(path).route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/ui/"))
                .finish()
        })));
    }
}

/// Whether the page must ask for a token (the answer a 401 would give anyway).
async fn auth(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "token_required": state.token_digest.is_some() }))
}

fn file(media_type: &'static str, contents: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, media_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(contents)
}
