use serde::{Deserialize, Serialize};

/// The reply envelope every JSON API returns: `{"code": 0, "msg": "success", "data": {...}}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ApiReply<T> {
    /// 0 on success.
    #[serde(default)]
    pub code: i64,
    /// Human-readable message.
    #[serde(default)]
    pub msg: String,
    /// The payload; absent for some replies.
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    /// Error details on failure.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// The `error` object of a failed reply.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct ErrorBody {
    /// Log id of the call.
    pub log_id: Option<String>,
    /// A URL explaining the error.
    pub troubleshooter: Option<String>,
    /// Key/value details.
    pub details: Vec<ErrorDetail>,
    /// Missing permissions.
    pub permission_violations: Vec<PermissionViolation>,
    /// Invalid fields.
    pub field_violations: Vec<FieldViolation>,
    /// Help links.
    pub helps: Vec<Help>,
}

/// One entry of `error.details`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct ErrorDetail {
    /// Detail key.
    pub key: Option<String>,
    /// Detail value.
    pub value: Option<String>,
}

/// One entry of `error.permission_violations`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct PermissionViolation {
    /// Violation type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The permission scope concerned.
    pub subject: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// One entry of `error.field_violations`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct FieldViolation {
    /// Field name.
    pub field: Option<String>,
    /// The value sent.
    pub value: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// One entry of `error.helps`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct Help {
    /// Link.
    pub url: Option<String>,
    /// Description.
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failure_envelope() {
        let raw = r#"{"code":99991672,"msg":"no permission","error":{"log_id":"L1","troubleshooter":"https://t","permission_violations":[{"type":"action_scope_required","subject":"im:message"}],"unknown":1}}"#;
        let reply: ApiReply<serde_json::Value> = serde_json::from_str(raw).unwrap();
        assert_eq!(reply.code, 99991672);
        assert!(reply.data.is_none());
        let err = reply.error.unwrap();
        assert_eq!(err.log_id.as_deref(), Some("L1"));
        assert_eq!(err.permission_violations[0].subject.as_deref(), Some("im:message"));
    }
}
