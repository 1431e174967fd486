//! `lark-events/src/generated/`: one file per project with a struct per event type, each
//! implementing `crate::Event`.
//!
//! Naming: `project.resource.event_vN` (schema 2.0) → `generated::project::ResourceEventVN`
//! (`im.message.receive_v1` → `generated::im::MessageReceiveV1`). A schema-2.0 type the spec gives
//! no project for is split at its first dot (`card.action.trigger` → `generated::card::ActionTrigger`).
//! Schema-1.0 (legacy) types go in `generated::legacy` under the `PascalCase` of the whole type
//! (`app_ticket` → `generated::legacy::AppTicket`).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::names::{pascal, snake};
use crate::services::HEADER;
use crate::spec::{Event, EventFile, Schema};
use crate::types::{emit_types, lit, Side, Ty, TypeSpace};
use crate::Output;

/// Where an event's type goes: `(module, struct name)`.
pub(crate) fn event_path(e: &Event) -> (String, String) {
    if e.schema_version != "2.0" {
        return ("legacy".to_owned(), pascal(&e.event_type));
    }
    match (&e.project, &e.resource_event, &e.version) {
        (Some(p), Some(r), Some(v)) => (snake(p), format!("{}{}", pascal(r), pascal(v))),
        _ => match e.event_type.split_once('.') {
            Some((p, rest)) => (snake(p), pascal(rest)),
            None => ("legacy".to_owned(), pascal(&e.event_type)),
        },
    }
}

/// The naming rule, as written into the generated `mod.rs`.
const NAMING_DOC: &str = "//! Naming:
//!
//! - schema 2.0, `project.resource.event_vN` → `generated::project::ResourceEventVN`:
//!   `im.message.receive_v1` → [`im::MessageReceiveV1`], `contact.user.updated_v3` →
//!   `contact::UserUpdatedV3`;
//! - schema 2.0 without a project in the spec (the card and link-preview callbacks): split at the
//!   first dot, `card.action.trigger` → [`card::ActionTrigger`], `url.preview.get` →
//!   [`url::PreviewGet`];
//! - schema 1.0 (legacy) → `generated::legacy::` + `PascalCase` of the whole type: `app_ticket` →
//!   [`legacy::AppTicket`], `leave_approvalV2` → `legacy::LeaveApprovalV2`.
//!
//! Nested objects are named after their field (`sender` → `Sender`, array items in the singular)
//! and shared within a module when name and shape agree; otherwise the parent's name is put in
//! front. Field names are `snake_case` (a Rust keyword gets a trailing `_`: `type_`).
//!
//! Every field is an `Option` (absent and `null` are `None`), unknown fields are ignored, 64-bit
//! integers are read from strings or numbers (and written as strings), numbers of unknown kind are
//! `f64`, enums keep unknown values as `Unknown(String)`, and secrets (a top-level `token`,
//! `app_ticket`, `*access_token`, `*refresh_token`, `*_secret`, passwords) are
//! `lark_types::SecretString` (redacted in `Debug`).
";

/// Generates the event payload modules.
pub(crate) fn generate(spec: &EventFile, out: &mut Output) -> Result<(), String> {
    let mut modules: BTreeMap<String, Vec<(&Event, String)>> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for e in &spec.events {
        let (module, name) = event_path(e);
        if let Some(prev) = seen.insert((module.clone(), name.clone()), e.event_type.clone()) {
            return Err(format!("events {prev} and {} both map to {module}::{name}", e.event_type));
        }
        modules.entry(module).or_default().push((e, name));
    }
    let mut all_types: Vec<&str> = spec.events.iter().map(|e| e.event_type.as_str()).collect();
    all_types.sort_unstable();

    let mut root = String::from(HEADER);
    let _ = writeln!(
        root,
        "//! Typed payloads of the {} event and callback types of `shared/api-spec/events.json`: the
//! `event` object of each envelope, one struct per type implementing [`Event`](crate::Event).
//!",
        spec.events.len()
    );
    root.push_str(NAMING_DOC);
    root.push('\n');
    for module in modules.keys() {
        let _ = writeln!(root, "pub mod {module};");
    }
    root.push_str("\n/// Every event and callback type with a generated payload, sorted.\npub const EVENT_TYPES: &[&str] = &[\n");
    for t in &all_types {
        let _ = writeln!(root, "{},", lit(t));
    }
    root.push_str("];\n");
    out.rust("lark-events/src/generated/mod.rs".into(), root);

    for (module, mut events) in modules {
        events.sort_by(|a, b| a.0.event_type.cmp(&b.0.event_type));
        out.rust(format!("lark-events/src/generated/{module}.rs"), event_module(&module, &events));
    }
    Ok(())
}

fn event_module(module: &str, events: &[(&Event, String)]) -> String {
    let mut ts = TypeSpace::default();
    let mut docs = BTreeMap::new();
    let empty = Schema::default();
    for (e, name) in events {
        let body = e.event_body.as_ref().unwrap_or(&empty);
        let origin = format!("`{}`", e.event_type);
        let mut fields = ts.fields(body, name, &origin, Side::Response);
        // The envelope's verification `token` (flattened into schema-1.0 payloads) and a card
        // callback's update token are secrets at the top level; deeper `token`s are ids.
        for f in &mut fields {
            if f.wire == "token" && f.ty == Ty::Str {
                f.ty = Ty::Secret;
            }
        }
        ts.exact_struct(name, &origin, Side::Response, fields);
        let what = if e.kind == "callback" { "callback" } else { "event" };
        let envelope = if e.schema_version == "2.0" {
            "its schema-2.0 envelope (`{\"schema\":\"2.0\",\"header\":{..},\"event\":{..}}`)"
        } else {
            "its schema-1.0 envelope (`{\"uuid\",\"token\",\"ts\",\"type\":\"event_callback\",\"event\":{..}}`)"
        };
        docs.insert(
            name.clone(),
            format!("The `{}` {what}: the `event` object of {envelope}.", e.event_type),
        );
    }
    let mut s = String::from(HEADER);
    if module == "legacy" {
        s.push_str("//! Schema-1.0 (legacy) event payloads.\n\n");
    } else {
        let _ = writeln!(s, "//! Payloads of the `{module}` events.\n");
    }
    emit_types(&mut s, &ts, &docs, &format!("the `{module}` event payloads"));
    for (e, name) in events {
        let _ = writeln!(
            s,
            "impl crate::Event for {name} {{\nconst EVENT_TYPE: &'static str = {};\n}}\n",
            lit(&e.event_type)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn paths_follow_the_naming_rule() {
        let e = event(
            r#"{"event_type":"im.message.receive_v1","schema_version":"2.0","kind":"event","project":"im","resource_event":"message.receive","version":"v1"}"#,
        );
        assert_eq!(event_path(&e), ("im".into(), "MessageReceiveV1".into()));
        let e = event(r#"{"event_type":"app_ticket","schema_version":"1.0","kind":"event"}"#);
        assert_eq!(event_path(&e), ("legacy".into(), "AppTicket".into()));
        let e = event(r#"{"event_type":"leave_approvalV2","schema_version":"1.0","kind":"event"}"#);
        assert_eq!(event_path(&e), ("legacy".into(), "LeaveApprovalV2".into()));
        let e = event(r#"{"event_type":"card.action.trigger","schema_version":"2.0","kind":"callback"}"#);
        assert_eq!(event_path(&e), ("card".into(), "ActionTrigger".into()));
    }

    #[test]
    fn module_text_has_the_struct_the_impl_and_tolerant_fields() {
        let receive = event(
            r#"{"event_type":"im.message.receive_v1","schema_version":"2.0","kind":"event","project":"im",
                "resource_event":"message.receive","version":"v1","event_body":{"type":"object","properties":{
                "sender":{"type":"object","properties":{"sender_type":{"type":"string"}}},
                "message":{"type":"object","properties":{"create_time":{"type":"number","format":"int64"},
                "chat_type":{"type":"string","enum":["p2p","group"]}}}}}}"#,
        );
        let text = event_module("im", &[(&receive, "MessageReceiveV1".to_owned())]);
        assert!(text.starts_with("// @generated by lark-codegen"));
        assert!(text.contains("pub struct MessageReceiveV1 {"));
        assert!(text.contains("impl crate::Event for MessageReceiveV1 {\nconst EVENT_TYPE: &'static str = \"im.message.receive_v1\";\n}"));
        assert!(text.contains("pub sender: Option<Sender>,"));
        assert!(text.contains("pub create_time: Option<i64>,"));
        assert!(text.contains("create_time: \"create_time\" as int64"));
        assert!(text.contains("lark_types::open_enum! {"));
        assert!(text.contains("P2p = \"p2p\","));
        assert!(text
            .contains("#[derive(Clone, Debug, Default, PartialEq)]\n#[non_exhaustive]\npub struct Sender {"));
        assert!(text.contains("lark_types::json_struct!(Sender { sender_type: \"sender_type\" });"));
    }

    #[test]
    fn legacy_tokens_are_secrets() {
        let ticket = event(
            r#"{"event_type":"app_ticket","schema_version":"1.0","kind":"event","event_body":{"type":"object",
                "properties":{"token":{"type":"string"},"type":{"type":"string"},"app_ticket":{"type":"string"}}}}"#,
        );
        let text = event_module("legacy", &[(&ticket, "AppTicket".to_owned())]);
        assert!(text.contains("pub token: Option<lark_types::SecretString>,"));
        assert!(text.contains("pub app_ticket: Option<lark_types::SecretString>,"));
        assert!(text.contains("pub type_: Option<String>,"));
        assert!(text
            .contains("token: \"token\" as secret, type_: \"type\", app_ticket: \"app_ticket\" as secret }"));
        assert!(text.contains("const EVENT_TYPE: &'static str = \"app_ticket\";"));
    }
}
