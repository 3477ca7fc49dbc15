//! Functions declared in Rust; each `function.json` is generated from the declaration, so
//! the bindings the host reads and the code that serves them cannot disagree.

use serde_json::{Value, json};

use crate::route::RouteTemplate;

/// Who may call an HTTP function without a bearer token check by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthLevel {
    /// The platform authenticates every request itself (bearer tokens, webhook signatures).
    Anonymous,
    Function,
    Admin,
}

impl AuthLevel {
    fn as_str(self) -> &'static str {
        match self {
            AuthLevel::Anonymous => "anonymous",
            AuthLevel::Function => "function",
            AuthLevel::Admin => "admin",
        }
    }
}

/// Where a Service Bus trigger reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceBusSource {
    Queue(String),
    Subscription { topic: String, subscription: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// Forwarded HTTP: the handler receives the original request at `/api/<route>`.
    Http {
        route: String,
        methods: Vec<String>,
        auth_level: AuthLevel,
    },
    /// Always declared `"dataType": "binary"`: exact bytes, and no body keys merged into
    /// `Metadata` (where they could overwrite `MessageId`).
    ServiceBus {
        source: ServiceBusSource,
        connection: String,
        sessions: bool,
    },
    /// A six-field NCRONTAB expression or `%Setting%`.
    Timer {
        schedule: String,
        run_on_startup: bool,
        use_monitor: bool,
    },
}

/// An output binding of a non-HTTP function.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputBinding {
    pub name: String,
    pub binding_type: String,
    /// Extra properties (`queueName`, `connection`, `path`, ...).
    pub properties: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDecl {
    pub name: String,
    pub trigger: Trigger,
    /// Binding name of the trigger (`req`, `msg`, `timer`).
    pub trigger_binding: String,
    pub outputs: Vec<OutputBinding>,
    /// For HTTP functions: what the app's OpenAPI document says of the operation beyond
    /// what the declaration gives (a summary, the request body's schema, `security: []` for
    /// a route authenticated otherwise). Merged into the generated operation object.
    pub api: Value,
}

/// The connection setting name Service Bus triggers use.
pub const SERVICE_BUS_CONNECTION: &str = "ServiceBusConnection";

impl FunctionDecl {
    pub fn http(name: &str, route: &str, methods: &[&str]) -> Self {
        FunctionDecl {
            name: name.to_owned(),
            trigger: Trigger::Http {
                route: route.to_owned(),
                methods: methods.iter().map(|m| m.to_ascii_lowercase()).collect(),
                auth_level: AuthLevel::Anonymous,
            },
            trigger_binding: "req".into(),
            outputs: vec![],
            api: Value::Null,
        }
    }

    /// Says more of this HTTP function in the app's OpenAPI document: `fragment` (an
    /// operation object's members) is merged into the generated operation.
    pub fn api(mut self, fragment: Value) -> Self {
        crate::openapi::merge(&mut self.api, fragment);
        self
    }

    /// A route that takes no bearer token (a vendor's webhook, authenticated by its
    /// signature; the API's own description).
    pub fn public(self) -> Self {
        self.api(json!({"security": []}))
    }

    pub fn queue(name: &str, queue: &str) -> Self {
        Self::service_bus(name, ServiceBusSource::Queue(queue.to_owned()), false)
    }

    pub fn subscription(name: &str, topic: &str, subscription: &str) -> Self {
        Self::service_bus(
            name,
            ServiceBusSource::Subscription {
                topic: topic.to_owned(),
                subscription: subscription.to_owned(),
            },
            false,
        )
    }

    pub fn service_bus(name: &str, source: ServiceBusSource, sessions: bool) -> Self {
        FunctionDecl {
            name: name.to_owned(),
            trigger: Trigger::ServiceBus {
                source,
                connection: SERVICE_BUS_CONNECTION.into(),
                sessions,
            },
            trigger_binding: "msg".into(),
            api: Value::Null,
            outputs: vec![],
        }
    }

    pub fn timer(name: &str, schedule: &str) -> Self {
        FunctionDecl {
            name: name.to_owned(),
            trigger: Trigger::Timer {
                schedule: schedule.to_owned(),
                run_on_startup: false,
                use_monitor: true,
            },
            trigger_binding: "timer".into(),
            api: Value::Null,
            outputs: vec![],
        }
    }

    pub fn with_auth_level(mut self, level: AuthLevel) -> Self {
        if let Trigger::Http { auth_level, .. } = &mut self.trigger {
            *auth_level = level;
        }
        self
    }

    pub fn is_http(&self) -> bool {
        matches!(self.trigger, Trigger::Http { .. })
    }

    /// The generated `function.json`.
    pub fn function_json(&self) -> Value {
        let trigger = match &self.trigger {
            Trigger::Http {
                route,
                methods,
                auth_level,
            } => json!({
                "type": "httpTrigger", "direction": "in", "name": self.trigger_binding,
                "authLevel": auth_level.as_str(), "methods": methods, "route": route,
            }),
            Trigger::ServiceBus {
                source,
                connection,
                sessions,
            } => {
                let mut b = json!({
                    "type": "serviceBusTrigger", "direction": "in", "name": self.trigger_binding,
                    "connection": connection, "isSessionsEnabled": sessions,
                    "autoCompleteMessages": true, "cardinality": "one", "dataType": "binary",
                });
                match source {
                    ServiceBusSource::Queue(q) => b["queueName"] = json!(q),
                    ServiceBusSource::Subscription {
                        topic,
                        subscription,
                    } => {
                        b["topicName"] = json!(topic);
                        b["subscriptionName"] = json!(subscription);
                    }
                }
                b
            }
            Trigger::Timer {
                schedule,
                run_on_startup,
                use_monitor,
            } => json!({
                "type": "timerTrigger", "direction": "in", "name": self.trigger_binding,
                "schedule": schedule, "runOnStartup": run_on_startup, "useMonitor": use_monitor,
            }),
        };
        let mut bindings = vec![trigger];
        if self.is_http() {
            // Exactly one httpTrigger in and one http out: the host forwards such functions.
            bindings.push(json!({ "type": "http", "direction": "out", "name": "res" }));
        }
        for o in &self.outputs {
            let mut b = json!({ "type": o.binding_type, "direction": "out", "name": o.name });
            for (k, v) in &o.properties {
                b[k] = v.clone();
            }
            // Text outputs are marked binary so the host never base64-decodes them.
            if b.get("dataType").is_none() {
                b["dataType"] = json!("binary");
            }
            bindings.push(b);
        }
        json!({ "bindings": bindings })
    }
}

/// A declaration the host would refuse, or that could never be served correctly.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeclarationError {
    #[error(
        "function name {0:?} is invalid: it must match ^[a-z][a-z0-9_-]{{0,127}}$ (any case) and not be \"host\""
    )]
    FunctionName(String),
    #[error(
        "binding name {binding:?} of function {function:?} is invalid: letters and digits only, starting with a letter, or \"$return\""
    )]
    BindingName { function: String, binding: String },
    #[error("function names must be unique (case-insensitively): {0:?} appears twice")]
    Duplicate(String),
    #[error("function {function:?} has an invalid route: {reason}")]
    Route { function: String, reason: String },
    #[error("HTTP function {0:?} has output bindings: it would no longer be forwarded")]
    HttpWithOutputs(String),
    #[error("function {function:?} has an invalid schedule: {reason}")]
    Schedule { function: String, reason: String },
    #[error("function {function:?} needs a {what}")]
    Missing {
        function: String,
        what: &'static str,
    },
    #[error("function name {0:?} collides with the handler's own paths")]
    Reserved(String),
}

/// The host's function-name rule.
pub fn valid_function_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        && !name.eq_ignore_ascii_case("host")
}

/// The host's binding-name rule: no `_` or `-`.
pub fn valid_binding_name(name: &str) -> bool {
    if name == "$return" {
        return true;
    }
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphabetic()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// Checks a set of declarations against the host's rules and ours.
pub fn validate(functions: &[FunctionDecl]) -> Result<(), DeclarationError> {
    let mut seen = std::collections::HashSet::new();
    for f in functions {
        if !valid_function_name(&f.name) {
            return Err(DeclarationError::FunctionName(f.name.clone()));
        }
        // The forwarded requests arrive under `/api/...`: a function named `api` would
        // collide with them.
        if f.name.eq_ignore_ascii_case("api") {
            return Err(DeclarationError::Reserved(f.name.clone()));
        }
        if !seen.insert(f.name.to_ascii_lowercase()) {
            return Err(DeclarationError::Duplicate(f.name.clone()));
        }
        for b in std::iter::once(&f.trigger_binding).chain(f.outputs.iter().map(|o| &o.name)) {
            if !valid_binding_name(b) {
                return Err(DeclarationError::BindingName {
                    function: f.name.clone(),
                    binding: b.clone(),
                });
            }
        }
        match &f.trigger {
            Trigger::Http { route, .. } => {
                if !f.outputs.is_empty() {
                    return Err(DeclarationError::HttpWithOutputs(f.name.clone()));
                }
                RouteTemplate::parse(route).map_err(|reason| DeclarationError::Route {
                    function: f.name.clone(),
                    reason,
                })?;
            }
            Trigger::ServiceBus {
                source, connection, ..
            } => {
                let empty = match source {
                    ServiceBusSource::Queue(q) => q.is_empty(),
                    ServiceBusSource::Subscription {
                        topic,
                        subscription,
                    } => topic.is_empty() || subscription.is_empty(),
                };
                if empty || connection.is_empty() {
                    return Err(DeclarationError::Missing {
                        function: f.name.clone(),
                        what: "queue or topic/subscription and a connection",
                    });
                }
            }
            Trigger::Timer { schedule, .. } => {
                // `%Setting%` is resolved at start-up; a literal must parse now.
                let is_setting =
                    schedule.len() > 2 && schedule.starts_with('%') && schedule.ends_with('%');
                if !is_setting {
                    crate::ncrontab::Schedule::parse(schedule).map_err(|e| {
                        DeclarationError::Schedule {
                            function: f.name.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                }
            }
        }
    }
    Ok(())
}
