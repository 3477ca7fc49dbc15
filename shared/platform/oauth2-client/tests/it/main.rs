//! The client against a fake token endpoint on 127.0.0.1.

mod caching;
mod client_credentials;
mod errors;
mod fake;
mod refresh;
mod secrets;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}
