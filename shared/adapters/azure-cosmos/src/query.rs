//! The port's `Query` as one parameterized Cosmos SQL query, paged by keyset.
//!
//! ```sql
//! SELECT TOP <limit+1> * FROM c
//! WHERE c.tenantId = @pk                                  -- partition-scoped queries only
//!   AND c.body.kind = @f0 AND …                           -- the filters, values as parameters
//!   AND (NOT IS_DEFINED(c.expiresAt) OR c.expiresAt > @now)  -- TTL, to the millisecond
//!   AND c.sortKey > @after                                -- the continuation, if any
//! ORDER BY c.sortKey
//! ```
//!
//! Field names are checked with `Query::valid_field` (plain identifiers), so nothing the
//! caller passes becomes query syntax; every value is a parameter.
//!
//! Paging is by keyset rather than by Cosmos continuation tokens: one extra row (`TOP
//! limit+1`) tells exactly whether another page exists, so the last page never carries a
//! token (as in the embedded store), and a token stays valid while the outbox publisher
//! deletes the rows it has just read. The token is ours: `base64url(JSON {v, q, after})`,
//! where `q` fingerprints the container, partition and filters, so a token can only resume
//! the query that issued it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ports::{PortError, Query, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::item::{BODY_FIELD, EXPIRES_AT_FIELD, PARTITION_FIELD, SORT_KEY_FIELD};

/// Page size when the query asks for 0, as in the embedded store.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page served, as in the embedded store.
pub const MAX_PAGE: usize = 1000;

/// A query ready for the SDK: text, parameters, and how many rows make a page.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) parameters: Vec<(String, Value)>,
    /// Rows to return; one more is fetched to learn whether another page exists.
    pub(crate) page: usize,
    /// What a continuation token of this query must carry.
    pub(crate) fingerprint: String,
}

pub(crate) fn page_size(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

pub(crate) fn build(container: &str, query: &Query, now_ms: i64) -> Result<Sql> {
    let page = page_size(query.limit);
    let fingerprint = fingerprint(container, query)?;
    let mut text = format!("SELECT TOP {} * FROM c WHERE ", page + 1);
    let mut clauses = Vec::new();
    let mut parameters = Vec::new();
    if let Some(partition) = &query.partition {
        // Redundant with the partition scope in real Cosmos, and cheap: the stand-in needs
        // the partition key in the query text (it ignores the scope header for queries).
        clauses.push(format!("c.{PARTITION_FIELD} = @pk"));
        parameters.push(("@pk".to_owned(), Value::String(partition.clone())));
    }
    for (i, (field, value)) in query.filters.iter().enumerate() {
        if !Query::valid_field(field) {
            return Err(PortError::Invalid(format!(
                "{field:?} is not a valid filter field"
            )));
        }
        match value {
            // As in the embedded store: null matches a null or a missing field.
            Value::Null => clauses.push(format!(
                "(NOT IS_DEFINED(c.{BODY_FIELD}.{field}) OR IS_NULL(c.{BODY_FIELD}.{field}))"
            )),
            Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                let name = format!("@f{i}");
                clauses.push(format!("c.{BODY_FIELD}.{field} = {name}"));
                parameters.push((name, value.clone()));
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(PortError::Invalid(
                    "filters compare scalar fields only".into(),
                ));
            }
        }
    }
    clauses.push(format!(
        "(NOT IS_DEFINED(c.{EXPIRES_AT_FIELD}) OR c.{EXPIRES_AT_FIELD} > @now)"
    ));
    parameters.push(("@now".to_owned(), Value::from(now_ms)));
    if let Some(token) = &query.continuation {
        let after = decode_continuation(token, &fingerprint)?;
        clauses.push(format!("c.{SORT_KEY_FIELD} > @after"));
        parameters.push(("@after".to_owned(), Value::String(after)));
    }
    text.push_str(&clauses.join(" AND "));
    text.push_str(&format!(" ORDER BY c.{SORT_KEY_FIELD}"));
    Ok(Sql {
        text,
        parameters,
        page,
        fingerprint,
    })
}

/// A stable digest of what a page depends on (not the limit: a caller may change its page
/// size between pages, and keyset paging stays correct).
fn fingerprint(container: &str, query: &Query) -> Result<String> {
    let shape = serde_json::to_vec(&(container, &query.partition, &query.filters))
        .map_err(|e| PortError::Invalid(format!("the query does not serialise: {e}")))?;
    let digest = Sha256::digest(&shape);
    Ok(URL_SAFE_NO_PAD.encode(&digest[..12]))
}

#[derive(Serialize, Deserialize)]
struct Token {
    v: u8,
    q: String,
    after: String,
}

pub(crate) fn encode_continuation(fingerprint: &str, after: &str) -> String {
    let token = Token {
        v: 1,
        q: fingerprint.to_owned(),
        after: after.to_owned(),
    };
    // Serialising two strings and a number cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continuation(token: &str, fingerprint: &str) -> Result<String> {
    let malformed = || PortError::Invalid("the continuation token is malformed".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if token.v != 1 {
        return Err(malformed());
    }
    if token.q != fingerprint {
        return Err(PortError::Invalid(
            "the continuation token belongs to another query".into(),
        ));
    }
    Ok(token.after)
}

#[cfg(test)]
mod tests;
