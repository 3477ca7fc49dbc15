//! The usage ledger and the routes over it and over the quotas.
//!
//! Every model call leaves one usage entry, written in the same batch as its run (so an
//! entry exists exactly when its run does): tenant, subject, model, connection, the
//! fallback chain, tokens in, out and cached, cost and the price table's version, latency,
//! time to first byte, trace id. `GET /api/integrations/usage` sums the entries; the
//! quotas settle with the same numbers the entry holds.
//!
//! - `GET /api/integrations/usage?from=YYYY-MM-DD&to=YYYY-MM-DD&groupBy=model|subject|day`
//!   (any token, its own tenant; UTC days, both ends included, at most 92 days; default
//!   today).
//! - `GET /api/integrations/limits` (any token, its own tenant's limits; `{}` when none).
//! - `PUT /api/integrations/limits/{tenantId}` (the operator role): replaces a tenant's
//!   limits ([`crate::quota::Limits`]).

use std::collections::BTreeMap;
use std::time::Duration;

use api_kit::{ApiError, Caller, JsonBody, OPERATOR_ROLE, QueryParams};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, put};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{IntegrationConnection, RunId, TenantId};
use functions_runtime::FunctionDecl;
use ports::{Query, WriteOp};
use serde_json::{Value, json};

use crate::quota::{Limits, Prices, Tokens};
use crate::routes::Gateway;

/// One call's usage entry, as [`crate::routes`] records it.
pub struct Entry<'a> {
    pub run_id: RunId,
    pub operation: &'static str,
    pub subject: &'a str,
    pub model: &'a str,
    pub connection: &'a IntegrationConnection,
    pub succeeded: bool,
    pub tokens: Tokens,
    pub cost_micros: Option<u64>,
    pub prices: Option<&'a Prices>,
    pub latency: Duration,
    pub first_byte: Duration,
    pub trace_id: String,
    pub tried: &'a [String],
    pub at: DateTime<Utc>,
}

/// The entries' `kind`, and the day field the usage route filters on.
const KIND: &str = "modelUsage";

impl Entry<'_> {
    /// The entry's write (`None` only if it cannot be serialized, which it always can).
    pub fn write(self) -> Option<WriteOp> {
        let day = self.at.format("%Y-%m-%d").to_string();
        let body = json!({
            "kind": KIND,
            "day": day,
            "at": self.at,
            "runId": self.run_id.to_string(),
            "operation": self.operation,
            "subject": self.subject,
            "model": self.model,
            "connectionId": self.connection.id().to_string(),
            "providerKey": self.connection.provider_key().as_str(),
            "status": if self.succeeded { "succeeded" } else { "failed" },
            "tokensIn": self.tokens.input,
            "tokensOut": self.tokens.output,
            "tokensCached": self.tokens.cached,
            "costMicros": self.cost_micros,
            "currency": self.prices.map(|p| p.currency.as_str()),
            "pricesVersion": self.prices.map(|p| p.version.as_str()),
            "latencyMs": self.latency.as_secs_f64() * 1e3,
            "firstByteMs": self.first_byte.as_secs_f64() * 1e3,
            "traceId": self.trace_id,
            "fallbackFrom": self.tried,
        });
        Some(WriteOp::create(
            format!("usage:{}:{}", self.at.format("%Y%m%d"), self.run_id),
            body,
        ))
    }
}

/// The routes, for [`crate::routes`].
pub(crate) fn routes(state: Gateway) -> Vec<(FunctionDecl, MethodRouter)> {
    vec![
        (
            FunctionDecl::http("ModelUsage", "integrations/usage", &["get"]).api(json!({
                "summary": "The tenant's model usage between two UTC days, grouped by model, subject or day"
            })),
            get(usage).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("ModelLimits", "integrations/limits", &["get"])
                .api(json!({"summary": "The caller's tenant's model limits ({} when none)"})),
            get(own_limits).with_state(state.clone()),
        ),
        (
            FunctionDecl::http("SetModelLimits", "integrations/limits/{tenantId}", &["put"])
                .api(json!({"summary": "Replaces a tenant's model limits (operator role)"})),
            put(set_limits).with_state(state),
        ),
    ]
}

async fn own_limits(State(gateway): State<Gateway>, caller: Caller) -> Result<Response, ApiError> {
    let limits = gateway
        .quotas
        .limits(caller.tenant_id())
        .await
        .map_err(|e| ApiError::from_port(e, "limits"))?;
    Ok(match limits {
        Some(l) => Json(&*l).into_response(),
        None => Json(json!({})).into_response(),
    })
}

async fn set_limits(
    State(gateway): State<Gateway>,
    caller: Caller,
    Path(tenant): Path<String>,
    JsonBody(limits): JsonBody<Limits>,
) -> Result<Response, ApiError> {
    caller.require(OPERATOR_ROLE)?;
    let tenant = TenantId::parse_tenant(&tenant)
        .map_err(|_| ApiError::bad_request("invalid_tenant", "not a tenant id"))?;
    limits
        .check()
        .map_err(|(field, why)| ApiError::InvalidField {
            code: "invalid_limits",
            detail: format!("{field}: {why}"),
            pointer: format!("/{}", field.replace('.', "/")),
        })?;
    gateway
        .quotas
        .set_limits(tenant.as_str(), limits.clone())
        .await
        .map_err(|e| ApiError::from_port(e, "limits"))?;
    Ok(Json(limits).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UsageQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    group_by: Option<GroupBy>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum GroupBy {
    Model,
    Subject,
    Day,
}

impl GroupBy {
    fn field(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Subject => "subject",
            GroupBy::Day => "day",
        }
    }
}

/// The longest span the usage route sums.
const MAX_DAYS: i64 = 92;

/// Sums of a set of entries.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    requests: u64,
    failed: u64,
    tokens_in: u64,
    tokens_out: u64,
    tokens_cached: u64,
    cost_micros: u64,
}

impl Sums {
    fn add(&mut self, e: &Value) {
        let n = |f: &str| e[f].as_u64().unwrap_or(0);
        self.requests += 1;
        self.failed += u64::from(e["status"] == "failed");
        self.tokens_in += n("tokensIn");
        self.tokens_out += n("tokensOut");
        self.tokens_cached += n("tokensCached");
        self.cost_micros += n("costMicros");
    }

    fn json(&self) -> Value {
        json!({"requests": self.requests, "failed": self.failed,
               "tokensIn": self.tokens_in, "tokensOut": self.tokens_out,
               "tokensCached": self.tokens_cached, "costMicros": self.cost_micros,
               "cost": self.cost_micros as f64 / 1e6})
    }
}

async fn usage(
    State(gateway): State<Gateway>,
    caller: Caller,
    QueryParams(q): QueryParams<UsageQuery>,
) -> Result<Response, ApiError> {
    let today = Utc::now().date_naive();
    let from = q.from.unwrap_or(today);
    let to = q.to.unwrap_or(today);
    if to < from {
        return Err(ApiError::bad_request("invalid_query", "to is before from"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_DAYS} days at a time"),
        ));
    }
    let group_by = q.group_by.unwrap_or(GroupBy::Model);
    let docs = &gateway.direct.ctx().documents;
    let mut totals = Sums::default();
    let mut groups: BTreeMap<String, Sums> = BTreeMap::new();
    let mut currencies = std::collections::BTreeSet::new();
    let mut day = from;
    while day <= to {
        let mut continuation = None;
        loop {
            let page = docs
                .query(
                    gateway.direct.slug(),
                    &Query::partition(caller.tenant_id())
                        .filter("kind", KIND)
                        .filter("day", day.format("%Y-%m-%d").to_string())
                        .limit(1000)
                        .after(continuation),
                )
                .await
                .map_err(|e| ApiError::from_port(e, "usage"))?;
            for doc in &page.documents {
                let e = &doc.body;
                totals.add(e);
                if let Some(c) = e["currency"].as_str() {
                    currencies.insert(c.to_owned());
                }
                let key = e[group_by.field()].as_str().unwrap_or_default().to_owned();
                groups.entry(key).or_default().add(e);
            }
            continuation = page.continuation;
            if continuation.is_none() {
                break;
            }
        }
        day = match day.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    Ok(Json(json!({
        "from": from, "to": to, "groupBy": group_by.field(),
        // Costs are summed as they were priced; more than one currency means the price
        // table changed currency within the span.
        "currencies": currencies,
        "totals": totals.json(),
        "groups": groups.iter().map(|(k, s)| {
            let mut g = s.json();
            g["key"] = json!(k);
            g
        }).collect::<Vec<_>>(),
    }))
    .into_response())
}
