//! # faultline-tickets
//!
//! Tickets in an external tracker for faultline issues, as the seed's
//! tk-incidentreporter did it: find an open ticket with the issue's
//! signature, create one if there is none (with the log attached), and
//! afterwards add at most a rate-limited note — never a second ticket.
//!
//! [`TicketTracker`] is what a tracker must do; [`ShotGrid`] implements it
//! on the ShotGrid (Flow Production Tracking) REST API. [`file_ticket`] is
//! the tracker-independent flow the server runs for a notification, so
//! GitHub, GitLab, Jira or Redmine only add a `TicketTracker`.

mod shotgrid;

pub use shotgrid::{ShotGrid, ShotGridConfig};

use std::future::Future;

/// Why a tracker call failed.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The tracker refused the credentials (after a refresh).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The tracker answered with an error status.
    #[error("{call}: HTTP {status}: {body}")]
    Status {
        call: &'static str,
        status: u16,
        body: String,
    },
    /// No answer (connection, timeout) or an answer we cannot read.
    #[error("{call}: {reason}")]
    Transport { call: &'static str, reason: String },
}

/// A ticket in the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The tracker's id.
    pub id: String,
    /// Where people open it.
    pub url: String,
}

/// A ticket to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// The signature (`"<user> - <ErrorName>"`): also what duplicates are
    /// found by.
    pub title: String,
    pub description: String,
}

/// What a ticket tracker does for faultline.
pub trait TicketTracker {
    /// The tracker's name as stored with links (`shotgrid`).
    fn name(&self) -> &'static str;
    /// An open ticket whose signature is `signature`, if any.
    fn find_open(
        &self,
        signature: &str,
    ) -> impl Future<Output = Result<Option<TicketRef>, TicketError>> + Send;
    fn create(
        &self,
        ticket: &NewTicket,
    ) -> impl Future<Output = Result<TicketRef, TicketError>> + Send;
    /// Attaches a file to a ticket.
    fn attach(
        &self,
        ticket: &TicketRef,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), TicketError>> + Send;
    /// Adds a note (a comment) to a ticket.
    fn add_note(
        &self,
        ticket: &TicketRef,
        subject: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), TicketError>> + Send;
}

/// The link between an issue and its ticket, as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub tracker: String,
    pub ticket: TicketRef,
    /// The log is attached (a failed upload is retried, the ticket is not
    /// created again).
    pub attached: bool,
    /// When the last note was added (µs).
    pub last_note_at: Option<i64>,
}

/// What the flow needs to know about the issue and its latest event.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub signature: String,
    pub description: String,
    /// The file to attach to a new ticket: (name, content type, bytes).
    pub attachment: Option<(String, String, Vec<u8>)>,
    /// Now (µs).
    pub now: i64,
    /// Least time between two notes (µs).
    pub note_interval: i64,
    /// A short text for a note about a later occurrence.
    pub note: String,
}

/// What [`file_ticket`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    Created,
    /// An open ticket with the same signature existed: linked, not created.
    LinkedExisting,
    /// The issue had a ticket: a note was added.
    Noted,
    /// The issue had a ticket and a note was added recently: nothing.
    Skipped,
}

/// The flow: a linked ticket gets at most one note per `note_interval`
/// (and its attachment if an earlier upload failed); otherwise an open
/// ticket with the same signature is linked, or a new one is created and
/// the log attached. `save` is called with the link as soon as the ticket
/// exists, before the upload, so a retry after a failed upload never
/// creates a second ticket.
pub async fn file_ticket<T: TicketTracker + Sync>(
    tracker: &T,
    link: Option<Link>,
    occ: &Occurrence,
    save: &mut (dyn FnMut(&Link) -> Result<(), String> + Send),
) -> Result<(Filed, Link), String> {
    let err = |e: TicketError| e.to_string();
    if let Some(mut link) = link {
        if !link.attached {
            attach(tracker, &mut link, occ, save).await?;
            return Ok((Filed::Created, link));
        }
        let recent = link
            .last_note_at
            .is_some_and(|t| occ.now.saturating_sub(t) < occ.note_interval);
        if recent {
            return Ok((Filed::Skipped, link));
        }
        tracker
            .add_note(&link.ticket, &occ.signature, &occ.note)
            .await
            .map_err(err)?;
        link.last_note_at = Some(occ.now);
        save(&link)?;
        return Ok((Filed::Noted, link));
    }
    if let Some(existing) = tracker.find_open(&occ.signature).await.map_err(err)? {
        let link = Link {
            tracker: tracker.name().into(),
            ticket: existing,
            attached: true,
            last_note_at: None,
        };
        save(&link)?;
        return Ok((Filed::LinkedExisting, link));
    }
    let ticket = tracker
        .create(&NewTicket {
            title: occ.signature.clone(),
            description: occ.description.clone(),
        })
        .await
        .map_err(err)?;
    let mut link = Link {
        tracker: tracker.name().into(),
        ticket,
        attached: occ.attachment.is_none(),
        last_note_at: None,
    };
    save(&link)?;
    if !link.attached {
        attach(tracker, &mut link, occ, save).await?;
    }
    Ok((Filed::Created, link))
}

async fn attach<T: TicketTracker + Sync>(
    tracker: &T,
    link: &mut Link,
    occ: &Occurrence,
    save: &mut (dyn FnMut(&Link) -> Result<(), String> + Send),
) -> Result<(), String> {
    if let Some((name, content_type, bytes)) = &occ.attachment {
        tracker
            .attach(&link.ticket, name, content_type, bytes.clone())
            .await
            .map_err(|e| format!("attaching {name}: {e}"))?;
    }
    link.attached = true;
    save(link)
}
