//! The messaging port, with Service Bus semantics.
//!
//! Apps only send (`BusSender`): in Azure the Functions host consumes through
//! `serviceBusTrigger` bindings, so receiving is the business of brokers the platform runs
//! itself (the embedded broker, driven by the local runner), through `BrokerReceiver`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Service Bus allows strings, numbers and booleans as application properties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl PropertyValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropertyValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        PropertyValue::String(value.to_owned())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        PropertyValue::String(value)
    }
}

/// A message to send. `message_id` is mandatory: duplicate detection and idempotent
/// consumers both key on it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMessage {
    pub message_id: String,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub subject: Option<String>,
    pub correlation_id: Option<String>,
    pub session_id: Option<String>,
    pub application_properties: BTreeMap<String, PropertyValue>,
    pub scheduled_enqueue_time: Option<DateTime<Utc>>,
    pub time_to_live: Option<Duration>,
}

impl OutgoingMessage {
    pub fn new(message_id: impl Into<String>, body: impl Into<Bytes>) -> Self {
        OutgoingMessage {
            message_id: message_id.into(),
            body: body.into(),
            content_type: None,
            subject: None,
            correlation_id: None,
            session_id: None,
            application_properties: BTreeMap::new(),
            scheduled_enqueue_time: None,
            time_to_live: None,
        }
    }

    pub fn content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    pub fn subject(mut self, value: impl Into<String>) -> Self {
        self.subject = Some(value.into());
        self
    }

    pub fn correlation_id(mut self, value: impl Into<String>) -> Self {
        self.correlation_id = Some(value.into());
        self
    }

    pub fn session_id(mut self, value: impl Into<String>) -> Self {
        self.session_id = Some(value.into());
        self
    }

    pub fn property(mut self, name: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.application_properties
            .insert(name.into(), value.into());
        self
    }

    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_enqueue_time = Some(at);
        self
    }
}

#[async_trait]
pub trait BusSender: Send + Sync {
    /// Sends to a queue or topic, all messages or none. A message whose `message_id` was
    /// seen by the entity within its duplicate-detection window is accepted and dropped.
    async fn send(&self, entity: &str, messages: Vec<OutgoingMessage>) -> Result<()>;
}

/// A subscription's rule, evaluated against application properties (and `sys.Label` /
/// `Subject` under the property name `subject`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Filter {
    /// Every message (Service Bus `TrueFilter`).
    All,
    /// `<name> IN ('a', 'b')`.
    PropertyIn { name: String, values: Vec<String> },
    /// `<name> LIKE 'prefix%'`.
    PropertyPrefix { name: String, prefix: String },
    /// `<name> NOT IN ('a', 'b')`: as in Service Bus SQL, a message without the property
    /// does not match.
    PropertyNotIn { name: String, values: Vec<String> },
}

impl Filter {
    pub fn matches(&self, message: &OutgoingMessage) -> bool {
        let lookup = |name: &str| -> Option<String> {
            if name.eq_ignore_ascii_case("subject") {
                return message.subject.clone();
            }
            match message.application_properties.get(name)? {
                PropertyValue::String(s) => Some(s.clone()),
                PropertyValue::Int(i) => Some(i.to_string()),
                PropertyValue::Float(f) => Some(f.to_string()),
                PropertyValue::Bool(b) => Some(b.to_string()),
            }
        };
        match self {
            Filter::All => true,
            Filter::PropertyIn { name, values } => {
                lookup(name).is_some_and(|v| values.contains(&v))
            }
            Filter::PropertyPrefix { name, prefix } => {
                lookup(name).is_some_and(|v| v.starts_with(prefix.as_str()))
            }
            Filter::PropertyNotIn { name, values } => {
                lookup(name).is_some_and(|v| !values.contains(&v))
            }
        }
    }

    /// The same rule as a Service Bus SQL filter expression (for Bicep and the REST API).
    pub fn to_sql(&self) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        match self {
            Filter::All => "1=1".to_owned(),
            Filter::PropertyIn { name, values } => format!(
                "[{name}] IN ({})",
                values
                    .iter()
                    .map(|v| quote(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Filter::PropertyPrefix { name, prefix } => {
                format!("[{name}] LIKE {}", quote(&format!("{prefix}%")))
            }
            Filter::PropertyNotIn { name, values } => format!(
                "[{name}] NOT IN ({})",
                values
                    .iter()
                    .map(|v| quote(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Settings every entity (queue or subscription) has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitySpec {
    pub max_delivery_count: u32,
    pub lock_duration: Duration,
    pub duplicate_detection_window: Duration,
    pub requires_session: bool,
    pub default_time_to_live: Option<Duration>,
}

impl Default for EntitySpec {
    /// The platform's defaults (design §7): max delivery count 10, one-minute locks,
    /// ten-minute duplicate detection.
    fn default() -> Self {
        EntitySpec {
            max_delivery_count: 10,
            lock_duration: Duration::from_secs(60),
            duplicate_detection_window: Duration::from_secs(600),
            requires_session: false,
            default_time_to_live: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    pub name: String,
    pub filter: Filter,
    #[serde(flatten)]
    pub spec: EntitySpec,
}

/// Queues and topics (with their subscriptions) a broker must have.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub queues: BTreeMap<String, EntitySpec>,
    pub topics: BTreeMap<String, Vec<SubscriptionSpec>>,
}

impl Topology {
    pub fn queue(mut self, name: impl Into<String>, spec: EntitySpec) -> Self {
        self.queues.insert(name.into(), spec);
        self
    }

    pub fn subscription(mut self, topic: impl Into<String>, sub: SubscriptionSpec) -> Self {
        let subs = self.topics.entry(topic.into()).or_default();
        subs.retain(|s| s.name != sub.name);
        subs.push(sub);
        self
    }

    /// Adds a topic with no subscriptions yet (messages to it go nowhere, as in Service Bus).
    pub fn topic(mut self, name: impl Into<String>) -> Self {
        self.topics.entry(name.into()).or_default();
        self
    }
}

/// Where a receiver reads from: a queue, a topic subscription, or one of their
/// dead-letter sub-queues.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Queue(String),
    Subscription { topic: String, subscription: String },
}

impl Entity {
    pub fn queue(name: impl Into<String>) -> Self {
        Entity::Queue(name.into())
    }

    pub fn subscription(topic: impl Into<String>, subscription: impl Into<String>) -> Self {
        Entity::Subscription {
            topic: topic.into(),
            subscription: subscription.into(),
        }
    }

    /// The Service Bus path: `queue` or `topic/Subscriptions/sub`.
    pub fn path(&self) -> String {
        match self {
            Entity::Queue(q) => q.clone(),
            Entity::Subscription {
                topic,
                subscription,
            } => {
                format!("{topic}/Subscriptions/{subscription}")
            }
        }
    }
}

/// A message delivered under a peek-lock.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    pub message: OutgoingMessage,
    pub lock_token: String,
    pub locked_until: DateTime<Utc>,
    /// 1 on the first delivery, incremented on every abandon or lock expiry.
    pub delivery_count: u32,
    pub sequence_number: i64,
    pub enqueued_time: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set on messages read from a dead-letter queue.
    pub dead_letter_reason: Option<String>,
    pub dead_letter_source: Option<String>,
}

#[async_trait]
pub trait BrokerReceiver: Send + Sync {
    /// Creates missing entities; existing ones keep their messages.
    async fn ensure_topology(&self, topology: &Topology) -> Result<()>;

    /// Locks up to `max` available messages. For session entities at most one session's
    /// messages are locked at a time per session, in sequence order.
    async fn receive(&self, entity: &Entity, max: usize) -> Result<Vec<ReceivedMessage>>;

    /// Waits until `receive` may find something or `timeout` passes.
    async fn wait_for_messages(&self, entity: &Entity, timeout: Duration);

    /// Removes a locked message. `NotFound` if the lock was lost.
    async fn complete(&self, entity: &Entity, lock_token: &str) -> Result<()>;

    /// Releases the lock for immediate redelivery; the message is dead-lettered instead when
    /// its delivery count has reached the entity's maximum.
    async fn abandon(&self, entity: &Entity, lock_token: &str) -> Result<()>;

    /// Moves a locked message to the dead-letter queue.
    async fn dead_letter(&self, entity: &Entity, lock_token: &str, reason: &str) -> Result<()>;

    /// Extends a lock by the entity's lock duration.
    async fn renew_lock(&self, entity: &Entity, lock_token: &str) -> Result<DateTime<Utc>>;

    /// Reads (without locking or removing) the dead-letter queue of an entity.
    async fn peek_dead_letters(&self, entity: &Entity, max: usize) -> Result<Vec<ReceivedMessage>>;

    /// Counts active (not dead-lettered) messages, scheduled ones included.
    async fn active_count(&self, entity: &Entity) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_in_filters_match_like_service_bus_sql() {
        let filter = Filter::PropertyNotIn {
            name: "type".into(),
            values: vec!["a.delivered".into(), "it's".into()],
        };
        let typed = |t: &str| OutgoingMessage::new("m", b"{}".to_vec()).property("type", t);
        assert!(filter.matches(&typed("a.received")));
        assert!(!filter.matches(&typed("a.delivered")));
        // No property: unknown in SQL, so no match.
        assert!(!filter.matches(&OutgoingMessage::new("m", b"{}".to_vec())));
        assert_eq!(filter.to_sql(), "[type] NOT IN ('a.delivered', 'it''s')");
    }
}
