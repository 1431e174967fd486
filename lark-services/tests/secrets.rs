//! Secrets never reach `Debug` output or logs, even at TRACE level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use lark_services::Client;
use lark_testkit::FakePlatform;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_are_absent_from_debug_and_traces() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let p = FakePlatform::start().await;
    let client = Client::builder(p.app_id(), p.app_secret())
        .base_url(p.base_url())
        .helpdesk("hd_1", "helpdesk-token-value")
        .build()
        .unwrap();
    let builder_debug =
        format!("{:?}", Client::builder(p.app_id(), p.app_secret()).helpdesk("hd_1", "helpdesk-token-value"));
    client.get("/open-apis/contact/v3/users/:id").path_param("id", "ou_1").send_json().await.unwrap();
    client.get("/open-apis/helpdesk/v1/tickets").send_json().await.ok();
    client.set_app_ticket("app-ticket-value").await.unwrap();
    let token = client.tokens().tenant_access_token(None).await.unwrap();
    let token = token.expose_secret().to_owned();
    let failure = client
        .get("/open-apis/contact/v3/users/:id")
        .path_param("id", "nobody")
        .send_json()
        .await
        .unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("lark.request"), "the trace layer logged: {logs}");
    let shown = format!(
        "{logs}\n{client:?}\n{builder_debug}\n{:?}\n{failure:?}\n{failure}\n{:?}",
        client.tokens(),
        client.tokens().app_ticket().await.unwrap()
    );
    for secret in [p.app_secret(), token.as_str(), "helpdesk-token-value", "app-ticket-value"] {
        assert!(!shown.contains(secret), "secret leaked into:\n{shown}");
    }
}
