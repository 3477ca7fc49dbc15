//! `access_token()` on a cache hit: `cargo bench -p oauth2-client --bench token`.

use axum::Router;
use axum::routing::post;
use divan::{Bencher, black_box};
use oauth2_client::{ClientConfig, Grant, TokenClient};
use secrecy::SecretString;

fn main() {
    divan::main();
}

#[divan::bench]
fn access_token_cache_hit(bencher: Bencher<'_, '_>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let app = Router::new().route(
            "/token",
            post(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"access_token":"at","token_type":"Bearer","expires_in":3600}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = ClientConfig::new(
            format!("http://{address}/token").parse().unwrap(),
            "bench",
            Grant::ClientCredentials,
        )
        .with_secret(SecretString::from("secret"));
        let client = TokenClient::new(reqwest::Client::new(), config);
        client.access_token().await.unwrap();
        client
    });
    bencher.bench_local(|| black_box(rt.block_on(client.access_token())).unwrap());
}
