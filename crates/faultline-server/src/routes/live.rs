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
    Ok(match ws {
        Ok(ws) => ws
            .on_upgrade(move |socket| websocket(socket, sub, stop, ping))
            .into_response(),
        Err(_) => sse(sub, stop, ping).into_response(),
    })
}

fn item_json(item: &LiveItem) -> String {
    match item {
        LiveItem::Entry(e) => serde_json::to_string(&ApiEntry(e)).expect("entries serialize"),
        LiveItem::Dropped(n) => format!("{{\"dropped\":{n}}}"),
    }
}

async fn websocket(
    mut socket: WebSocket,
    mut sub: Subscription,
    mut stop: watch::Receiver<bool>,
    ping: Duration,
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
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((sub, stop), |(mut sub, mut stop)| async move {
        tokio::select! {
            item = sub.next() => {
                let item = item?;
                let kind = match item {
                    LiveItem::Entry(_) => "entry",
                    LiveItem::Dropped(_) => "dropped",
                };
                let event = Event::default().event(kind).data(item_json(&item));
                Some((Ok(event), (sub, stop)))
            }
            _ = stop.changed() => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(ping).text("ping"))
}
