//! The operator's console over HTTP (axum): a JSON API under `/api/v1`
//! with bearer-token authentication, Prometheus metrics at `/metrics`, and
//! `/health`. Bound to 127.0.0.1 by default. The API is described in
//! `openapi.json` beside this file, served at `/api/v1/openapi.json` and
//! checked against the routes by a test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::{info, warn};

mod metrics;
mod rooms;

use crate::config::Config;
use crate::simple::presence::Decision;
use crate::simple::Core;
use crate::sys::now_secs;

/// The console page: plain HTML and script, nothing fetched from
/// elsewhere, so it works offline.
pub const PAGE: &str = include_str!("page.html");

/// The OpenAPI description of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Reloads the configuration file (what SIGHUP does): the settings put
/// in force and those needing a restart, or why nothing was.
pub type Reload = Arc<dyn Fn() -> Result<crate::config::Reloaded, String> + Send + Sync>;

/// What the console is told at start besides the core.
pub struct Setup {
    /// The configuration file in use, or the embedded default.
    pub origin: String,
    /// The reload.
    pub reload: Reload,
}

/// What the handlers share.
#[derive(Clone)]
struct Admin {
    core: Arc<Core>,
    token: Arc<str>,
    origin: Arc<str>,
    reload: Reload,
    started: std::time::Instant,
    history: Arc<std::sync::Mutex<std::collections::VecDeque<Sample>>>,
    metrics: PrometheusHandle,
    store: Arc<dyn crate::store::Store>,
}

/// The process-wide Prometheus recorder (installed once: a second server
/// in the same process shares it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&metrics::BUCKETS)
                .expect("buckets are given")
                .build_recorder();
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                warn!("a metrics recorder was already installed");
            }
            metrics::describe();
            handle
        })
        .clone()
}

/// The bearer token: the configured one, else the one kept under the state
/// directory, else a new one written there; a new one is printed once,
/// as the console's address with the token in its fragment (`console`,
/// the address the console listens on).
pub fn token(config: &Config, console: Option<SocketAddr>) -> std::io::Result<String> {
    if let Some(t) = &config.admin.token {
        return Ok(t.clone());
    }
    let file = token_file(config);
    if let Ok(t) = std::fs::read_to_string(&file) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let t = crate::sys::token_hex(24);
    if let Some(dir) = file.parent() {
        crate::sys::private_dir(dir)?;
    }
    crate::sys::write_private(&file, t.as_bytes())?;
    println!("admin API token (kept in {}): {t}", file.display());
    if let Some(addr) = console {
        println!("console: http://{addr}/#token={t}");
    }
    Ok(t)
}

/// Where the generated token is kept.
pub fn token_file(config: &Config) -> PathBuf {
    config.state_dir.join("admin-token")
}

/// Serves the console on `listener` until `stop` is cancelled.
pub async fn serve(
    token: String,
    setup: Setup,
    core: Arc<Core>,
    store: Arc<dyn crate::store::Store>,
    listener: TcpListener,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let admin = Admin {
        core,
        token: token.into(),
        origin: setup.origin.into(),
        reload: setup.reload,
        started: std::time::Instant::now(),
        history: Arc::default(),
        metrics: metrics_handle(),
        store,
    };
    spawn_history(&admin, stop.clone());
    let app = router(admin);
    info!(address = %listener.local_addr()?, "admin API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

fn router(admin: Admin) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/registrations", get(registrations))
        .route("/registrations/{address}", delete(end_registrations))
        .route("/subscriptions", get(subscriptions))
        .route("/peers", get(peers))
        .route("/adapters", get(adapters))
        .route("/policy", get(policy))
        .route("/policy/reload", post(reload))
        .route("/reload", post(reload))
        .route("/log-level", get(log_level).put(set_log_level))
        .route("/history", get(history))
        .route("/cluster", get(cluster))
        .route("/refusals", get(refusals))
        .route("/users", get(users).post(add_user))
        .route("/users/{address}", delete(remove_user))
        .route("/presence/rules", get(rules).post(set_rule))
        .route("/archive", get(archive))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/rooms/{address}",
            get(rooms::one).patch(rooms::configure).delete(rooms::close),
        )
        .route("/rooms/{address}/members/{nick}", delete(rooms::remove))
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'"),
                    ],
                    PAGE,
                )
            }),
        )
        .route("/metrics", get(prometheus))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such resource") })
        .with_state(admin)
}

/// One point of the console's chart: totals since start at a moment.
#[derive(Debug, Clone)]
struct Sample {
    at: u64,
    messages: u64,
    refusals: Vec<(&'static str, u64)>,
}

/// Seconds between the points the console keeps, and how many: an hour.
const HISTORY_STEP: u64 = 10;
const HISTORY_POINTS: usize = 360;

/// Messages that entered Parley (SIP MESSAGEs served, and messages from
/// the adapters' networks) and refusals by reason, since start.
fn sample(core: &Core) -> Sample {
    let from_adapters: u64 = core
        .router
        .routed()
        .into_iter()
        .filter(|((source, _), _)| *source != "sip")
        .map(|(_, n)| n)
        .sum();
    Sample {
        at: now_secs(),
        messages: core.messages.load(std::sync::atomic::Ordering::Relaxed) + from_adapters,
        refusals: core
            .router
            .policy()
            .refusals()
            .into_iter()
            .map(|(r, n)| (r.name(), n))
            .collect(),
    }
}

/// Records a point every ten seconds, keeping the last hour, until `stop`.
fn spawn_history(admin: &Admin, stop: tokio_util::sync::CancellationToken) {
    let (core, history) = (admin.core.clone(), admin.history.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(HISTORY_STEP));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {
                    let s = sample(&core);
                    let mut h = history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if h.len() == HISTORY_POINTS {
                        h.pop_front();
                    }
                    h.push_back(s);
                }
            }
        }
    });
}

/// The last hour's points and one for now; the page draws rates from
/// the differences.
async fn history(State(a): State<Admin>) -> Json<Value> {
    let mut points: Vec<Sample> = a
        .history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    points.push(sample(&a.core));
    Json(json!({
        "step_secs": HISTORY_STEP,
        "samples": points.iter().map(|s| json!({
            "at": s.at,
            "messages": s.messages,
            "refusals": s.refusals.iter().map(|(r, n)| (r.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
    }))
}

/// The nodes of the cluster (none for a node on its own), each with its
/// addresses, version, uptime and whether it wrote its row lately.
async fn cluster(State(a): State<Admin>) -> Response {
    let own = a.core.cluster.as_ref().map(|(n, _)| n.clone());
    if own.is_none() {
        return Json(json!({"node": null, "nodes": []})).into_response();
    }
    match a.store.nodes().await {
        Ok(nodes) => {
            let now = now_secs() as i64;
            let late = 3 * crate::simple::cluster::HEARTBEAT_SECS as i64;
            Json(json!({
                "node": own,
                "nodes": nodes.iter().map(|n| json!({
                    "name": n.name,
                    "sip": n.sip,
                    "admin": n.admin,
                    "version": n.version,
                    "uptime_secs": (now - n.started_at).max(0),
                    "seen_secs_ago": (now - n.seen_at).max(0),
                    "up": now - n.seen_at <= late,
                    "registrations": n.registrations,
                })).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A JSON error with its reason.
fn error(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({"error": reason}))).into_response()
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        crate::proto::digest::constant_time_eq(g.as_bytes(), admin.token.as_bytes())
    });
    if !ok {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return r;
    }
    next.run(request).await
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn links(core: &Core) -> Vec<Value> {
    core.router
        .adapters()
        .iter()
        .flat_map(|a| {
            let name = a.name().to_string();
            a.health().links.into_iter().map(move |l| {
                json!({
                    "adapter": name,
                    "domain": l.domain,
                    "direction": l.direction,
                    "auth": l.auth.name(),
                    "tls": l.tls,
                })
            })
        })
        .collect()
}

fn refusal_counts(core: &Core) -> Value {
    let mut map = serde_json::Map::new();
    for (r, n) in core.router.policy().refusals() {
        map.insert(r.name().to_string(), json!(n));
    }
    Value::Object(map)
}

fn routed(core: &Core) -> Vec<Value> {
    let mut v: Vec<_> = core.router.routed().into_iter().collect();
    v.sort();
    v.into_iter()
        .map(|((s, d), n)| json!({"source": s, "destination": d, "messages": n}))
        .collect()
}

async fn status(State(a): State<Admin>) -> Json<Value> {
    let now = now_secs();
    let core = &a.core;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": a.started.elapsed().as_secs(),
        "config": &*a.origin,
        "domains": core.domains(),
        "registrations": core.location.all(now).len(),
        "addresses_of_record": core.location.aors(),
        "subscriptions": core.presence.subscription_count(),
        "offline_messages": core.offline.total(),
        "links": links(core),
        "adapters": adapter_list(core),
        "routed": routed(core),
        "refusals": refusal_counts(core),
        "msrp": msrp_status(core),
        "rooms": {
            "domain": core.rooms.domain(),
            "rooms": core.rooms.count(),
        },
    }))
}

/// The MSRP relay and the chat sessions Parley terminates.
fn msrp_status(core: &Core) -> Value {
    match &core.relay {
        Some(relay) => json!({
            "relay": relay.uris(),
            "relay_sessions": relay.sessions(),
            "chat_sessions": core.chat.len(),
            "relayed_chunks": relay.stats().chunks.load(std::sync::atomic::Ordering::Relaxed),
            "relayed_bytes": relay.stats().bytes.load(std::sync::atomic::Ordering::Relaxed),
        }),
        None => Value::Null,
    }
}

#[derive(Deserialize)]
struct RegistrationParams {
    /// Only this address of record.
    user: Option<String>,
    /// Only this contact URI (for removal).
    contact: Option<String>,
}

/// An address of record as the operator types it: `user@domain`, the
/// domain without case.
fn aor_of(address: &str) -> Option<String> {
    let address = address.strip_prefix("sip:").unwrap_or(address);
    let (user, domain) = address.split_once('@')?;
    (!user.is_empty() && !domain.is_empty())
        .then(|| format!("{user}@{}", domain.to_ascii_lowercase()))
}

async fn registrations(
    State(a): State<Admin>,
    params: axum::extract::Query<RegistrationParams>,
) -> Json<Value> {
    let now = now_secs();
    let only = params.user.as_deref().and_then(aor_of);
    let list: Vec<Value> = a
        .core
        .location
        .all(now)
        .into_iter()
        .filter(|(aor, _)| only.as_ref().map_or(true, |o| o == aor))
        .map(|(aor, b)| {
            json!({
                "aor": aor,
                "contact": &*b.uri,
                "expires_in": b.expires_at.saturating_sub(now),
                "q": f64::from(b.q) / 1000.0,
                "transport": b.transport.to_string(),
                "source": b.source.to_string(),
                "instance": (!b.instance.is_empty()).then(|| crate::simple::gruu::urn(&b.instance).to_string()),
                "reg_id": (b.reg_id != 0).then_some(b.reg_id),
                "user_agent": &*b.user_agent,
            })
        })
        .collect();
    Json(json!(list))
}

/// Ends the bindings of an address of record (all, or the one whose
/// contact URI is `?contact=`).
async fn end_registrations(
    State(a): State<Admin>,
    UrlPath(address): UrlPath<String>,
    params: axum::extract::Query<RegistrationParams>,
) -> Response {
    let Some(aor) = aor_of(&address) else {
        return error(StatusCode::BAD_REQUEST, "address must be user@domain");
    };
    let gone = a.core.end_registrations(&aor, params.contact.as_deref());
    if gone.is_empty() {
        return error(StatusCode::NOT_FOUND, "no such binding");
    }
    Json(json!({
        "aor": aor,
        "ended": gone.iter().map(|b| &*b.uri).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn subscriptions(State(a): State<Admin>) -> Json<Value> {
    let list: Vec<Value> = a
        .core
        .presence
        .subscriptions(now_secs())
        .into_iter()
        .map(|(presentity, watcher, package, decision, left)| {
            json!({
                "presentity": presentity,
                "watcher": watcher,
                "package": package,
                "state": decision.as_str(),
                "expires_in": left,
            })
        })
        .collect();
    Json(json!(list))
}

async fn peers(State(a): State<Admin>) -> Json<Value> {
    Json(json!(links(&a.core)))
}

fn adapter_list(core: &Core) -> Vec<Value> {
    core.router
        .adapters()
        .iter()
        .map(|a| {
            let h = a.health();
            json!({
                "name": a.name(),
                "protocol": a.protocol().name(),
                "up": h.up,
                "links": h.links.len(),
                "networks": h.networks.iter().map(|n| json!({
                    "name": n.name,
                    "domain": n.domain,
                    "connections": n.connections,
                    "channels": n.channels,
                    "messages_in": n.messages_in,
                    "messages_out": n.messages_out,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

async fn adapters(State(a): State<Admin>) -> Json<Value> {
    Json(json!(adapter_list(&a.core)))
}

async fn policy(State(a): State<Admin>) -> Response {
    let p = a.core.router.policy();
    let c = p.config();
    Json(json!({
        "allow_domains": c.allow_domains,
        "deny_domains": c.deny_domains,
        "max_message_bytes": c.max_message_bytes,
        "content_types": c.content_types,
        "rate_per_domain": c.rate_per_domain,
        "rate_burst": c.rate_burst,
        "domains": c.domain.iter().map(|d| json!({
            "name": d.name,
            "require_tls": d.require_tls,
            "require_certificate": d.require_certificate,
            "bridge": d.bridge,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// Reads the configuration file again (as SIGHUP does); says what was put
/// in force and what needs a restart.
async fn reload(State(a): State<Admin>) -> Response {
    let reload = a.reload.clone();
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(r)) => Json(json!({
            "reloaded": true,
            "applied": r.applied,
            "restart": r.restart,
            "certificate": r.certificate,
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn log_level() -> Response {
    match crate::sys::log::filter() {
        Some(level) => Json(json!({"level": level})).into_response(),
        None => error(StatusCode::CONFLICT, "the log is not Parley's own"),
    }
}

#[derive(Deserialize)]
struct Level {
    level: String,
}

/// Changes the log filter at once (until the next reload or restart).
async fn set_log_level(body: Result<Json<Level>, JsonRejection>) -> Response {
    let Ok(Json(l)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"level\": \"debug\"} (a level, or target=level,…)",
        );
    };
    if let Err(e) = crate::config::check_log_filter(&l.level) {
        return error(StatusCode::BAD_REQUEST, &format!("level {e}"));
    }
    match crate::sys::log::set_filter(&l.level) {
        Ok(()) => {
            info!(level = %l.level, "log level changed through the API");
            Json(json!({"level": l.level})).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, &e),
    }
}

async fn refusals(State(a): State<Admin>) -> Json<Value> {
    Json(refusal_counts(&a.core))
}

async fn users(State(a): State<Admin>) -> Response {
    match a.store.users().await {
        Ok(list) => Json(json!(list
            .into_iter()
            .map(|u| format!("{}@{}", u.username, u.domain))
            .collect::<Vec<_>>()))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct NewUser {
    address: String,
    password: String,
}

async fn add_user(State(a): State<Admin>, body: Result<Json<NewUser>, JsonRejection>) -> Response {
    let u = match body {
        Ok(Json(u)) => u,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"address\": \"user@domain\", \"password\": \"…\"}}: {}",
                    e.body_text()
                ),
            )
        }
    };
    let Some((user, domain)) = u.address.split_once('@') else {
        return error(StatusCode::BAD_REQUEST, "address must be user@domain");
    };
    if !a.core.is_local_domain(domain) {
        return error(StatusCode::BAD_REQUEST, "not a local domain");
    }
    if user.is_empty() || u.password.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "user and password must not be empty",
        );
    }
    match crate::auth::provision(&*a.store, user, domain, &u.password).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({"address": u.address}))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn remove_user(State(a): State<Admin>, UrlPath(address): UrlPath<String>) -> Response {
    let Some((user, domain)) = address.split_once('@') else {
        return error(StatusCode::BAD_REQUEST, "address must be user@domain");
    };
    match a.store.remove_user(user, domain).await {
        Ok(true) => {
            let (bindings, subscriptions) = a.core.end_user(user, domain);
            info!(%address, bindings, subscriptions, "user removed");
            Json(json!({"removed": address, "bindings": bindings, "subscriptions": subscriptions}))
                .into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such user"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn rules(State(a): State<Admin>) -> Response {
    match a.store.presence_rules().await {
        Ok(list) => Json(json!(list
            .into_iter()
            .map(|(presentity, watcher, decision)| json!({
                "presentity": presentity, "watcher": watcher, "decision": decision,
            }))
            .collect::<Vec<_>>()))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct Rule {
    presentity: String,
    watcher: String,
    /// allow, deny, polite-block, or forget.
    decision: String,
}

async fn set_rule(State(a): State<Admin>, body: Result<Json<Rule>, JsonRejection>) -> Response {
    let r = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"presentity\", \"watcher\", \"decision\"}}: {}",
                    e.body_text()
                ),
            )
        }
    };
    let result = if r.decision == "forget" {
        a.store
            .remove_presence_rule(&r.presentity, &r.watcher)
            .await
            .map(|_| ())
    } else {
        let Some(d) = Decision::parse(&r.decision) else {
            return error(
                StatusCode::BAD_REQUEST,
                "decision must be allow, deny, polite-block or forget",
            );
        };
        a.store
            .put_presence_rule(&r.presentity, &r.watcher, d.as_str())
            .await
    };
    match result {
        // The presence agent reads the rules again within a second.
        Ok(()) => {
            Json(json!({"presentity": r.presentity, "watcher": r.watcher, "decision": r.decision}))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct ArchiveParams {
    address: Option<String>,
    domain: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
}

/// One archived message as JSON.
pub fn archive_json(r: &crate::store::ArchiveRow) -> Value {
    json!({
        "id": r.id,
        "at": r.at,
        "time": crate::proto::time::rfc3339(u64::try_from(r.at).unwrap_or(0)),
        "source_protocol": r.source_protocol,
        "destination_protocol": r.destination_protocol,
        "sender": r.sender,
        "recipient": r.recipient,
        "peer_domain": r.peer_domain,
        "auth": r.auth,
        "decision": r.decision,
        "cpim": r.cpim,
    })
}

async fn archive(
    State(a): State<Admin>,
    params: Result<axum::extract::Query<ArchiveParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match params {
        Ok(axum::extract::Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let time = |v: &Option<String>, what: &str| -> Result<Option<i64>, String> {
        match v {
            None => Ok(None),
            Some(t) => crate::proto::time::parse_time(t)
                .map(Some)
                .ok_or_else(|| format!("{what}: Unix seconds or an RFC 3339 date expected")),
        }
    };
    let (since, until) = match (time(&p.since, "since"), time(&p.until, "until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let query = crate::store::ArchiveQuery {
        address: p.address,
        domain: p.domain,
        since,
        until,
        limit: p.limit.unwrap_or(100).clamp(1, 10_000),
    };
    match a.store.search_archive(&query).await {
        Ok(rows) => Json(json!(rows.iter().map(archive_json).collect::<Vec<_>>())).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn prometheus(State(a): State<Admin>) -> Response {
    let core = &a.core;
    ::metrics::gauge!("parley_uptime_seconds").set(a.started.elapsed().as_secs_f64());
    ::metrics::gauge!("parley_registrations").set(core.location.all(now_secs()).len() as f64);
    ::metrics::gauge!("parley_presence_subscriptions")
        .set(core.presence.subscription_count() as f64);
    ::metrics::gauge!("parley_offline_queue_depth").set(core.offline.total() as f64);
    let links = links(core);
    ::metrics::gauge!("parley_federation_links").set(links.len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        a.metrics.render(),
    )
        .into_response()
}

/// The address the admin API listens on by default.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
