//! One table test over every generated API: each request is built through its accessor with
//! sample path values and every query parameter set (`tests/generated/api_rows.rs`, written by
//! lark-codegen), and the HTTP request it becomes is checked against `shared/api-spec/apis.json`,
//! read here independently of the generator: method, path template and the substituted (encoded)
//! path, query names and values, body kind, token types and the documentation link.
//!
//! With `--features full` (or `--all-features`) every one of the spec's APIs must have a row.

use std::collections::BTreeMap;
use std::path::PathBuf;

use http::header::CONTENT_TYPE;
use lark_services::{ApiMeta, Call, Client, Outgoing, TypedRequest};
use lark_types::{AccessTokenTypes, AuthOptions};
use serde_json::Value;

#[path = "generated/api_rows.rs"]
mod rows;

/// The sample value of path value `name`: it needs encoding (a space and a slash).
pub(crate) fn p(name: &str) -> String {
    format!("{name} v/1")
}

struct Row {
    id: &'static str,
    meta: ApiMeta,
    outgoing: Outgoing,
}

/// Collects the rows.
pub(crate) struct Table {
    client: Client,
    rows: Vec<Row>,
}

impl Table {
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    pub(crate) fn call<R: TypedRequest>(&mut self, id: &'static str, call: Call<R>) {
        let (_, request, _) = call.into_parts();
        self.rows.push(Row { id, meta: R::META, outgoing: request.into_outgoing() });
    }
}

fn spec_path() -> PathBuf {
    match std::env::var_os("LARK_API_SPEC") {
        Some(dir) => PathBuf::from(dir).join("apis.json"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/api-spec/apis.json"),
    }
}

fn load_spec() -> BTreeMap<String, Value> {
    let path = spec_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} (set LARK_API_SPEC to its folder): {e}", path.display()));
    let spec: Value = serde_json::from_str(&text).expect("apis.json is JSON");
    let apis = spec["apis"].as_array().expect("apis.json has an `apis` array");
    assert_eq!(apis.len() as u64, spec["count"].as_u64().unwrap());
    apis.iter().map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone())).collect()
}

/// RFC 3986 unreserved characters stay, everything else is `%XX`.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The sample a query value of this schema gets (the generator's rows use the same rules).
fn sample(schema: &Value) -> Vec<String> {
    match schema["type"].as_str() {
        Some("array") => {
            let one = sample(&schema["items"]);
            [one.clone(), one].concat()
        }
        Some("boolean") => vec!["true".into()],
        Some("number") => {
            let float = matches!(schema["format"].as_str(), Some("float" | "double"))
                || (schema["format"].is_null() && schema["format_hint"] == "float");
            vec![if float { "1.5".into() } else { "7".into() }]
        }
        _ => match schema["enum"].as_array() {
            Some(values) => vec![values[0].as_str().unwrap().to_owned()],
            None => vec!["s".into()],
        },
    }
}

fn expected_tokens(api: &Value) -> AccessTokenTypes {
    let names: Vec<&str> = api["access_tokens"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return AccessTokenTypes::TENANT_OR_USER;
    }
    names.iter().fold(AccessTokenTypes::NONE, |acc, n| match *n {
        "tenant" => acc.with(lark_types::AccessTokenType::Tenant),
        "user" => acc.with(lark_types::AccessTokenType::User),
        "app" => acc.with(lark_types::AccessTokenType::App),
        other => panic!("unknown token type {other}"),
    })
}

async fn check(row: Row, api: &Value) -> Result<(), String> {
    let id = row.id;
    let fail = |what: String| Err(format!("{id}: {what}"));
    if row.meta.id != id {
        return fail(format!("accessor sends {} instead", row.meta.id));
    }
    if row.meta.method.as_str() != api["http_method"] || row.meta.path != api["path"] {
        return fail(format!("meta {} {} differs from the spec", row.meta.method, row.meta.path));
    }
    if row.meta.doc_url != api["doc_url"] {
        return fail("doc_url differs".into());
    }
    let req = row.outgoing.into_request().await.map_err(|e| format!("{id}: {e}"))?;
    let http = req.build("http://lark.test").map_err(|e| format!("{id}: {e}"))?;
    if http.method().as_str() != api["http_method"] {
        return fail(format!("sent as {}", http.method()));
    }

    // Path: every `:name` filled with the encoded sample.
    let template = api["path"].as_str().unwrap();
    let path_props = api["request"]["path"]["properties"].as_object().cloned().unwrap_or_default();
    let expected_path: Vec<String> = template
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => encode(&p(name)),
            None => seg.to_owned(),
        })
        .collect();
    if http.uri().path() != expected_path.join("/") {
        return fail(format!("path {} != {}", http.uri().path(), expected_path.join("/")));
    }

    // Query: every parameter with its sample value; path properties the template lacks are
    // query parameters too.
    let mut expected: Vec<(String, String)> = Vec::new();
    let query_props = api["request"]["query"]["properties"].as_object().cloned().unwrap_or_default();
    let extra = path_props.iter().filter(|(name, _)| !template.split('/').any(|s| s == format!(":{name}")));
    for (name, schema) in query_props.iter().chain(extra) {
        for v in sample(schema) {
            expected.push((name.clone(), v));
        }
    }
    let mut got: Vec<(String, String)> = http
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    expected.sort();
    got.sort();
    if got != expected {
        return fail(format!("query {got:?} != {expected:?}"));
    }

    // Body kind.
    let content_type = http.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let has_body = !api["request"]["body"].is_null();
    match (api["file_upload"].as_bool().unwrap(), has_body, content_type.as_deref()) {
        (true, _, Some(ct)) if ct.starts_with("multipart/form-data; boundary=") => {}
        (false, true, Some("application/json; charset=utf-8")) => {
            if http.body().as_bytes() != Some(&b"{}"[..]) {
                return fail("an empty request should send `{}`".into());
            }
        }
        (false, false, None) => {}
        (upload, body, ct) => return fail(format!("upload {upload}, body {body}, but content type {ct:?}")),
    }

    // Tokens: no extension means a tenant token.
    let accepted = http.extensions().get::<AuthOptions>().map_or(AccessTokenTypes::TENANT, |a| a.accepted);
    if accepted != expected_tokens(api) {
        return fail(format!("accepts {accepted:?}, the spec says {:?}", api["access_tokens"]));
    }
    Ok(())
}

#[tokio::test]
async fn every_generated_request_matches_the_spec() {
    let spec = load_spec();
    let client = Client::builder("cli_a1b2c3d4e5f6a7b8", "secret").build().unwrap();
    let mut table = Table { client, rows: Vec::new() };
    rows::all(&mut table);
    let rows = std::mem::take(&mut table.rows);
    if cfg!(feature = "full") {
        let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        let spec_ids: Vec<&str> = spec.keys().map(String::as_str).collect();
        assert_eq!(ids, spec_ids, "with `full`, every API of the spec has exactly one row, in id order");
    }
    let mut failures = Vec::new();
    let checked = rows.len();
    for row in rows {
        let api = spec.get(row.id).unwrap_or_else(|| panic!("{} is not in the spec", row.id));
        if let Err(e) = check(row, api).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rows differ from the spec:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checked} generated APIs match the spec");
}

#[test]
fn the_sample_path_value_needs_encoding() {
    assert_eq!(encode(&p("message_id")), "message_id%20v%2F1");
    assert_eq!(decode("a%20b%2F%E9%A3%9E"), "a b/飞");
}
