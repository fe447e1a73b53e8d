//! # faultline-alerts
//!
//! Alerting without I/O: rules and channels as users write them
//! ([`rule`]), burst detection that fires exactly once per burst and can be
//! committed atomically with the events that caused it ([`eval`]), and the
//! HTTP request each channel receives ([`payload`]).
//!
//! The server runs the [`Evaluator`] in its issue processor (one owner per
//! project's events, in event order), stores triggers in an outbox in the
//! same transaction as the events, and a delivery task sends them.

pub mod eval;
pub mod payload;
pub mod rule;

pub use eval::{
    Evaluation, Evaluator, EventFacts, KeyState, RATE_KEY, RateState, ServiceCount, Trigger,
    TriggerKind,
};
pub use payload::{Request, email_text, request, signature, webhook_body};
pub use rule::{ChannelKind, ChannelSpec, Condition, Per, Rule, RuleKind, RuleSpec};

/// Why a rule or channel is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Invalid(String),
}
