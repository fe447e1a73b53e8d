//! What each channel receives: the HTTP request of a notification (pure;
//! the server sends it).

use crate::eval::{Trigger, TriggerKind};
use crate::rule::ChannelKind;
use faultline_model::format_rfc3339_micros;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// Version of the generic webhook payload.
pub const WEBHOOK_VERSION: u32 = 1;

/// An HTTP POST to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where links in notifications point.
fn issue_link(base: &str, t: &Trigger) -> String {
    let base = base.trim_end_matches('/');
    match t.issue_id {
        Some(id) => format!("{base}/api/v1/issues/{id}"),
        None => format!(
            "{base}/api/v1/issues?project={}&service={}",
            t.project, t.service
        ),
    }
}

fn summary(t: &Trigger) -> String {
    let what = match t.condition.as_str() {
        "frequency" => format!("{} events in {}", t.count, human_window(t.window_secs)),
        "new_issue" => "new issue".into(),
        "regression" => "regressed".into(),
        other => other.into(),
    };
    let state = match t.kind {
        TriggerKind::Firing => "",
        TriggerKind::Resolved => " (resolved)",
    };
    format!(
        "[{}/{}] {}: {} — {}{}",
        t.project, t.service, t.rule_name, t.title, what, state
    )
}

fn human_window(secs: u64) -> String {
    match secs {
        0 => "an instant".into(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The generic webhook body (documented in the README).
pub fn webhook_body(t: &Trigger, base_url: &str, delivery_id: &str) -> Value {
    json!({
        "version": WEBHOOK_VERSION,
        "delivery_id": delivery_id,
        "status": t.kind,
        "rule": {"id": t.rule_id, "name": t.rule_name, "condition": t.condition},
        "project": t.project,
        "service": t.service,
        "issue": {
            "id": t.issue_id,
            "title": t.title,
            "fingerprint": t.fingerprint,
            "link": issue_link(base_url, t),
        },
        "level": t.level,
        "count": t.count,
        "window_seconds": t.window_secs,
        "first_event_at": format_rfc3339_micros(t.first_at),
        "last_event_at": format_rfc3339_micros(t.last_at),
        "fired_at": format_rfc3339_micros(t.fired_at),
        "summary": summary(t),
    })
}

/// Subject and plain-text body of a notification e-mail.
pub fn email_text(t: &Trigger, base_url: &str) -> (String, String) {
    let subject = format!("[faultline] {}", summary(t));
    let body = format!(
        "{}\n\nRule: {} ({})\nProject / service: {}/{}\nIssue: {}\nLevel: {}\nEvents: {} in {}\nFirst: {}\nLast: {}\n\nOpen in faultline: {}\n",
        summary(t),
        t.rule_name,
        t.condition,
        t.project,
        t.service,
        t.title,
        t.level,
        t.count,
        human_window(t.window_secs),
        format_rfc3339_micros(t.first_at),
        format_rfc3339_micros(t.last_at),
        issue_link(base_url, t),
    );
    (subject, body)
}

/// `sha256=<hex>` of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn severity(t: &Trigger) -> &'static str {
    match t.level {
        faultline_model::Level::Critical => "critical",
        faultline_model::Level::Error => "error",
        faultline_model::Level::Warn => "warning",
        _ => "info",
    }
}

/// The request a channel gets for a trigger; `None` when the channel does
/// not take this kind (chat channels are not told about resolutions).
pub fn request(
    channel: &ChannelKind,
    t: &Trigger,
    base_url: &str,
    delivery_id: &str,
) -> Option<Request> {
    let json_header = || ("Content-Type".to_string(), "application/json".to_string());
    match channel {
        ChannelKind::Webhook {
            url,
            secret,
            headers,
            send_resolved,
        } => {
            if t.kind == TriggerKind::Resolved && !send_resolved {
                return None;
            }
            let body = serde_json::to_vec(&webhook_body(t, base_url, delivery_id))
                .expect("JSON values serialize");
            let mut h = vec![
                json_header(),
                ("X-Faultline-Delivery".into(), delivery_id.into()),
            ];
            if let Some(s) = secret {
                h.push(("X-Faultline-Signature".into(), signature(s, &body)));
            }
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(Request {
                url: url.clone(),
                headers: h,
                body,
            })
        }
        ChannelKind::Slack { url } => {
            if t.kind == TriggerKind::Resolved {
                return None;
            }
            let link = issue_link(base_url, t);
            let body = json!({
                "text": summary(t),
                "blocks": [{
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": format!("*{}*\n<{}|{}>", summary(t), link, t.title)},
                }],
            });
            Some(Request {
                url: url.clone(),
                headers: vec![json_header()],
                body: serde_json::to_vec(&body).expect("JSON values serialize"),
            })
        }
        ChannelKind::Teams { url } => {
            if t.kind == TriggerKind::Resolved {
                return None;
            }
            let link = issue_link(base_url, t);
            let card = json!({
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": summary(t)},
                    {"type": "FactSet", "facts": [
                        {"title": "Project", "value": t.project},
                        {"title": "Service", "value": t.service},
                        {"title": "Rule", "value": t.rule_name},
                        {"title": "Count", "value": t.count.to_string()},
                        {"title": "First", "value": format_rfc3339_micros(t.first_at)},
                        {"title": "Last", "value": format_rfc3339_micros(t.last_at)},
                    ]},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Open in faultline", "url": link}],
            });
            let body = json!({
                "type": "message",
                "summary": summary(t),
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card,
                }],
            });
            Some(Request {
                url: url.clone(),
                headers: vec![json_header()],
                body: serde_json::to_vec(&body).expect("JSON values serialize"),
            })
        }
        // Tickets are filed by the server's ticket flow, not by one request.
        ChannelKind::Shotgrid { .. } => None,
        // Mail is sent over SMTP by the server (see [`email_text`]).
        ChannelKind::Email { .. } => None,
        ChannelKind::Alertmanager { url } => {
            let mut alert = json!({
                "labels": {
                    "alertname": t.rule_name,
                    "project": t.project,
                    "service": t.service,
                    "fingerprint": t.fingerprint,
                    "severity": severity(t),
                    "rule_key": t.key,
                },
                "annotations": {
                    "summary": summary(t),
                    "title": t.title,
                    "count": t.count.to_string(),
                    "faultline_url": issue_link(base_url, t),
                },
                "startsAt": format_rfc3339_micros(t.fired_at),
                "generatorURL": issue_link(base_url, t),
            });
            if let Some(end) = t.ends_at {
                alert["endsAt"] = format_rfc3339_micros(end).into();
            }
            Some(Request {
                url: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                headers: vec![json_header()],
                body: serde_json::to_vec(&json!([alert])).expect("JSON values serialize"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::Level;

    fn trigger(kind: TriggerKind) -> Trigger {
        Trigger {
            kind,
            rule_id: 3,
            rule_name: "storm".into(),
            condition: "frequency".into(),
            project: "studio".into(),
            service: "render".into(),
            key: "issue:9".into(),
            issue_id: Some(9),
            title: "TankError: no such shot".into(),
            fingerprint: "abcd".into(),
            level: Level::Error,
            count: 100,
            window_secs: 60,
            first_at: 1_700_000_000_000_000,
            last_at: 1_700_000_030_000_000,
            fired_at: 1_700_000_030_000_000,
            ends_at: None,
            dedupe: "rule3:issue:9:1".into(),
        }
    }

    #[test]
    fn webhook_is_signed_and_documented() {
        let ch = ChannelKind::Webhook {
            url: "http://127.0.0.1:9/hook".into(),
            secret: Some("s3cret".into()),
            headers: [("X-Team".to_string(), "render".to_string())].into(),
            send_resolved: false,
        };
        let r = request(&ch, &trigger(TriggerKind::Firing), "http://fl:8470/", "d-1").unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["status"], "firing");
        assert_eq!(body["count"], 100);
        assert_eq!(body["issue"]["link"], "http://fl:8470/api/v1/issues/9");
        assert_eq!(
            body["summary"],
            "[studio/render] storm: TankError: no such shot — 100 events in 1 min"
        );
        let sig = r
            .headers
            .iter()
            .find(|(k, _)| k == "X-Faultline-Signature")
            .unwrap();
        assert_eq!(sig.1, signature("s3cret", &r.body));
        assert!(r.headers.contains(&("X-Team".into(), "render".into())));
        assert!(request(&ch, &trigger(TriggerKind::Resolved), "http://fl", "d").is_none());
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn chat_channels_and_alertmanager() {
        let t = trigger(TriggerKind::Firing);
        let slack = request(
            &ChannelKind::Slack {
                url: "http://s/x".into(),
            },
            &t,
            "http://fl",
            "d",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&slack.body).unwrap();
        assert!(v["text"].as_str().unwrap().contains("100 events in 1 min"));
        let teams = request(
            &ChannelKind::Teams {
                url: "http://t/x".into(),
            },
            &t,
            "http://fl",
            "d",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&teams.body).unwrap();
        assert_eq!(
            v["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let am = ChannelKind::Alertmanager {
            url: "http://127.0.0.1:9093/".into(),
        };
        let r = request(&am, &t, "http://fl", "d").unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9093/api/v2/alerts");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "storm");
        assert_eq!(v[0]["labels"]["severity"], "error");
        assert!(v[0].get("endsAt").is_none());
        let mut done = trigger(TriggerKind::Resolved);
        done.ends_at = Some(1_700_000_100_000_000);
        let v: Value =
            serde_json::from_slice(&request(&am, &done, "http://fl", "d").unwrap().body).unwrap();
        assert_eq!(v[0]["endsAt"], "2023-11-14T22:15:00.000000Z");
        assert!(
            request(
                &ChannelKind::Slack {
                    url: "http://s/x".into()
                },
                &done,
                "http://fl",
                "d"
            )
            .is_none()
        );
    }
}
