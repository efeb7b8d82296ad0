//! `/ws`: agent events, live, over a WebSocket.
//!
//! Authenticate with `?token=<jwt>`, or with a first text message `Bearer <jwt>` within 5 s;
//! a bad or missing token closes the socket with code 4001. `{"type":"ping"}` is answered with
//! `{"type":"pong"}`. Each session receives only the events of agents its user can see (admins:
//! all), decided per event against the live access index, so a share or unshare takes effect at
//! once. Share events reach the owner, admins and the user concerned, not other sharees.
//!
//! A client that cannot keep up is dropped with a close frame (1008) instead of slowing the bus
//! or growing memory: the bus drops the oldest events for a lagging subscriber, and a send that
//! cannot complete within [`SEND_TIMEOUT`] ends the session. The token is re-checked
//! periodically, so a logout or password change ends open sessions too.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use flotilla_actors::events::FleetEvent;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::auth::extractor::authenticate;
use crate::state::AppState;

/// How long a client has to authenticate when no token is in the URL.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one event may take to reach a client before the client is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an open session's token is checked again (expiry, logout, password change).
const RECHECK: Duration = Duration::from_secs(30);
/// Largest frame accepted from a client.
const MAX_FRAME: usize = 64 * 1024;
/// Close code for a failed authentication.
const AUTH_FAILED: u16 = 4001;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// An access token (alternatively, send `Bearer <token>` as the first message).
    pub token: Option<String>,
}

/// Agent events over a WebSocket (`agent_created`, `agent_started`, `agent_stopped`,
/// `agent_renamed`, `agent_deleted`, `agent_shared`, `agent_unshared`, `agent_died`,
/// `agent_config_changed`), each `{event, type, name, agent_id, data, ts}`.
#[utoipa::path(get, path = "/ws", tag = "events",
    params(WsQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol")))]
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<WsQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_FRAME);
    let token = query.into_inner().token;
    actix_web::rt::spawn(run(state.into_inner(), session, stream, token));
    Ok(response)
}

async fn close(session: Session, code: u16, why: &str) {
    let reason = CloseReason {
        code: CloseCode::Other(code),
        description: Some(why.to_string()),
    };
    let _ = session.close(Some(reason)).await;
}

/// The token from `?token=`, or from a first `Bearer <token>` message.
async fn token_of(stream: &mut MessageStream, query: Option<String>) -> Option<String> {
    if query.is_some() {
        return query;
    }
    match tokio::time::timeout(AUTH_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            let text = text.trim();
            let (scheme, token) = text.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        }
        _ => None,
    }
}

async fn run(
    state: Arc<AppState>,
    mut session: Session,
    mut stream: MessageStream,
    query_token: Option<String>,
) {
    let token = token_of(&mut stream, query_token).await;
    let Some((token, auth)) =
        token.and_then(|t| authenticate(&state, &t).ok().map(|auth| (t, auth)))
    else {
        close(session, AUTH_FAILED, "authentication failed").await;
        return;
    };
    let _session = state.fleet.metrics().websocket_session();
    let mut events = state.fleet.events().subscribe();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let hello = json!({"type": "connected", "user": auth.principal.username});
    if session.text(hello.to_string()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let is_ping = serde_json::from_str::<serde_json::Value>(&text)
                        .is_ok_and(|v| v["type"] == "ping");
                    if is_ping && session.text(json!({"type": "pong"}).to_string()).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            event = events.recv() => match event {
                Ok(event) => {
                    if !visible(&state, &auth, &event) {
                        continue;
                    }
                    let frame = envelope(&event).to_string();
                    match tokio::time::timeout(SEND_TIMEOUT, session.text(frame)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return,
                        Err(_) => {
                            close(session, 1008, "client too slow").await;
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    close(session, 1008, "client too slow").await;
                    return;
                }
                Err(RecvError::Closed) => break,
            },
            _ = recheck.tick() => {
                if authenticate(&state, &token).is_err() {
                    close(session, AUTH_FAILED, "token no longer valid").await;
                    return;
                }
            }
        }
    }
    let _ = session.close(None).await;
}

/// Whether `auth`'s user may see `event`.
fn visible(state: &AppState, auth: &Auth, event: &FleetEvent) -> bool {
    let who = &auth.principal;
    if who.is_admin() {
        return true;
    }
    let share_event = matches!(event.event, "agent_shared" | "agent_unshared");
    match state.fleet.agent_view(event.agent_id) {
        Some(view) => match state.fleet.access().level(who, &view) {
            None => false,
            Some(flotilla_actors::AccessLevel::Shared) if share_event => {
                event.data["shared_with"] == who.username.as_str()
            }
            Some(_) => true,
        },
        // A deleted agent: the event names who could see it.
        None => event.data["audience"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == who.username.as_str())),
    }
}

fn envelope(event: &FleetEvent) -> serde_json::Value {
    let mut data = event.data.clone();
    if let Some(map) = data.as_object_mut() {
        map.remove("audience");
    }
    json!({
        "event": event.event,
        "type": event.event,
        "name": event.name,
        "agent_id": event.agent_id.to_string(),
        "data": data,
        "ts": event.ts,
    })
}
