//! The rooms of the conference domain in the console: list them with
//! their members, create, configure and close a room, remove a member.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, Admin};
use crate::proto::room::Settings;
use crate::simple::rooms::RoomView;

/// A room as the API shows it.
pub(super) fn view_json(v: &RoomView) -> Value {
    json!({
        "address": v.address,
        "subject": v.subject,
        "public": v.settings.public,
        "members_only": v.settings.members_only,
        "persistent": v.settings.persistent,
        "moderated": v.settings.moderated,
        "password": v.settings.password.is_some(),
        "history": v.settings.history,
        "max_members": v.settings.max_members,
        "members": v.members.iter().map(|m| json!({
            "nick": m.nick,
            "address": m.id,
            "role": m.role,
            "affiliation": m.affiliation,
            "network": m.network,
        })).collect::<Vec<_>>(),
        "affiliations": v.affiliations.iter().map(|(id, a)| json!({
            "address": id,
            "affiliation": a,
        })).collect::<Vec<_>>(),
    })
}

/// The address of a room named by its full address or by its name alone.
fn address(a: &Admin, name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.contains('@') {
        name
    } else {
        format!("{name}@{}", a.core.rooms.domain())
    }
}

pub(super) async fn list(State(a): State<Admin>) -> Json<Value> {
    let views = a.core.rooms.views().await;
    Json(json!({
        "domain": a.core.rooms.domain(),
        "rooms": views.iter().map(view_json).collect::<Vec<_>>(),
    }))
}

pub(super) async fn one(State(a): State<Admin>, UrlPath(name): UrlPath<String>) -> Response {
    let address = address(&a, &name);
    match a
        .core
        .rooms
        .views()
        .await
        .into_iter()
        .find(|v| v.address == address)
    {
        Some(v) => Json(view_json(&v)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such room"),
    }
}

/// Settings as the API takes them; each is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Change {
    address: Option<String>,
    subject: Option<String>,
    public: Option<bool>,
    members_only: Option<bool>,
    persistent: Option<bool>,
    moderated: Option<bool>,
    /// An empty password removes it.
    password: Option<String>,
    history: Option<usize>,
    max_members: Option<usize>,
    /// The owner (`user@domain`), when a user is to own the room.
    owner: Option<String>,
}

impl Change {
    fn apply(&self, s: &mut Settings, subject: &mut String) {
        if let Some(v) = &self.subject {
            *subject = v.clone();
        }
        if let Some(v) = self.public {
            s.public = v;
        }
        if let Some(v) = self.members_only {
            s.members_only = v;
        }
        if let Some(v) = self.persistent {
            s.persistent = v;
        }
        if let Some(v) = self.moderated {
            s.moderated = v;
        }
        if let Some(v) = &self.password {
            s.password = (!v.is_empty()).then(|| v.clone());
        }
        if let Some(v) = self.history {
            s.history = v;
        }
        if let Some(v) = self.max_members {
            s.max_members = v;
        }
    }
}

fn body(b: Result<Json<Change>, JsonRejection>) -> Result<Change, Box<Response>> {
    b.map(|Json(c)| c).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected room settings (address, subject, public, members_only, persistent, moderated, password, history, max_members, owner): {}",
                e.body_text()
            ),
        ))
    })
}

pub(super) async fn create(
    State(a): State<Admin>,
    b: Result<Json<Change>, JsonRejection>,
) -> Response {
    let c = match body(b) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(name) = c.address.clone() else {
        return error(
            StatusCode::BAD_REQUEST,
            "a room needs an address (or a name)",
        );
    };
    let address = address(&a, &name);
    let Some((user, domain)) = address.split_once('@') else {
        return error(StatusCode::BAD_REQUEST, "not a room address");
    };
    if user.is_empty() || !a.core.rooms.serves(domain) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("rooms live in {}", a.core.rooms.domain()),
        );
    }
    if a.core
        .rooms
        .views()
        .await
        .iter()
        .any(|v| v.address == address)
    {
        return error(StatusCode::CONFLICT, "that room exists");
    }
    let rooms = &a.core.rooms;
    let mut settings = rooms.default_settings();
    let mut subject = String::new();
    c.apply(&mut settings, &mut subject);
    let owner = c.owner.as_deref().map(str::to_ascii_lowercase);
    if let Err(f) = rooms
        .create(&address, owner.as_deref(), Some(settings))
        .await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, &f.to_string());
    }
    match rooms.configure(&address, |_, s| *s = subject).await {
        Some(v) => (StatusCode::CREATED, Json(view_json(&v))).into_response(),
        None => error(StatusCode::NOT_FOUND, "the room closed again"),
    }
}

pub(super) async fn configure(
    State(a): State<Admin>,
    UrlPath(name): UrlPath<String>,
    b: Result<Json<Change>, JsonRejection>,
) -> Response {
    let c = match body(b) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let address = address(&a, &name);
    match a
        .core
        .rooms
        .configure(&address, |s, subject| c.apply(s, subject))
        .await
    {
        Some(v) => Json(view_json(&v)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such room"),
    }
}

pub(super) async fn close(State(a): State<Admin>, UrlPath(name): UrlPath<String>) -> Response {
    let address = address(&a, &name);
    if a.core
        .rooms
        .close(&a.core, &address, "the room was closed")
        .await
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such room")
    }
}

pub(super) async fn remove(
    State(a): State<Admin>,
    UrlPath((name, nick)): UrlPath<(String, String)>,
) -> Response {
    let address = address(&a, &name);
    if a.core
        .rooms
        .remove(&a.core, &address, &nick, "removed by the operator")
        .await
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such room or member")
    }
}
