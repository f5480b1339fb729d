//! The admin API's OpenAPI 3.1 document, generated from [`OPERATIONS`]: the same table from
//! which [`super::api::configure`] registers the `/api/v1` routes, so an operation cannot be
//! served without being documented or documented without being served. A contract test calls
//! every documented operation with its examples and checks the answers against the document.

use serde_json::{json, Map, Value};

/// One query or path parameter.
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// `path` or `query`.
    pub location: &'static str,
    pub required: bool,
    /// JSON Schema type: `string`, `integer` or `boolean`.
    pub kind: &'static str,
    pub description: &'static str,
    pub example: &'static str,
}

/// One operation of the admin API.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// An example JSON request body, for operations that take one.
    pub body: Option<&'static str>,
    /// Status codes it answers with, and what they mean.
    pub responses: &'static [(u16, &'static str)],
}

const fn query(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    example: &'static str,
) -> Param {
    Param {
        name,
        location: "query",
        required: false,
        kind,
        description,
        example,
    }
}

const FILTERS: [Param; 5] = [
    query("subscriber", "string", "Subscriber name", "erp"),
    query(
        "since",
        "string",
        "Dead at or after (RFC 3339)",
        "2020-01-01T00:00:00Z",
    ),
    query(
        "until",
        "string",
        "Dead before (RFC 3339)",
        "2100-01-01T00:00:00Z",
    ),
    query("status", "integer", "Last HTTP status", "503"),
    query("reason", "string", "Substring of the reason", "exhausted"),
];

const LIST_PARAMS: [Param; 7] = [
    FILTERS[0],
    FILTERS[1],
    FILTERS[2],
    FILTERS[3],
    FILTERS[4],
    query("limit", "integer", "Page size (1-1000, default 100)", "100"),
    query(
        "after",
        "string",
        "The `next` of the previous page",
        "msg_1_1",
    ),
];

const PURGE_PARAMS: [Param; 6] = [
    FILTERS[0],
    FILTERS[1],
    FILTERS[2],
    FILTERS[3],
    FILTERS[4],
    query("dry_run", "boolean", "Only count", "true"),
];

const SEARCH_PARAMS: [Param; 8] = [
    query(
        "type",
        "string",
        "Event type",
        "com.example.shop.order.created",
    ),
    query(
        "type_prefix",
        "string",
        "Prefix of the event type",
        "com.example.shop.",
    ),
    query("source", "string", "Event source", "/shop/eu"),
    query("subject", "string", "Event subject", "order-1"),
    query(
        "since",
        "string",
        "Accepted at or after (RFC 3339)",
        "2020-01-01T00:00:00Z",
    ),
    query(
        "until",
        "string",
        "Accepted before (RFC 3339)",
        "2100-01-01T00:00:00Z",
    ),
    query("limit", "integer", "Page size (1-1000, default 100)", "100"),
    query("after", "integer", "The `next` of the previous page", "0"),
];

const NAME: Param = Param {
    name: "name",
    location: "path",
    required: true,
    kind: "string",
    description: "Subscriber name",
    example: "erp",
};

const AUTH: (u16, &str) = (401, "Missing or wrong admin token");
const BAD: (u16, &str) = (400, "Invalid parameter; the problem names it");

/// Every `/api/v1` operation.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/openapi.json",
        id: "openapi",
        summary: "This document",
        params: &[],
        body: None,
        responses: &[(200, "OpenAPI 3.1 document"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/subscribers",
        id: "listSubscribers",
        summary:
            "Subscribers with state, queue, totals, recent success rate and latency, last error",
        params: &[],
        body: None,
        responses: &[(200, "The subscribers"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/subscribers/{name}",
        id: "getSubscriber",
        summary: "One subscriber: its state and statistics, its delivery policy (secrets counted, never shown) and its last 100 attempts",
        params: &[NAME],
        body: None,
        responses: &[(200, "The subscriber"), (404, "No such subscriber"), AUTH],
    },
    Operation {
        method: "post",
        path: "/api/v1/subscribers/{name}/pause",
        id: "pauseSubscriber",
        summary: "Stop delivering; events keep queueing",
        params: &[NAME],
        body: None,
        responses: &[(200, "Paused"), (404, "No such subscriber"), AUTH],
    },
    Operation {
        method: "post",
        path: "/api/v1/subscribers/{name}/resume",
        id: "resumeSubscriber",
        summary: "Deliver again (also re-enables after a 410)",
        params: &[NAME],
        body: None,
        responses: &[(200, "Resumed"), (404, "No such subscriber"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/events",
        id: "searchEvents",
        summary: "Search retained events",
        params: &SEARCH_PARAMS,
        body: None,
        responses: &[(200, "A page of events"), BAD, AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/events/{id}",
        id: "getEvent",
        summary: "An event with every delivery and attempt",
        params: &[
            Param {
                name: "id",
                location: "path",
                required: true,
                kind: "string",
                description: "Event id",
                example: "o-1",
            },
            Param {
                name: "source",
                location: "query",
                required: true,
                kind: "string",
                description: "Event source",
                example: "/shop/eu",
            },
        ],
        body: None,
        responses: &[
            (200, "The event"),
            (404, "No retained event with this source and id"),
            BAD,
            AUTH,
        ],
    },
    Operation {
        method: "post",
        path: "/api/v1/replay",
        id: "replayArchive",
        summary: "Deliver retained events of a time range again, to a subscriber or a route",
        params: &[],
        body: Some(
            r#"{"since":"2020-01-01T00:00:00Z","until":"2100-01-01T00:00:00Z","subscriber":"erp","dry_run":true}"#,
        ),
        responses: &[(200, "Matched and queued counts"), BAD, AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/dead-letters",
        id: "listDeadLetters",
        summary: "Dead letters, filtered and paginated",
        params: &LIST_PARAMS,
        body: None,
        responses: &[(200, "A page of dead letters"), BAD, AUTH],
    },
    Operation {
        method: "delete",
        path: "/api/v1/dead-letters",
        id: "purgeDeadLetters",
        summary: "Delete the dead letters the filters match",
        params: &PURGE_PARAMS,
        body: None,
        responses: &[
            (200, "Done (or counted, on a dry run)"),
            (202, "Running in the background; see the job"),
            BAD,
            AUTH,
        ],
    },
    Operation {
        method: "post",
        path: "/api/v1/dead-letters/replay",
        id: "replayDeadLetters",
        summary: "Put dead letters back in their queues with a fresh retry budget",
        params: &[],
        body: Some(r#"{"subscriber":"erp","status":503,"dry_run":true}"#),
        responses: &[
            (200, "Done (or counted, on a dry run)"),
            (202, "Running in the background; see the job"),
            BAD,
            AUTH,
        ],
    },
    Operation {
        method: "post",
        path: "/api/v1/dead-letters/purge",
        id: "purgeSelectedDeadLetters",
        summary: "Delete dead letters chosen by the same filters and/or `ids` as a replay",
        params: &[],
        body: Some(r#"{"ids":["msg_1_1"],"dry_run":true}"#),
        responses: &[
            (200, "Done (or counted, on a dry run)"),
            (202, "Running in the background; see the job"),
            BAD,
            AUTH,
        ],
    },
    Operation {
        method: "get",
        path: "/api/v1/jobs/{id}",
        id: "getJob",
        summary: "Progress of a background replay or purge",
        params: &[Param {
            name: "id",
            location: "path",
            required: true,
            kind: "integer",
            description: "Job id",
            example: "1",
        }],
        body: None,
        responses: &[(200, "The job"), (404, "No such job"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/stats",
        id: "getStats",
        summary: "Process totals now, and per-second rates (events in, deliveries out, failed attempts, dead letters) over the last ten minutes",
        params: &[],
        body: None,
        responses: &[(200, "Totals and series"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/routes",
        id: "listRoutes",
        summary: "The routing table in force, each route's filters in the routes file's form, and the last reload",
        params: &[],
        body: None,
        responses: &[(200, "The routes"), AUTH],
    },
    Operation {
        method: "post",
        path: "/api/v1/routes/test",
        id: "testRoute",
        summary: "Which routes and subscribers an event (CloudEvents JSON) would reach, and why; nothing is stored",
        params: &[],
        body: Some(
            r#"{"specversion":"1.0","id":"t-1","source":"/shop/eu","type":"com.example.shop.order.created","data":{"order":"o-1"}}"#,
        ),
        responses: &[(200, "Each route's verdict with reasons, and the subscribers reached"), (400, "Not a valid CloudEvent; the problem names each attribute"), AUTH],
    },
    Operation {
        method: "get",
        path: "/api/v1/reload",
        id: "reloadStatus",
        summary: "The last reload (file watch, SIGHUP or API), with its errors until a valid file arrives",
        params: &[],
        body: None,
        responses: &[(200, "The last reload, or null before the first"), AUTH],
    },
    Operation {
        method: "post",
        path: "/api/v1/reload",
        id: "reload",
        summary: "Reload routes.yaml now",
        params: &[],
        body: None,
        responses: &[
            (200, "Reloaded; the diff"),
            (422, "Invalid file; nothing changed; every error located"),
            AUTH,
        ],
    },
];

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let parameters: Vec<Value> = operation
            .params
            .iter()
            .map(|param| {
                json!({
                    "name": param.name,
                    "in": param.location,
                    "required": param.required,
                    "description": param.description,
                    "schema": { "type": param.kind },
                    "example": param.example,
                })
            })
            .collect();
        let responses: Map<String, Value> = operation
            .responses
            .iter()
            .map(|(status, description)| {
                let media = if *status >= 400 {
                    "application/problem+json"
                } else {
                    "application/json"
                };
                (
                    status.to_string(),
                    json!({ "description": description, "content": { media: {} } }),
                )
            })
            .collect();
        let mut entry = json!({
            "operationId": operation.id,
            "summary": operation.summary,
            "parameters": parameters,
            "responses": responses,
            "security": [{ "bearer": [] }],
        });
        if let Some(body) = operation.body {
            let example: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            entry["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "example": example } },
            });
        }
        let path = paths.entry(operation.path).or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "fanout admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operator API of fanout, on admin.listen. Also served there without a token: GET /healthz, GET /readyz; with the token: GET /metrics (Prometheus text format).",
        },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "paths": paths,
    })
}
