//! The [`Grouper`]: masker + miner behind one small API.

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::mask::Masker;
use crate::miner::{GroupId, Merge, Miner, MinerConfig, TemplateState};

/// Configuration of a [`Grouper`]. The default is the one configuration the
/// server and `faultline group` use for every log source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrouperConfig {
    /// Template miner limits and merge rule.
    pub miner: MinerConfig,
}

/// The group of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResult {
    /// Stable id of the template the message joined.
    pub id: GroupId,
    /// The template as it stands after this message.
    pub template: String,
}

/// Like [`GroupResult`], borrowing the template from the grouper (no
/// allocation; for hot loops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRef<'a> {
    pub id: GroupId,
    pub template: &'a str,
}

/// Versioned, serialisable state of a [`Grouper`]: what the server persists
/// so that ids survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrouperState {
    /// Format version; [`GrouperState::VERSION`] for states written now.
    pub version: u32,
    /// Logical clock (messages seen), for least-recently-seen eviction.
    pub tick: u64,
    /// Templates, oldest first.
    pub templates: Vec<TemplateState>,
    /// Merge records, oldest first, for resolving ids of merged groups.
    pub merges: Vec<Merge>,
}

impl GrouperState {
    /// The state format this crate writes and reads.
    pub const VERSION: u32 = 1;
}

/// Longest message prefix that is masked; the rest cannot change a group
/// and would only cost time.
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Groups messages into templates. See the crate docs for the approach.
#[derive(Debug, Clone)]
pub struct Grouper {
    pub(crate) masker: Masker,
    pub(crate) miner: Miner,
    config: GrouperConfig,
}

impl Default for Grouper {
    fn default() -> Grouper {
        Grouper::new(GrouperConfig::default())
    }
}

impl Grouper {
    /// A grouper with no history.
    pub fn new(config: GrouperConfig) -> Grouper {
        Grouper {
            masker: Masker::new(),
            miner: Miner::new(config.miner.clone()),
            config,
        }
    }

    /// Groups one message, learning from it.
    pub fn group(&mut self, message: &str) -> GroupResult {
        let r = self.group_ref(message);
        GroupResult {
            id: r.id,
            template: r.template.to_owned(),
        }
    }

    /// Groups one message without allocating.
    pub fn group_ref(&mut self, message: &str) -> GroupRef<'_> {
        self.masker.run(clip(message, MAX_MESSAGE_BYTES));
        let (id, template) = self.miner.add(&self.masker);
        GroupRef { id, template }
    }

    /// The id a group has now: ids of groups merged into others resolve to
    /// the surviving id.
    pub fn resolve(&self, id: GroupId) -> GroupId {
        self.miner.resolve(id)
    }

    /// The current template of a (resolved) group, if it is still kept.
    pub fn template(&self, id: GroupId) -> Option<&str> {
        self.miner.template(id)
    }

    /// Merges since the last call: the server moves issues of `from` into
    /// `into`.
    pub fn take_merges(&mut self) -> Vec<Merge> {
        self.miner.take_merges()
    }

    /// Gives back memory that only speeds grouping up: the cache of exact
    /// message shapes (up to 8 per template kept, ~10 MB at the cap) and
    /// scratch buffers. The templates stay. The next messages are matched
    /// afresh, a little slower until the cache is warm again; a shape the
    /// cache had tied to a template that later merged into a wider one is
    /// matched as after a restart (the cache also empties itself at its
    /// cap). For idle servers.
    pub fn release_caches(&mut self) {
        self.miner.release_caches();
        self.masker = Masker::new();
    }

    /// Sets the most templates kept (`miner.max_templates`); beyond it the
    /// least recently seen are evicted now. The server shares one budget
    /// among its projects' groupers this way.
    pub fn set_max_templates(&mut self, max: usize) {
        self.miner.set_max_templates(max);
        self.config.miner.max_templates = max.max(1);
    }

    /// Templates kept now.
    pub fn template_count(&self) -> usize {
        self.miner.len()
    }

    /// Rough heap bytes held by the templates and their indexes.
    pub fn memory_estimate(&self) -> usize {
        self.miner.memory_estimate()
    }

    /// The configuration this grouper runs with.
    pub fn config(&self) -> &GrouperConfig {
        &self.config
    }

    /// Exports the learned state (serde) for persistence.
    pub fn export_state(&self) -> GrouperState {
        let (templates, merges, tick) = self.miner.export();
        GrouperState {
            version: GrouperState::VERSION,
            tick,
            templates,
            merges,
        }
    }

    /// Rebuilds a grouper from an exported state.
    pub fn import_state(
        config: GrouperConfig,
        state: &GrouperState,
    ) -> Result<Grouper, StateError> {
        if state.version != GrouperState::VERSION {
            return Err(StateError::Version {
                found: state.version,
                expected: GrouperState::VERSION,
            });
        }
        let miner = Miner::import(
            config.miner.clone(),
            &state.templates,
            &state.merges,
            state.tick,
        );
        Ok(Grouper {
            masker: Masker::new(),
            miner,
            config,
        })
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
