//! Integration tests against the Cosmos DB stand-in (`@vercel/cosmosdb-server`, installed
//! from npm on first use and started per test; see `standin`).

mod adapter;
mod conformance;
mod settings;
mod standin;
