//! The input: `apis.json` and `events.json` of `shared/api-spec`, with object properties kept
//! in the order the file lists them.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `apis.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiFile {
    pub(crate) count: usize,
    pub(crate) apis: Vec<Api>,
}

/// One server API.
#[derive(Debug, Deserialize)]
pub(crate) struct Api {
    pub(crate) id: String,
    pub(crate) project: String,
    pub(crate) version: String,
    pub(crate) resource: String,
    pub(crate) method: String,
    pub(crate) http_method: String,
    pub(crate) path: String,
    pub(crate) doc_url: String,
    #[serde(default)]
    pub(crate) access_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) paginated: bool,
    #[serde(default)]
    pub(crate) pagination: Option<Pagination>,
    #[serde(default)]
    pub(crate) file_upload: bool,
    #[serde(default)]
    pub(crate) file_upload_fields: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) file_download: bool,
    #[serde(default)]
    pub(crate) request: Option<RequestSpec>,
    #[serde(default)]
    pub(crate) response_data: Option<Schema>,
}

/// Where an API's pagination fields are.
#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    pub(crate) page_token_in: Option<String>,
    pub(crate) response_token_field: Option<String>,
    pub(crate) has_more_field: Option<String>,
    /// A field name, a list of them, or null.
    pub(crate) items_field: serde_json::Value,
}

/// The schema trees of a request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RequestSpec {
    #[serde(default)]
    pub(crate) path: Option<Schema>,
    #[serde(default)]
    pub(crate) query: Option<Schema>,
    #[serde(default)]
    pub(crate) body: Option<Schema>,
}

/// `events.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventFile {
    pub(crate) count: usize,
    pub(crate) events: Vec<Event>,
}

/// One event or callback type.
#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    pub(crate) event_type: String,
    pub(crate) schema_version: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) project: Option<String>,
    #[serde(default)]
    pub(crate) resource_event: Option<String>,
    #[serde(default)]
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) event_body: Option<Schema>,
}

/// A JSON-Schema-like tree node.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Schema {
    #[serde(default, rename = "type")]
    pub(crate) ty: Option<String>,
    #[serde(default)]
    pub(crate) format: Option<String>,
    #[serde(default)]
    pub(crate) format_hint: Option<String>,
    #[serde(default)]
    pub(crate) properties: Option<Props>,
    #[serde(default)]
    pub(crate) required: Vec<String>,
    #[serde(default)]
    pub(crate) items: Option<Box<Schema>>,
    #[serde(default)]
    pub(crate) values: Option<Box<Schema>>,
    #[serde(default, rename = "enum")]
    pub(crate) enum_values: Option<Vec<serde_json::Value>>,
    #[serde(default, rename = "anyOf")]
    pub(crate) any_of: Option<Vec<Schema>>,
}

impl Schema {
    /// The properties in file order (empty when there are none).
    pub(crate) fn props(&self) -> &[(String, Schema)] {
        self.properties.as_ref().map_or(&[], |p| p.0.as_slice())
    }

    /// Whether `name` is listed as required.
    pub(crate) fn is_required(&self, name: &str) -> bool {
        self.required.iter().any(|r| r == name)
    }
}

/// Object properties, in file order.
#[derive(Debug, Default)]
pub(crate) struct Props(pub(crate) Vec<(String, Schema)>);

impl<'de> Deserialize<'de> for Props {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Props, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Props;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of schemas")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Props, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Schema>()? {
                    out.push((k, v));
                }
                Ok(Props(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads `apis.json`.
pub(crate) fn read_apis(path: &std::path::Path) -> Result<ApiFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: ApiFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a valid API spec: {e}", path.display()))?;
    if file.count != file.apis.len() {
        return Err(format!("{}: count {} but {} APIs", path.display(), file.count, file.apis.len()));
    }
    Ok(file)
}

/// Reads `events.json`.
pub(crate) fn read_events(path: &std::path::Path) -> Result<EventFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: EventFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a valid event spec: {e}", path.display()))?;
    if file.count != file.events.len() {
        return Err(format!("{}: count {} but {} events", path.display(), file.count, file.events.len()));
    }
    Ok(file)
}
