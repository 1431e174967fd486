//! `HttpClient::builder()` reads the proxy from the environment by default. A test binary of its
//! own: it sets process environment variables, which no other test may see.

use lark_transport::{HttpClient, Proxy};
use lark_types::LarkError;

#[test]
fn the_default_proxy_comes_from_the_environment() {
    std::env::set_var("HTTPS_PROXY", "http://user:hunter2@proxy.invalid:99999");
    let err = HttpClient::builder().build().unwrap_err();
    assert!(matches!(err, LarkError::Config(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("HTTPS_PROXY") && shown.contains("invalid proxy port"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // Set in code, the environment is not read.
    HttpClient::builder().proxy(Proxy::none()).build().unwrap();
    std::env::set_var("HTTPS_PROXY", "http://proxy.invalid:3128");
    HttpClient::builder().build().unwrap();
    std::env::remove_var("HTTPS_PROXY");
}
