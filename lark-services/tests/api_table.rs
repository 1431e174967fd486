//! One table test over every generated API: each request is built through its accessor with
//! sample path values and every query parameter set (`tests/generated/api_rows.rs`, written by
//! lark-codegen), and the HTTP request it becomes is checked against `shared/api-spec/apis.json`,
//! read here independently of the generator: method, path template and the substituted (encoded)
//! path, query names and values, body kind (and the parts of an upload), file replies, token
//! types, the documentation link, and pagination: which lists page, by which token names, and how
//! their replies' tokens are read.
//!
//! With `--features full` (or `--all-features`) every one of the spec's APIs must have a row.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::PathBuf;

use http::header::CONTENT_TYPE;
use lark_services::{ApiMeta, Call, Client, Download, NextPage, Outgoing, Paginated, TypedRequest};
use lark_types::{AccessTokenTypes, AuthOptions};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

#[path = "generated/api_rows.rs"]
mod rows;

/// The sample value of path value `name`: it needs encoding (a space and a slash).
pub(crate) fn p(name: &str) -> String {
    format!("{name} v/1")
}

/// How a generated list pages, as its row states it: the request's token name, the reply's, the
/// reply's `has_more` field and whether the reply's token is a number.
pub(crate) struct Paging {
    pub(crate) token: &'static str,
    pub(crate) next: &'static str,
    pub(crate) has_more: Option<&'static str>,
    pub(crate) number: bool,
}

/// A paginated row: its paging, the request after `set_page_token("tok-1")`, and what
/// `next_page` makes of sample replies (`has_more` true with a token, false, true without one).
struct Paged {
    paging: Paging,
    with_token: Outgoing,
    replies: Result<[NextPage; 3], String>,
}

struct Row {
    id: &'static str,
    meta: ApiMeta,
    outgoing: Outgoing,
    download: bool,
    paged: Option<Paged>,
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
        let download = TypeId::of::<R::Response>() == TypeId::of::<Download>();
        self.rows.push(Row { id, meta: R::META, outgoing: request.into_outgoing(), download, paged: None });
    }

    pub(crate) fn paged<R>(&mut self, id: &'static str, call: Call<R>, paging: Paging)
    where
        R: Paginated,
        R::Response: DeserializeOwned,
    {
        let mut with_token = call.request().clone();
        with_token.set_page_token("tok-1".into());
        let token = if paging.number { json!(2) } else { json!("tok-2") };
        let reply = |has_more: bool, token: Option<&Value>| -> Result<NextPage, String> {
            let mut v = serde_json::Map::new();
            if let Some(f) = paging.has_more {
                v.insert(f.into(), Value::Bool(has_more));
            }
            if let Some(t) = token {
                v.insert(paging.next.into(), t.clone());
            }
            let page: R::Response = serde_json::from_value(Value::Object(v)).map_err(|e| e.to_string())?;
            Ok(R::next_page(&page))
        };
        let replies =
            (|| Ok([reply(true, Some(&token))?, reply(false, Some(&token))?, reply(true, None)?]))();
        self.call(id, call);
        if let Some(row) = self.rows.last_mut() {
            row.paged = Some(Paged { paging, with_token: with_token.into_outgoing(), replies });
        }
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
            // Floats by format; numbers of unknown kind are `f64`s, and a whole one is sent as an
            // integer.
            let float = matches!(schema["format"].as_str(), Some("float" | "double"));
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

    // Body kind. A GET or DELETE marked as an upload carries no form: it is a download (as the
    // generator decides).
    let content_type = http.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let has_body = !api["request"]["body"].is_null();
    let formless = api["http_method"] == "GET" || api["http_method"] == "DELETE";
    let upload = api["file_upload"].as_bool().unwrap() && !formless;
    let download = api["file_download"].as_bool().unwrap() || (api["file_upload"] == true && formless);
    if row.download != download {
        return fail(format!("replies with a file: {}, the spec says {download}", row.download));
    }
    match (upload, has_body, content_type.as_deref()) {
        (true, _, Some(ct)) if ct.starts_with("multipart/form-data; boundary=") => {
            // The rows set every part: all of the spec's form fields (files as files), or a
            // `file` and a free field when the spec lists none.
            let form = String::from_utf8_lossy(http.body().as_bytes().unwrap_or_default()).into_owned();
            let (mut parts, mut files) = (Vec::new(), Vec::new());
            for head in form.split("Content-Disposition: form-data; name=\"").skip(1) {
                let name = head.split('"').next().unwrap_or_default().to_owned();
                if head.split("\r\n").next().is_some_and(|l| l.contains("; filename=")) {
                    files.push(name.clone());
                }
                parts.push(name);
            }
            let props = api["request"]["body"]["properties"].as_object();
            let (mut want, mut want_files): (Vec<String>, Vec<String>) = match props {
                Some(props) if !props.is_empty() => (
                    props.keys().cloned().collect(),
                    props.iter().filter(|(_, s)| s["type"] == "file").map(|(k, _)| k.clone()).collect(),
                ),
                _ => (vec!["file".into(), "extra".into()], vec!["file".into()]),
            };
            for v in [&mut parts, &mut files, &mut want, &mut want_files] {
                v.sort();
            }
            if (&parts, &files) != (&want, &want_files) {
                return fail(format!(
                    "form parts {parts:?} (files {files:?}), the spec says {want:?} ({want_files:?})"
                ));
            }
        }
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

    check_paging(row.paged, api).await.map_err(|e| format!("{id}: {e}"))
}

/// The token names a paginated API pages by, read from the spec: `(request field, where, reply
/// field)`. The spec's own pair when both sides exist (the request's as a string, the reply's as a
/// string or number); else a request field `X` whose reply has `next_X`. `None`: no usable token.
fn expected_paging(api: &Value) -> Option<(String, &'static str, String)> {
    if api["paginated"] != true {
        return None;
    }
    let props = |v: &Value| v["properties"].as_object().cloned().unwrap_or_default();
    let (query, body, reply) =
        (props(&api["request"]["query"]), props(&api["request"]["body"]), props(&api["response_data"]));
    let in_request = |name: &str, place: Option<&str>| -> Option<&'static str> {
        let string = |m: &serde_json::Map<String, Value>| m.get(name).is_some_and(|s| s["type"] == "string");
        match place {
            Some("query") => string(&query).then_some("query"),
            Some("body") => string(&body).then_some("body"),
            _ => {
                if string(&query) {
                    Some("query")
                } else {
                    string(&body).then_some("body")
                }
            }
        }
    };
    let in_reply = |name: &str| {
        reply
            .get(name)
            .is_some_and(|s| matches!(s["type"].as_str(), Some("string" | "number")) && s["enum"].is_null())
    };
    let p = &api["pagination"];
    if let (Some(place), Some(next)) = (p["page_token_in"].as_str(), p["response_token_field"].as_str()) {
        if let Some(place) = in_request("page_token", Some(place)) {
            if in_reply(next) {
                return Some(("page_token".into(), place, next.into()));
            }
        }
    }
    query.keys().chain(body.keys()).find_map(|f| {
        let place = in_request(f, None)?;
        in_reply(&format!("next_{f}")).then(|| (f.clone(), place, format!("next_{f}")))
    })
}

async fn check_paging(paged: Option<Paged>, api: &Value) -> Result<(), String> {
    let expected = expected_paging(api);
    let Some(paged) = paged else {
        return match expected {
            Some((token, _, next)) => {
                Err(format!("pages by {token} → {next} in the spec, but has no `pages()`"))
            }
            None => Ok(()),
        };
    };
    let Some((token, place, next)) = expected else {
        return Err("has `pages()`, but the spec gives no usable page token".into());
    };
    let p = &paged.paging;
    if (p.token, p.next) != (token.as_str(), next.as_str()) {
        return Err(format!("pages by {} → {}, the spec says {token} → {next}", p.token, p.next));
    }
    let has_more = api["pagination"]["has_more_field"].as_str().unwrap_or("has_more");
    let spec_has_more = api["response_data"]["properties"][has_more]["type"] == "boolean";
    if p.has_more != spec_has_more.then_some(has_more) {
        return Err(format!("reads has_more from {:?}", p.has_more));
    }
    // `set_page_token` puts the token where the spec says.
    let req = paged.with_token.into_request().await.map_err(|e| e.to_string())?;
    let http = req.build("http://lark.test").map_err(|e| e.to_string())?;
    let sent = match place {
        "query" => http.uri().query().unwrap_or_default().split('&').any(|kv| kv == format!("{token}=tok-1")),
        _ => {
            let body: Value =
                serde_json::from_slice(http.body().as_bytes().unwrap_or_default()).unwrap_or_default();
            body[&token] == "tok-1"
        }
    };
    if !sent {
        return Err(format!("set_page_token does not set {place} {token}"));
    }
    // Replies: the next token (a number token as its text), the end, and a missing token.
    let want_token = NextPage::Token(if p.number { "2".into() } else { "tok-2".into() });
    let want = match p.has_more {
        Some(_) => [want_token, NextPage::Last, NextPage::MissingToken],
        // Without `has_more`, the token alone decides.
        None => [want_token.clone(), want_token, NextPage::Last],
    };
    match paged.replies {
        Ok(got) if got == want => Ok(()),
        Ok(got) => Err(format!("next_page reads {got:?}, expected {want:?}")),
        Err(e) => Err(format!("a sample reply does not decode: {e}")),
    }
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
    let paged = rows.iter().filter(|r| r.paged.is_some()).count();
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
    eprintln!("{checked} generated APIs match the spec ({paged} of them paginated)");
}

#[test]
fn the_sample_path_value_needs_encoding() {
    assert_eq!(encode(&p("message_id")), "message_id%20v%2F1");
    assert_eq!(decode("a%20b%2F%E9%A3%9E"), "a b/飞");
}
