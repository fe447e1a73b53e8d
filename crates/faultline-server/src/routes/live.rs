//! `GET /api/v1/logs/live`: WebSocket when the request asks for an upgrade,
//! Server-Sent Events otherwise.

use super::State;
use super::json::ApiEntry;
use super::query::{Params, parse_filter};
use crate::error::ApiError;
use crate::live::{LiveItem, Subscription};
use axum::extract::Query;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;

pub async fn live(
    state: State,
    headers: HeaderMap,
    Query(params): Params,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let principal = state.auth.authenticate(&headers).await?;
    let (filter, _) = parse_filter(params, &principal, false)?;
    let sub = state.hub.subscribe(filter);
    let stop = state.shutdown.clone();
    let ping = state.config.ping_interval;
    let access = Access {
        auth: state.auth.clone(),
        headers,
    };
    Ok(match ws {
        Ok(ws) => ws
            .on_upgrade(move |socket| websocket(socket, sub, stop, ping, access))
            .into_response(),
        Err(_) => sse(sub, stop, ping, access).into_response(),
    })
}

/// The credentials a stream was opened with, checked again at every ping:
/// a revoked token, a logout or a deleted user ends the stream.
pub struct Access {
    pub auth: std::sync::Arc<crate::auth::Authenticator>,
    pub headers: HeaderMap,
}

impl Access {
    pub async fn still_valid(&self) -> bool {
        self.auth.authenticate(&self.headers).await.is_ok()
    }
}

fn item_json(item: &LiveItem) -> String {
    match item {
        LiveItem::Entry(e) => serde_json::to_string(&ApiEntry(e, None)).expect("entries serialize"),
        LiveItem::Dropped(n) => format!("{{\"dropped\":{n}}}"),
    }
}

async fn websocket(
    mut socket: WebSocket,
    mut sub: Subscription,
    mut stop: watch::Receiver<bool>,
    ping: Duration,
    access: Access,
) {
    let mut ticker = tokio::time::interval(ping);
    ticker.tick().await;
    loop {
        tokio::select! {
            item = sub.next() => {
                let Some(item) = item else { break };
                if socket.send(Message::Text(item_json(&item).into())).await.is_err() {
                    break;
                }
            }
            _ = ticker.tick() => {
                if !access.still_valid().await {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
                if let Some(n) = sub.take_dropped() {
                    let notice = item_json(&LiveItem::Dropped(n));
                    if socket.send(Message::Text(notice.into())).await.is_err() {
                        break;
                    }
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

fn sse(
    sub: Subscription,
    stop: watch::Receiver<bool>,
    ping: Duration,
    access: Access,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut ticker = tokio::time::interval(ping);
    ticker.reset();
    let stream = futures_util::stream::unfold(
        (sub, stop, ticker, access),
        |(mut sub, mut stop, mut ticker, access)| async move {
            loop {
                tokio::select! {
                    item = sub.next() => {
                        let item = item?;
                        let kind = match item {
                            LiveItem::Entry(_) => "entry",
                            LiveItem::Dropped(_) => "dropped",
                        };
                        let event = Event::default().event(kind).data(item_json(&item));
                        return Some((Ok(event), (sub, stop, ticker, access)));
                    }
                    _ = ticker.tick() => {
                        if !access.still_valid().await {
                            return None;
                        }
                    }
                    _ = stop.changed() => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(ping).text("ping"))
}
