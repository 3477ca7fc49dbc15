//! Credential custody and the rotation saga, with a fake owning app.

use std::time::{Duration, Instant};

use ports::{BrokerReceiver as _, OutgoingMessage};
use serde_json::{Value, json};
use testkit::{TestPlatform, assert_problem};

use crate::support::{fake_sms_app, idle_sms_app, observe, platform, published};

const CREDENTIALS: &str = "/registry/api/integrations/credentials";

/// A provider `twilio` (category sms, so the `sms` app owns it) registered by an operator.
async fn with_provider(p: &TestPlatform) {
    let op = p.token("ops", &["operator"]);
    let provider = json!({"key": "twilio", "displayName": "Twilio", "category": "sms", "authScheme": "basic", "baseUrl": "https://api.twilio.com"});
    assert_eq!(
        p.post("/registry/api/integrations/providers", &op, provider)
            .await
            .status(),
        201
    );
}

async fn create(p: &TestPlatform, token: &str, key: &str, policy: Option<Value>) -> Value {
    let mut body = json!({"providerKey": "twilio", "kind": "apiKey", "secret": {"apiKey": key}});
    if let Some(policy) = policy {
        body["rotationPolicy"] = policy;
    }
    let r = p.post(CREDENTIALS, token, body).await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains(key), "the secret is never echoed");
    serde_json::from_str(&text).unwrap()
}

async fn rotate(p: &TestPlatform, token: &str, credential: &str, key: &str) -> String {
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            token,
            json!({"credentialId": credential, "secret": {"apiKey": key}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "testing");
    body["rotationId"].as_str().unwrap().to_owned()
}

/// Polls the rotation until it is decided.
async fn decided(p: &TestPlatform, token: &str, rotation: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r: Value = p
            .get(&format!("{CREDENTIALS}/rotations/{rotation}"), token)
            .await
            .json()
            .await
            .unwrap();
        if r["status"] != "testing" {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "rotation {rotation} was not decided in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn credential(p: &TestPlatform, token: &str, id: &str) -> Value {
    p.get(&format!("{CREDENTIALS}/{id}"), token)
        .await
        .json()
        .await
        .unwrap()
}

/// Every file the platform wrote, except the secret store's own (encrypted) ones.
fn scan_for(p: &TestPlatform, secrets: &[&str]) {
    let mut stack = vec![p.dir().join("data")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("secrets.") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for s in secrets {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "{name} holds the secret {s:?} in plaintext"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_created_in_custody_and_isolated_by_tenant() {
    let p = platform(&[idle_sms_app()], json!({})).await;
    with_provider(&p).await;
    let a = p.token("tenant-a", &[]);
    let b = p.token("tenant-b", &[]);
    let created = create(&p, &a, "sk-live-tenant-a-0001", None).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("cred_"));
    assert_eq!(created["status"], "active");
    assert!(
        created["current"]["version"].as_str().is_some(),
        "a reference: name and version"
    );

    assert_eq!(credential(&p, &a, id).await, created);
    assert_problem(
        p.get(&format!("{CREDENTIALS}/{id}"), &b).await,
        404,
        "not_found",
    )
    .await;
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &b,
            json!({"credentialId": id, "secret": {"apiKey": "x"}}),
        )
        .await;
    assert_problem(r, 404, "not_found").await;
    // A rotation is its tenant's too.
    let rotation = rotate(&p, &a, id, "sk-next-0002").await;
    assert_eq!(
        p.get(&format!("{CREDENTIALS}/rotations/{rotation}"), &a)
            .await
            .status(),
        200
    );
    assert_problem(
        p.get(&format!("{CREDENTIALS}/rotations/{rotation}"), &b)
            .await,
        404,
        "not_found",
    )
    .await;
    // While it runs, a second rotation is refused.
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &a,
            json!({"credentialId": id, "secret": {"apiKey": "sk-third"}}),
        )
        .await;
    assert_problem(r, 409, "conflict").await;

    // Bad input.
    let bad = [
        (
            json!({"providerKey": "twilio", "kind": "apiKey", "secret": {}}),
            "invalid_secret",
        ),
        (
            json!({"providerKey": "twilio", "kind": "apiKey", "secret": {"apiKey": "k", "other": "x"}}),
            "invalid_secret",
        ),
        (
            json!({"providerKey": "nope", "kind": "apiKey", "secret": {"apiKey": "k"}}),
            "unknown_provider",
        ),
        (
            json!({"providerKey": "twilio", "kind": "magic", "secret": {"apiKey": "k"}}),
            "invalid_body",
        ),
        (
            json!({"providerKey": "twilio", "kind": "apiKey", "secret": {"apiKey": "k"}, "connectionId": "x"}),
            "invalid_connection_id",
        ),
    ];
    for (body, code) in bad {
        assert_problem(p.post(CREDENTIALS, &a, body).await, 400, code).await;
    }
    assert_problem(
        p.post(
            &format!("{CREDENTIALS}/rotate"),
            &a,
            json!({"credentialId": id}),
        )
        .await,
        400,
        "secret_required",
    )
    .await;
    scan_for(&p, &["sk-live-tenant-a-0001", "sk-next-0002", "sk-third"]);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_retest_promotes_and_a_failing_one_keeps_the_old_secret() {
    let logs = testkit::capture_logs();
    let p = platform(&[fake_sms_app()], json!({})).await;
    with_provider(&p).await;
    let t = p.token("tenant-r", &[]);
    let created = create(&p, &t, "sk-original-7f3a", None).await;
    let id = created["id"].as_str().unwrap();
    let original = created["current"].clone();

    let rotation = rotate(&p, &t, id, "good-sk-rotated-91bc").await;
    let r = decided(&p, &t, &rotation).await;
    assert_eq!(
        (r["status"].as_str(), r["outcome"].as_str()),
        (Some("promoted"), Some("succeeded"))
    );
    let c = credential(&p, &t, id).await;
    assert_eq!(c["status"], "active");
    assert_eq!(
        c["previous"], original,
        "the old version is kept for calls in flight"
    );
    assert_ne!(c["current"], original);
    let promoted = c["current"].clone();

    let rotation = rotate(&p, &t, id, "bad-sk-refused-44de").await;
    let r = decided(&p, &t, &rotation).await;
    assert_eq!(
        (r["status"].as_str(), r["outcome"].as_str()),
        (Some("aborted"), Some("failed"))
    );
    assert_eq!(r["detail"], "the vendor answered 401");
    let c = credential(&p, &t, id).await;
    assert_eq!(
        c["current"], promoted,
        "a failed rotation keeps the current secret"
    );
    assert_eq!(c["status"], "active");
    // The refused version is withdrawn from custody.
    let pending = &r["pending"];
    let gone = p
        .runner
        .context
        .secrets
        .get(
            pending["name"].as_str().unwrap(),
            pending["version"].as_str(),
        )
        .await;
    assert!(matches!(gone, Err(ports::PortError::NotFound)));

    let events = published(&p, 3).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        vec![
            "connectsoft.integration.provider.registered.v1",
            "connectsoft.integration.credential.rotated.v1",
            "connectsoft.integration.failure.recorded.v1"
        ]
    );
    let failure: Value = events[2].data_json().unwrap();
    assert_eq!(failure["classification"], "auth");
    let secrets = [
        "sk-original-7f3a",
        "good-sk-rotated-91bc",
        "bad-sk-refused-44de",
    ];
    scan_for(&p, &secrets);
    logs.assert_absent(&secrets);
    assert!(
        logs.text().contains("rotation decided"),
        "the saga's own logs were captured"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_supported_is_recorded_and_silence_times_out() {
    let p = platform(
        &[fake_sms_app()],
        json!({ "ROTATION_TEST_TIMEOUT_SECONDS": "1" }),
    )
    .await;
    with_provider(&p).await;
    let t = p.token("tenant-n", &[]);
    let id = create(&p, &t, "sk-a", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = decided(&p, &t, &rotate(&p, &t, &id, "unsupported-sk-b").await).await;
    assert_eq!(
        (r["status"].as_str(), r["outcome"].as_str()),
        (Some("promoted"), Some("not_supported"))
    );
    let before = credential(&p, &t, &id).await["current"].clone();
    let r = decided(&p, &t, &rotate(&p, &t, &id, "silent-sk-c").await).await;
    assert_eq!(
        (r["status"].as_str(), r["outcome"].as_str()),
        (Some("aborted"), Some("timed_out"))
    );
    assert_eq!(credential(&p, &t, &id).await["current"], before);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_repeated_answers_never_promote_twice() {
    let p = platform(&[fake_sms_app()], json!({})).await;
    with_provider(&p).await;
    let t = p.token("tenant-d", &[]);
    let id = create(&p, &t, "sk-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotation = rotate(&p, &t, &id, "good-sk-2").await;
    decided(&p, &t, &rotation).await;
    let after = credential(&p, &t, &id).await;
    // The same answer again, and a contradicting one, as a redelivery or a race would bring.
    for outcome in ["succeeded", "failed"] {
        let reply = json!({"rotationId": rotation, "outcome": outcome});
        let env = envelope::Envelope::builder(
            "/integration/sms",
            app_context::commands::RETEST_COMPLETED,
            "tenant-d",
        )
        .json_data(&reply)
        .unwrap();
        let m = OutgoingMessage::new(format!("again-{outcome}"), env.to_vec());
        ports::BusSender::send(&*p.runner.broker, "credential-rotations", vec![m])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(credential(&p, &t, &id).await, after, "nothing changed");
    let queue = ports::Entity::queue("credential-rotations");
    assert!(
        p.runner
            .broker
            .peek_dead_letters(&queue, 10)
            .await
            .unwrap()
            .is_empty(),
        "and nothing failed"
    );
    let rotated = published(&p, 2)
        .await
        .iter()
        .filter(|e| e.event_type().ends_with("credential.rotated.v1"))
        .count();
    assert_eq!(rotated, 1, "one IntegrationCredentialRotated");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_resumes_after_a_restart() {
    // First run: the owning app does not consume, so the re-test command waits on its queue.
    let p = platform(&[idle_sms_app()], json!({})).await;
    with_provider(&p).await;
    let t = p.token("tenant-c", &[]);
    let id = create(&p, &t, "sk-before", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotation = rotate(&p, &t, &id, "good-sk-after").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = p.restart(&[registry::registration(), fake_sms_app()]).await;
    observe(&p).await;
    let t = p.token("tenant-c", &[]);
    let r = decided(&p, &t, &rotation).await;
    assert_eq!(
        r["status"], "promoted",
        "the saga went on after the restart"
    );
    assert_eq!(credential(&p, &t, &id).await["status"], "active");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_announces_due_rotations_once() {
    let p = platform(&[], json!({ "ROTATION_SCHEDULE": "*/1 * * * * *" })).await;
    with_provider(&p).await;
    let t = p.token("tenant-s", &[]);
    let due = create(
        &p,
        &t,
        "sk-old",
        Some(json!({"maxAgeSeconds": 1, "noticeSeconds": 0})),
    )
    .await;
    create(
        &p,
        &t,
        "sk-fresh",
        Some(json!({"maxAgeSeconds": 86400, "noticeSeconds": 60})),
    )
    .await;
    // Several sweeps pass.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let events = published(&p, 2).await;
    let notices: Vec<_> = events
        .iter()
        .filter(|e| e.event_type().contains("rotation-due"))
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one notice for the due credential, none for the fresh one: {:?}",
        events.iter().map(|e| e.event_type()).collect::<Vec<_>>()
    );
    let data: Value = notices[0].data_json().unwrap();
    assert_eq!(data["credentialId"], due["id"]);
    assert_eq!(data["reason"], "maxAge");
    p.shutdown().await;
}

async fn oauth_credential(
    p: &TestPlatform,
    token: &str,
    token_url: &str,
    refresh: &str,
    policy: Option<Value>,
) -> String {
    let mut body = json!({"providerKey": "twilio", "kind": "oauth2RefreshToken",
        "secret": {"clientId": "client-1", "refreshToken": refresh, "tokenUrl": token_url}});
    if let Some(policy) = policy {
        body["rotationPolicy"] = policy;
    }
    let r = p.post(CREDENTIALS, token, body).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The refresh token stored as the credential's current version.
async fn current_refresh_token(p: &TestPlatform, token: &str, id: &str) -> String {
    current_fields(p, token, id).await["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The secret fields of the credential's current version.
async fn current_fields(p: &TestPlatform, token: &str, id: &str) -> Value {
    let c = credential(p, token, id).await;
    let (secret, _) = p
        .runner
        .context
        .secrets
        .get(
            c["current"]["name"].as_str().unwrap(),
            c["current"]["version"].as_str(),
        )
        .await
        .unwrap();
    serde_json::from_str(secrecy::ExposeSecret::expose_secret(&secret)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_credentials_rotate_themselves() {
    let (token_url, hits) = crate::support::token_endpoint().await;
    let p = platform(
        &[fake_sms_app()],
        json!({ "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1" }),
    )
    .await;
    with_provider(&p).await;
    let t = p.token("tenant-o", &[]);
    let id = oauth_credential(&p, &t, &token_url, "rt-1", None).await;
    // No secret given: the credential renews its refresh token at the token endpoint.
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &t,
            json!({"credentialId": id}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let rotation = r.json::<Value>().await.unwrap()["rotationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(decided(&p, &t, &rotation).await["status"], "promoted");
    assert_eq!(
        current_refresh_token(&p, &t, &id).await,
        "rt-2",
        "the rotated refresh token is kept"
    );
    // With it, the access token that grant returned: apps use it instead of spending the
    // refresh token themselves.
    let fields = current_fields(&p, &t, &id).await;
    assert_eq!(fields["accessToken"], "at-1");
    let expires =
        chrono::DateTime::parse_from_rfc3339(fields["accessTokenExpiresAt"].as_str().unwrap())
            .unwrap();
    let left = expires.to_utc() - chrono::Utc::now();
    assert!(
        left > chrono::TimeDelta::minutes(55) && left <= chrono::TimeDelta::minutes(60),
        "{left}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A revoked refresh token: the vendor's refusal is a 502 problem, nothing changes.
    let dead = oauth_credential(&p, &t, &token_url, "revoked-1", None).await;
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &t,
            json!({"credentialId": dead}),
        )
        .await;
    let problem = assert_problem(r, 502, "upstream_failed").await;
    assert!(
        !problem.to_string().contains("revoked-1"),
        "no secret in the problem"
    );
    assert_eq!(credential(&p, &t, &dead).await["status"], "active");
    p.shutdown().await;
}

/// Once the vendor has answered a refresh grant its new refresh token is the live one: it
/// becomes current even when the re-test fails or never comes, with the outcome recorded
/// beside it and a failure raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_issued_refresh_token_is_kept_whatever_the_retest_says() {
    let (token_url, _hits) = crate::support::token_endpoint().await;
    let p = platform(
        &[fake_sms_app()],
        json!({ "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1", "ROTATION_TEST_TIMEOUT_SECONDS": "1" }),
    )
    .await;
    with_provider(&p).await;
    observe(&p).await;
    let t = p.token("tenant-v", &[]);
    // `bad-…` re-tests as failed; `silent-…` is never answered.
    for (first, outcome) in [("bad-1", "failed"), ("silent-1", "timed_out")] {
        let id = oauth_credential(&p, &t, &token_url, first, None).await;
        let r = p
            .post(
                &format!("{CREDENTIALS}/rotate"),
                &t,
                json!({"credentialId": id}),
            )
            .await;
        assert_eq!(r.status(), 202);
        let rotation = r.json::<Value>().await.unwrap()["rotationId"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = decided(&p, &t, &rotation).await;
        assert_eq!(
            (r["status"].as_str(), r["outcome"].as_str()),
            (Some("promoted"), Some(outcome)),
            "{r}"
        );
        assert!(
            r["detail"].is_string(),
            "the re-test's outcome is kept: {r}"
        );
        let next = format!("{}-2", first.split('-').next().unwrap());
        assert_eq!(current_refresh_token(&p, &t, &id).await, next);
    }
    let events = published(&p, 4).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| t.ends_with("credential.rotated.v1"))
            .count(),
        2,
        "{types:?}"
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| t.ends_with("failure.recorded.v1"))
            .count(),
        2,
        "{types:?}"
    );
    p.shutdown().await;
}

/// A credential of a provider that no app of this platform re-tests (its category's app is
/// not part of it) is decided at once, not after the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_nobody_can_retest_is_decided_at_once() {
    let p = platform(
        &[fake_sms_app()],
        json!({ "ROTATION_TEST_TIMEOUT_SECONDS": "3600" }),
    )
    .await;
    let op = p.token("ops", &["operator"]);
    let provider = json!({"key": "acme-crm", "displayName": "Acme CRM", "category": "crm",
                          "authScheme": "apiKey", "baseUrl": "https://api.acme.example"});
    assert_eq!(
        p.post("/registry/api/integrations/providers", &op, provider)
            .await
            .status(),
        201
    );
    let t = p.token("tenant-u", &[]);
    let r = p
        .post(
            CREDENTIALS,
            &t,
            json!({"providerKey": "acme-crm", "kind": "apiKey", "secret": {"apiKey": "sk-crm-1"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &t,
            json!({"credentialId": id, "secret": {"apiKey": "sk-crm-2"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["status"], "promoted", "{answer}");
    let r: Value = p
        .get(
            &format!(
                "{CREDENTIALS}/rotations/{}",
                answer["rotationId"].as_str().unwrap()
            ),
            &t,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["outcome"], "not_supported", "{r}");
    assert_eq!(
        r["detail"],
        "no app of this platform re-tests acme-crm credentials"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoints_on_internal_addresses_are_refused_when_given() {
    let p = platform(&[fake_sms_app()], json!({})).await;
    with_provider(&p).await;
    let t = p.token("tenant-ssrf", &[]);
    let body = |kind: &str, url: &str| {
        json!({"providerKey": "twilio", "kind": kind,
               "secret": {"clientId": "client-1", "clientSecret": "cs-1", "refreshToken": "rt-1",
                          "tokenUrl": url}})
    };
    for url in [
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "http://127.0.0.1:9/token",
        "http://[::1]/token",
        "http://[::ffff:a9fe:a9fe]/token",
        "http://[2002:a9fe:a9fe::1]/token",
    ] {
        let mut refresh = body("oauth2RefreshToken", url);
        let r = p.post(CREDENTIALS, &t, refresh.clone()).await;
        let problem = assert_problem(r, 400, "url_refused").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("secret.tokenUrl: "),
            "{problem}"
        );
        refresh["secret"]
            .as_object_mut()
            .unwrap()
            .remove("refreshToken");
        refresh["kind"] = json!("oauth2ClientCredentials");
        assert_problem(p.post(CREDENTIALS, &t, refresh).await, 400, "url_refused").await;
    }
    let r = p
        .post(
            CREDENTIALS,
            &t,
            body("oauth2RefreshToken", "ftp://login.example.com/token"),
        )
        .await;
    assert_problem(r, 400, "invalid_url").await;
    // A rotation's new secret is checked the same way.
    let id = oauth_credential(&p, &t, "https://login.example.com/token", "rt-1", None).await;
    let r = p
        .post(
            &format!("{CREDENTIALS}/rotate"),
            &t,
            json!({"credentialId": id, "secret": {"clientId": "client-1", "refreshToken": "rt-2",
                                                  "tokenUrl": "http://10.0.0.1/token"}}),
        )
        .await;
    assert_problem(r, 400, "url_refused").await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_rotates_due_refresh_tokens_itself() {
    let (token_url, _hits) = crate::support::token_endpoint().await;
    let values =
        json!({ "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1", "ROTATION_SCHEDULE": "*/1 * * * * *" });
    let p = platform(&[fake_sms_app()], values).await;
    with_provider(&p).await;
    let t = p.token("tenant-sw", &[]);
    let id = oauth_credential(
        &p,
        &t,
        &token_url,
        "rt-10",
        Some(json!({"maxAgeSeconds": 1, "noticeSeconds": 0})),
    )
    .await;
    let dead = oauth_credential(
        &p,
        &t,
        &token_url,
        "revoked-2",
        Some(json!({"maxAgeSeconds": 1, "noticeSeconds": 0})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while current_refresh_token(&p, &t, &id).await == "rt-10" {
        assert!(
            Instant::now() < deadline,
            "the due refresh token was not rotated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = published(&p, 3).await;
    let due: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type().contains("rotation-due"))
        .map(|e| e.data_json::<Value>().unwrap())
        .collect();
    assert!(
        due.iter().all(|d| d["credentialId"] == dead.as_str()),
        "only the one that could not renew itself is announced: {due:?}"
    );
    assert!(!due.is_empty());
    p.shutdown().await;
}
