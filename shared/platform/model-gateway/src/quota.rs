//! Quotas that hold exactly across instances.
//!
//! A tenant's [`Limits`] (requests and tokens per minute for the tenant, per model and per
//! subject of the token; spend per UTC day and calendar month, priced by the limits' price
//! table) are counted by meters: one per (limit, window). A meter's document in the store
//! (the app's container, the tenant's partition) says how much of the window's limit the
//! instances have **leased**; an instance leases a slice with an ETag compare-and-swap and
//! then admits requests from it in memory, so the hot path touches the store only when a
//! slice runs out. The leases of all instances never add up to more than the limit, so no
//! instance can admit past it, however many there are (Function App instances share the
//! store as they share Cosmos DB).
//!
//! A request reserves its estimated cost up front (one request; the prompt's estimated
//! tokens plus its `max_tokens`, or the limits' default cap; their price) and settles with
//! what the upstream reports at the end: the unused part goes back to the instance's slice,
//! an overrun is leased truthfully even past the limit (the next requests are refused
//! instead). A slice left unused when its window ends is lost: the quota errs on the side of
//! refusing, never of admitting.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use ports::{DocumentStore, PortError, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Requests and tokens per minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// The price of a model, in currency units per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Cached prompt tokens (`usage.prompt_tokens_details.cached_tokens`); the input price
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_million: Option<f64>,
}

/// A versioned price table: every run records the version it was priced with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prices {
    pub version: String,
    /// ISO 4217 (`USD`).
    pub currency: String,
    pub models: BTreeMap<String, Price>,
}

/// A tenant's limits on one model app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// For the whole tenant.
    #[serde(flatten)]
    pub tenant: Rate,
    /// Per model name asked for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Rate>,
    /// Per subject of the caller's token (an agent, a user).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, Rate>,
    /// Spend per UTC day and per calendar month, in the price table's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_per_day: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_per_month: Option<f64>,
    /// What a chat without `max_tokens` reserves for its answer (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<Prices>,
}

/// What a reserve for an answer without `max_tokens` is, unless the limits say otherwise.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
const MAX_ENTRIES: usize = 1000;

impl Limits {
    /// The rules a limits document must follow: positive whole rates, positive finite
    /// spends (only with a price table), prices finite and not negative, a version and a
    /// currency code. Answers the field at fault and why.
    pub fn check(&self) -> Result<(), (String, &'static str)> {
        let rate = |at: String, r: &Rate| {
            for (field, v) in [
                ("requestsPerMinute", r.requests_per_minute),
                ("tokensPerMinute", r.tokens_per_minute),
            ] {
                if v == Some(0) {
                    return Err((format!("{at}{field}"), "must be at least 1"));
                }
            }
            Ok(())
        };
        rate(String::new(), &self.tenant)?;
        for (scope, map) in [("models", &self.models), ("subjects", &self.subjects)] {
            if map.len() > MAX_ENTRIES {
                return Err((scope.into(), "at most 1000 entries"));
            }
            for (name, r) in map {
                if name.is_empty() || name.len() > 256 {
                    return Err((scope.into(), "names are 1 to 256 characters"));
                }
                rate(format!("{scope}.{name}."), r)?;
            }
        }
        for (field, v) in [
            ("spendPerDay", self.spend_per_day),
            ("spendPerMonth", self.spend_per_month),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0 && v < 1e12) {
                    return Err((field.into(), "must be a positive amount"));
                }
                if self.prices.is_none() {
                    return Err((field.into(), "a spend limit needs a price table (prices)"));
                }
            }
        }
        if self.default_max_tokens == Some(0) {
            return Err(("defaultMaxTokens".into(), "must be at least 1"));
        }
        if let Some(p) = &self.prices {
            if p.version.is_empty() || p.version.len() > 64 {
                return Err(("prices.version".into(), "1 to 64 characters"));
            }
            if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err((
                    "prices.currency".into(),
                    "an ISO 4217 code of three capital letters",
                ));
            }
            if p.models.len() > MAX_ENTRIES {
                return Err(("prices.models".into(), "at most 1000 entries"));
            }
            for (model, price) in &p.models {
                for v in [
                    Some(price.input_per_million),
                    Some(price.output_per_million),
                    price.cached_input_per_million,
                ]
                .into_iter()
                .flatten()
                {
                    if !(v.is_finite() && (0.0..1e9).contains(&v)) {
                        return Err((
                            format!("prices.models.{model}"),
                            "prices are amounts per million tokens, not negative",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The cost of `usage` for `model` in millionths of the currency (a price per million
    /// tokens is micro-units per token); `None` without a price for it.
    pub fn cost_micros(&self, model: &str, usage: &Tokens) -> Option<u64> {
        let price = self.prices.as_ref()?.models.get(model)?;
        let cached = usage.cached.min(usage.input);
        let micros = (usage.input - cached) as f64 * price.input_per_million
            + cached as f64
                * price
                    .cached_input_per_million
                    .unwrap_or(price.input_per_million)
            + usage.output as f64 * price.output_per_million;
        Some(micros.ceil() as u64)
    }
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    /// Of `input`, those the upstream served from its prompt cache.
    pub cached: u64,
}

impl Tokens {
    pub fn total(&self) -> u64 {
        self.input + self.output
    }

    /// The usage of an OpenAI answer: a chat completion's or embeddings'
    /// (`usage.prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`)
    /// or a Responses API response's (`input_tokens`, `output_tokens`,
    /// `input_tokens_details.cached_tokens`).
    pub fn of(answer: &Value) -> Tokens {
        let u = &answer["usage"];
        let n = |a: &str, b: &str| u[a].as_u64().or_else(|| u[b].as_u64()).unwrap_or(0);
        Tokens {
            input: n("prompt_tokens", "input_tokens"),
            output: n("completion_tokens", "output_tokens"),
            cached: u["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .or_else(|| u["input_tokens_details"]["cached_tokens"].as_u64())
                .unwrap_or(0),
        }
    }

    /// What a request may use, estimated before it goes: its text at one token per three
    /// bytes (rounded up; tokenizers average about four for English, so this leans high)
    /// plus four per message, and for a chat its `max_completion_tokens` or `max_tokens`,
    /// for a response its `max_output_tokens` (else `default_max`).
    pub fn estimate(request: &Value, shape: Shape, default_max: u64) -> Tokens {
        fn text_bytes(v: &Value) -> u64 {
            match v {
                Value::String(s) => s.len() as u64,
                Value::Array(items) => items.iter().map(text_bytes).sum(),
                Value::Object(o) => o.values().map(text_bytes).sum(),
                _ => 0,
            }
        }
        let (input, output) = match shape {
            Shape::Chat => {
                let messages = request["messages"].as_array().map_or(0, Vec::len) as u64;
                let max = request["max_completion_tokens"]
                    .as_u64()
                    .or_else(|| request["max_tokens"].as_u64())
                    .unwrap_or(default_max);
                (
                    text_bytes(&request["messages"]).div_ceil(3) + 4 * messages + 3,
                    max,
                )
            }
            Shape::Response => {
                let items = request["input"].as_array().map_or(1, Vec::len) as u64;
                let text = text_bytes(&request["input"]) + text_bytes(&request["instructions"]);
                (
                    text.div_ceil(3) + 4 * items + 3,
                    request["max_output_tokens"].as_u64().unwrap_or(default_max),
                )
            }
            Shape::Embeddings => (text_bytes(&request["input"]).div_ceil(3) + 1, 0),
        };
        Tokens {
            input,
            output,
            cached: 0,
        }
    }
}

/// What kind of request an estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Chat,
    Embeddings,
    Response,
}

/// What a request asks of the quotas.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub subject: &'a str,
    pub model: &'a str,
    pub tokens: Tokens,
}

/// Why a request was refused: the limit, when its window resets, and whether it is a
/// spend budget (no wait within the minute cures it).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `requests` or `tokens` (per minute), or `spend` (per day or month).
    pub unit: &'static str,
    /// Which limit, for the message (`the tenant's`, `model gpt-4o's`, …).
    pub scope: String,
    pub limit: u64,
    pub reset_in: Duration,
}

/// One meter: a limit counted over a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Meter {
    tenant: String,
    /// `tenant.rpm`, `model.<name>.tpm`, `subject.<name>.rpm`, `spend.day`, `spend.month`.
    name: String,
    window: String,
}

impl Meter {
    /// Its document id: the name is hashed (names are model names and token subjects).
    fn doc_id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("quota:{h:016x}:{}", self.window)
    }
}

/// What one need asks of one meter.
#[derive(Debug, Clone)]
struct Need {
    meter: Meter,
    amount: u64,
    limit: u64,
    unit: &'static str,
    scope: String,
    reset_in: Duration,
    ttl: Duration,
}

/// What an admitted request took, to settle at its end.
#[derive(Debug, Default)]
pub struct Admission {
    /// Token meters (settled with the actual tokens) and spend meters (with the actual
    /// cost), with what was reserved on each.
    tokens: Vec<(Need, u64)>,
    spend: Vec<(Need, u64)>,
    pub reserved: Tokens,
    pub reserved_cost_micros: u64,
}

/// The quotas of one app instance: its slices in memory, the store for leases.
pub struct Quotas {
    docs: Arc<dyn DocumentStore>,
    container: &'static str,
    /// Per meter: what this instance leased and has not admitted yet.
    slices: Mutex<HashMap<Meter, u64>>,
    /// One lease at a time per meter in this instance.
    leasing: Mutex<HashMap<Meter, Arc<tokio::sync::Mutex<()>>>>,
    limits: Mutex<LimitsCache>,
}

/// Per tenant: when its limits were read, and what they were.
type LimitsCache = HashMap<String, (Instant, Option<Arc<Limits>>)>;

/// How long an instance keeps a tenant's limits before reading them again.
const LIMITS_TTL: Duration = Duration::from_secs(5);
/// The limits document's id.
pub const LIMITS_DOC: &str = "model-limits";
/// Lease attempts before a contended meter gives up (each one lost to another instance's
/// write, which made progress).
const LEASE_ATTEMPTS: usize = 64;

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl Quotas {
    pub fn new(docs: Arc<dyn DocumentStore>, container: &'static str) -> Self {
        Quotas {
            docs,
            container,
            slices: Mutex::new(HashMap::new()),
            leasing: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's limits (`None`: none set), read at most once per five seconds.
    pub async fn limits(&self, tenant: &str) -> Result<Option<Arc<Limits>>, PortError> {
        if let Some((at, limits)) = self.lock_limits().get(tenant)
            && at.elapsed() < LIMITS_TTL
        {
            return Ok(limits.clone());
        }
        let read = self.docs.read(self.container, tenant, LIMITS_DOC).await?;
        let limits = match read {
            Some(doc) => Some(Arc::new(doc.parse::<Limits>()?)),
            None => None,
        };
        self.lock_limits()
            .insert(tenant.to_owned(), (Instant::now(), limits.clone()));
        Ok(limits)
    }

    /// Replaces the tenant's limits (seen by this instance at once, by others within five
    /// seconds).
    pub async fn set_limits(&self, tenant: &str, limits: Limits) -> Result<(), PortError> {
        let body = serde_json::to_value(&limits).map_err(|e| PortError::Invalid(e.to_string()))?;
        self.docs
            .batch(
                self.container,
                tenant,
                vec![WriteOp::upsert(LIMITS_DOC, body)],
            )
            .await?;
        self.lock_limits()
            .insert(tenant.to_owned(), (Instant::now(), Some(Arc::new(limits))));
        Ok(())
    }

    fn lock_limits(&self) -> std::sync::MutexGuard<'_, LimitsCache> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a request under `limits`, or says which limit refuses it. Nothing is taken
    /// when it is refused.
    pub async fn admit(
        &self,
        tenant: &str,
        limits: &Limits,
        ask: &Ask<'_>,
        now: DateTime<Utc>,
    ) -> Result<Admission, Result<Refusal, PortError>> {
        self.prune(now);
        let reserved_cost = limits.cost_micros(ask.model, &ask.tokens).unwrap_or(0);
        let mut admission = Admission {
            reserved: ask.tokens,
            reserved_cost_micros: reserved_cost,
            ..Admission::default()
        };
        let mut taken: Vec<(Need, u64)> = Vec::new();
        for need in needs(tenant, limits, ask, reserved_cost, now) {
            if need.amount == 0 {
                continue;
            }
            match self.take(&need, false).await {
                Ok(()) => taken.push((need.clone(), need.amount)),
                Err(refused) => {
                    for (need, amount) in taken {
                        self.give_back(&need.meter, amount);
                    }
                    return Err(refused);
                }
            }
        }
        for (need, amount) in taken {
            match need.unit {
                "requests" => {}
                "tokens" => admission.tokens.push((need, amount)),
                _ => admission.spend.push((need, amount)),
            }
        }
        Ok(admission)
    }

    /// Settles an admitted request with what it really used: the unused reserve goes back to
    /// this instance's slices, an overrun is leased past the limit if need be.
    pub async fn settle(&self, admission: Admission, used: Tokens, cost_micros: u64) {
        let actual_tokens = used.total();
        for (need, reserved) in admission.tokens {
            self.settle_one(need, reserved, actual_tokens).await;
        }
        for (need, reserved) in admission.spend {
            self.settle_one(need, reserved, cost_micros).await;
        }
    }

    async fn settle_one(&self, need: Need, reserved: u64, actual: u64) {
        if actual <= reserved {
            self.give_back(&need.meter, reserved - actual);
            return;
        }
        let overrun = Need {
            amount: actual - reserved,
            ..need
        };
        if let Err(e) = self.take(&overrun, true).await {
            tracing::warn!(meter = %overrun.meter.name, error = ?e,
                "an overrun could not be counted against its quota");
        }
    }

    fn give_back(&self, meter: &Meter, amount: u64) {
        if amount > 0 {
            *self
                .slices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(meter.clone())
                .or_default() += amount;
        }
    }

    /// Takes `need.amount` from this instance's slice, leasing more from the store when it
    /// is short (`force`: past the limit, for an overrun already spent).
    async fn take(&self, need: &Need, force: bool) -> Result<(), Result<Refusal, PortError>> {
        loop {
            if self.take_local(&need.meter, need.amount) {
                return Ok(());
            }
            let gate = self
                .leasing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(need.meter.clone())
                .or_default()
                .clone();
            let _leasing = gate.lock().await;
            // Another request of this instance may have leased while this one waited.
            if self.take_local(&need.meter, need.amount) {
                return Ok(());
            }
            let have = self
                .slices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&need.meter)
                .copied()
                .unwrap_or(0);
            let short = need.amount.saturating_sub(have);
            let granted = self.lease(need, short, force).await?;
            self.give_back(&need.meter, granted);
        }
    }

    /// Forgets the slices of windows that are over (worth nothing now), once there are many.
    fn prune(&self, now: DateTime<Utc>) {
        let mut slices = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        if slices.len() < 10_000 {
            return;
        }
        let current = [
            format!("m{}", now.timestamp().div_euclid(60)),
            now.format("d%Y%m%d").to_string(),
            now.format("M%Y%m").to_string(),
        ];
        slices.retain(|m, v| *v > 0 && current.contains(&m.window));
    }

    fn take_local(&self, meter: &Meter, amount: u64) -> bool {
        let mut slices = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        match slices.get_mut(meter) {
            Some(have) if *have >= amount => {
                *have -= amount;
                true
            }
            _ => false,
        }
    }

    /// Leases at least `short` (and a little more, so that the next requests need no
    /// lease) of the meter's window from the store: a compare-and-swap on the meter's
    /// document. Refused when less than `short` is left (unless `force`).
    async fn lease(
        &self,
        need: &Need,
        short: u64,
        force: bool,
    ) -> Result<u64, Result<Refusal, PortError>> {
        let extra = (need.limit / 50).max(1);
        let id = need.meter.doc_id();
        let tenant = need.meter.tenant.as_str();
        for _ in 0..LEASE_ATTEMPTS {
            let current = self
                .docs
                .read(self.container, tenant, &id)
                .await
                .map_err(Err)?;
            let granted = current
                .as_ref()
                .and_then(|d| d.body["leased"].as_u64())
                .unwrap_or(0);
            let room = need.limit.saturating_sub(granted);
            let lease = if force {
                short
            } else if room < short {
                return Err(Ok(Refusal {
                    unit: need.unit,
                    scope: need.scope.clone(),
                    limit: need.limit,
                    reset_in: need.reset_in,
                }));
            } else {
                (short + extra).min(room)
            };
            let body = json!({"kind": "quotaLease", "meter": need.meter.name,
                              "window": need.meter.window, "limit": need.limit,
                              "leased": granted + lease});
            let op = match current {
                None => WriteOp::create(id.clone(), body),
                Some(doc) => WriteOp::replace(id.clone(), body, Some(doc.etag)),
            }
            .with_ttl(need.ttl);
            match self.docs.batch(self.container, tenant, vec![op]).await {
                Ok(_) => return Ok(lease),
                // Another instance leased first: read again.
                Err(PortError::PreconditionFailed | PortError::AlreadyExists) => {
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(Err(e)),
            }
        }
        // Every attempt lost to another instance's lease: the store is the bottleneck.
        Err(Err(PortError::Throttled {
            retry_after: Some(Duration::from_secs(1)),
        }))
    }
}

/// The meters a request counts against, with what it needs of each.
fn needs(
    tenant: &str,
    limits: &Limits,
    ask: &Ask<'_>,
    cost_micros: u64,
    now: DateTime<Utc>,
) -> Vec<Need> {
    let minute = now.timestamp().div_euclid(60);
    let minute_reset = Duration::from_secs((60 - now.timestamp().rem_euclid(60)) as u64);
    let meter = |name: String, window: String| Meter {
        tenant: tenant.to_owned(),
        name,
        window,
    };
    let mut out = Vec::new();
    let mut rate = |prefix: String, scope: String, r: &Rate| {
        for (unit, limit, amount) in [
            ("requests", r.requests_per_minute, 1),
            ("tokens", r.tokens_per_minute, ask.tokens.total()),
        ] {
            if let Some(limit) = limit {
                out.push(Need {
                    meter: meter(format!("{prefix}.{unit}"), format!("m{minute}")),
                    amount,
                    limit,
                    unit,
                    scope: scope.clone(),
                    reset_in: minute_reset,
                    ttl: Duration::from_secs(180),
                });
            }
        }
    };
    rate("tenant".into(), "the tenant's".into(), &limits.tenant);
    if let Some(r) = limits.models.get(ask.model) {
        rate(
            format!("model.{}", ask.model),
            format!("model {}'s", ask.model),
            r,
        );
    }
    if let Some(r) = limits.subjects.get(ask.subject) {
        rate(
            format!("subject.{}", ask.subject),
            format!("subject {}'s", ask.subject),
            r,
        );
    }
    let day_end = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .map_or(now, |d| d + chrono::TimeDelta::days(1));
    let month_end = {
        let (y, m) = if now.month() == 12 {
            (now.year() + 1, 1)
        } else {
            (now.year(), now.month() + 1)
        };
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .unwrap_or(now)
    };
    for (name, limit, window, end, ttl_days) in [
        (
            "spend.day",
            limits.spend_per_day,
            now.format("d%Y%m%d").to_string(),
            day_end,
            2,
        ),
        (
            "spend.month",
            limits.spend_per_month,
            now.format("M%Y%m").to_string(),
            month_end,
            33,
        ),
    ] {
        if let Some(limit) = limit {
            out.push(Need {
                meter: meter(name.into(), window),
                amount: cost_micros,
                limit: (limit * 1e6) as u64,
                unit: "spend",
                scope: if name == "spend.day" {
                    "the tenant's daily".into()
                } else {
                    "the tenant's monthly".into()
                },
                reset_in: (end - now).to_std().unwrap_or_default(),
                ttl: Duration::from_secs(ttl_days * 86_400),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
