//! The port's contract, the same suite the embedded store passes.

use std::sync::Arc;

use crate::standin::StandIn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_document_store_contract() {
    let standin = StandIn::start().expect("start the stand-in");
    let store = standin.store(&["contract"]).await;
    ports::conformance::document::document_store_contract(Arc::new(store)).await;
}
