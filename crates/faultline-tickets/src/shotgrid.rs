//! ShotGrid (Flow Production Tracking) REST API v1:
//!
//! | what | call |
//! |---|---|
//! | token | `POST /api/v1/auth/access_token`, form `grant_type=client_credentials&client_id=<script name>&client_secret=<script key>` → `{"access_token", "expires_in", …}`; sent as `Authorization: Bearer`; renewed before it expires and once more on a 401 |
//! | find | `POST /api/v1/entity/tickets/_search`, `Content-Type: application/vnd+shotgun.api3_array+json`, `{"filters": [["project","is",{"type":"Project","id":P}], [<signature field>,"is",S], ["sg_status_list","is_not","clsd"]], "fields": ["id", <signature field>, "sg_status_list"]}` |
//! | create | `POST /api/v1/entity/tickets`, JSON `{"project": {"type":"Project","id":P}, <signature field>: S, "title": S, "description": D}` → `{"data": {"id", …}}` |
//! | attach | `GET /api/v1/entity/tickets/{id}/_upload?filename=F` → `{"data": upload info, "links": {"upload", "complete_upload"}}`; `PUT` the bytes to `links.upload`; `POST links.complete_upload` with `{"upload_info": data, "upload_data": {"display_name": F}}` |
//! | note | `POST /api/v1/entity/notes`, `{"project", "subject", "content", "note_links": [{"type":"Ticket","id"}]}` |

use crate::{NewTicket, TicketError, TicketRef, TicketTracker};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How a ShotGrid site is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShotGridConfig {
    /// The site, e.g. `https://studio.shotgrid.autodesk.com`.
    pub site: String,
    /// Script name and key (Admin → Scripts).
    pub script_name: String,
    pub script_key: String,
    /// The ShotGrid project tickets are filed in.
    pub project_id: i64,
    /// The Ticket field holding the signature, searched for duplicates
    /// (default `title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_field: Option<String>,
    /// The status of closed tickets, which do not count as duplicates
    /// (default `clsd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_status: Option<String>,
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// A ShotGrid REST client.
pub struct ShotGrid {
    config: ShotGridConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn transport(call: &'static str) -> impl Fn(reqwest::Error) -> TicketError {
    move |e| TicketError::Transport {
        call,
        reason: e.to_string(),
    }
}

impl ShotGrid {
    pub fn new(config: ShotGridConfig, http: reqwest::Client) -> ShotGrid {
        ShotGrid {
            config,
            http,
            token: Mutex::new(None),
        }
    }

    fn base(&self) -> &str {
        self.config.site.trim_end_matches('/')
    }

    fn signature_field(&self) -> &str {
        self.config.signature_field.as_deref().unwrap_or("title")
    }

    fn project(&self) -> Value {
        json!({"type": "Project", "id": self.config.project_id})
    }

    fn ticket_url(&self, id: &str) -> String {
        format!("{}/detail/Ticket/{id}", self.base())
    }

    /// A valid access token (fetching a new one when the cached one is
    /// about to expire, or when `force`).
    async fn token(&self, force: bool) -> Result<String, TicketError> {
        let mut slot = self.token.lock().await;
        if !force
            && let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/access_token", self.base()))
            .header("Accept", "application/json")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.script_name.as_str()),
                ("client_secret", self.config.script_key.as_str()),
            ])
            .send()
            .await
            .map_err(transport("auth"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(TicketError::Auth(format!("HTTP {status}: {body}")));
        }
        let t: TokenAnswer = resp.json().await.map_err(transport("auth"))?;
        // Renew 30 s early (or at half the lifetime for short ones).
        let life = Duration::from_secs(t.expires_in.unwrap_or(600));
        let margin = Duration::from_secs(30).min(life / 2);
        *slot = Some(Token {
            value: t.access_token.clone(),
            renew_at: Instant::now() + life - margin,
        });
        Ok(t.access_token)
    }

    /// Sends an authorized request; on 401 renews the token and tries once
    /// more. Returns the JSON answer (Null for an empty body).
    async fn call(
        &self,
        call: &'static str,
        build: impl Fn(&str) -> RequestBuilder,
    ) -> Result<Value, TicketError> {
        let mut force = false;
        loop {
            let token = self.token(force).await?;
            let resp = build(&token)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(transport(call))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !force {
                force = true;
                continue;
            }
            if !status.is_success() {
                let body: String = resp
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                return Err(TicketError::Status {
                    call,
                    status: status.as_u16(),
                    body,
                });
            }
            let text = resp.text().await.map_err(transport(call))?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| TicketError::Transport {
                call,
                reason: format!("unreadable answer: {e}"),
            });
        }
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base())
        };
        self.http.request(method, url).bearer_auth(token)
    }
}

fn id_of(v: &Value) -> Option<String> {
    match &v["id"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl TicketTracker for ShotGrid {
    fn name(&self) -> &'static str {
        "shotgrid"
    }

    async fn find_open(&self, signature: &str) -> Result<Option<TicketRef>, TicketError> {
        let field = self.signature_field().to_owned();
        let body = json!({
            "filters": [
                ["project", "is", self.project()],
                [field, "is", signature],
                ["sg_status_list", "is_not", self.config.closed_status.as_deref().unwrap_or("clsd")],
            ],
            "fields": ["id", field, "sg_status_list"],
        });
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let v = self
            .call("search tickets", |t| {
                self.request(Method::POST, "/api/v1/entity/tickets/_search", t)
                    .header("Content-Type", "application/vnd+shotgun.api3_array+json")
                    .body(body.clone())
            })
            .await?;
        Ok(v["data"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(id_of)
            .map(|id| TicketRef {
                url: self.ticket_url(&id),
                id,
            }))
    }

    async fn create(&self, ticket: &NewTicket) -> Result<TicketRef, TicketError> {
        let mut body = json!({
            "project": self.project(),
            "title": ticket.title,
            "description": ticket.description,
        });
        body[self.signature_field()] = Value::String(ticket.title.clone());
        let v = self
            .call("create a ticket", |t| {
                self.request(Method::POST, "/api/v1/entity/tickets", t)
                    .json(&body)
            })
            .await?;
        let id = id_of(&v["data"]).ok_or_else(|| TicketError::Transport {
            call: "create a ticket",
            reason: format!("no ticket id in the answer: {v}"),
        })?;
        Ok(TicketRef {
            url: self.ticket_url(&id),
            id,
        })
    }

    async fn attach(
        &self,
        ticket: &TicketRef,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), TicketError> {
        let path = format!("/api/v1/entity/tickets/{}/_upload", ticket.id);
        let start = self
            .call("start an upload", |t| {
                self.request(Method::GET, &path, t)
                    .query(&[("filename", filename)])
            })
            .await?;
        let upload = start["links"]["upload"]
            .as_str()
            .ok_or_else(|| TicketError::Transport {
                call: "start an upload",
                reason: format!("no upload link in {start}"),
            })?
            .to_owned();
        let complete = start["links"]["complete_upload"]
            .as_str()
            .ok_or_else(|| TicketError::Transport {
                call: "start an upload",
                reason: format!("no complete_upload link in {start}"),
            })?
            .to_owned();
        // The upload link of the ShotGrid storage service takes our
        // token; links to a cloud store are pre-signed and take none.
        let same_site = upload.starts_with(self.base()) || upload.starts_with('/');
        let put = if same_site {
            self.request(Method::PUT, &upload, &self.token(false).await?)
        } else {
            self.http.put(&upload)
        };
        let resp = put
            .header("Content-Type", content_type)
            .body(bytes)
            .send()
            .await
            .map_err(transport("upload a file"))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return Err(TicketError::Status {
                call: "upload a file",
                status,
                body,
            });
        }
        let body = json!({
            "upload_info": start["data"],
            "upload_data": {"display_name": filename},
        });
        self.call("complete an upload", |t| {
            self.request(Method::POST, &complete, t).json(&body)
        })
        .await?;
        Ok(())
    }

    async fn add_note(
        &self,
        ticket: &TicketRef,
        subject: &str,
        body: &str,
    ) -> Result<(), TicketError> {
        let id: Value = ticket
            .id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(ticket.id.clone()));
        let note = json!({
            "project": self.project(),
            "subject": subject,
            "content": body,
            "note_links": [{"type": "Ticket", "id": id}],
        });
        self.call("add a note", |t| {
            self.request(Method::POST, "/api/v1/entity/notes", t)
                .json(&note)
        })
        .await?;
        Ok(())
    }
}
