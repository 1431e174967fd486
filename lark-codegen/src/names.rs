//! Naming rules: platform names (`snake_case`, `camelCase`, `kebab-case`, dotted) to Rust
//! identifiers.
//!
//! - Fields, methods and modules: `snake_case`; a Rust keyword gets a trailing `_`
//!   (`type` → `type_`, `move` → `move_`); a leading digit gets `n_`.
//! - Types and enum variants: `PascalCase` (`zh-CN` → `ZhCn`); a leading digit gets `V`
//!   (`"1"` → `V1`).

/// Words Rust does not accept as plain identifiers (strict and reserved keywords).
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop",
    "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual",
    "where", "while", "yield",
];

/// Splits a platform name into lower-case words: at `_`, `-`, `.`, spaces and any other
/// non-alphanumeric character, and at case changes (`openId` → `open id`, `STZone` → `st zone`,
/// `leaderID` → `leader id`). Digits stay with the letters before them (`i18n`, `v2`).
pub(crate) fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `snake_case` identifier for a field, method or module.
pub(crate) fn snake(name: &str) -> String {
    let mut s = words(name).join("_");
    if s.is_empty() {
        s = "field".to_owned();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "n_");
    }
    if KEYWORDS.contains(&s.as_str()) {
        s.push('_');
    }
    s
}

/// `PascalCase` identifier for a type or variant.
pub(crate) fn pascal(name: &str) -> String {
    let mut s = String::new();
    for w in words(name) {
        let mut cs = w.chars();
        if let Some(first) = cs.next() {
            s.push(first.to_ascii_uppercase());
            s.extend(cs);
        }
    }
    if s.is_empty() {
        s = "Value".to_owned();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'V');
    }
    s
}

/// The singular of an English plural, on the last word (`user_ids` → `user_id`,
/// `categories` → `category`, `addresses` → `address`, `user_list` → `user`).
pub(crate) fn singular(name: &str) -> String {
    let mut ws = words(name);
    let Some(last) = ws.pop() else { return name.to_owned() };
    if last == "list" && !ws.is_empty() {
        return ws.join("_");
    }
    let one = if let Some(stem) = last.strip_suffix("ies").filter(|s| s.len() > 1) {
        format!("{stem}y")
    } else if ["sses", "xes", "ches", "shes"].iter().any(|e| last.ends_with(e)) {
        last[..last.len() - 2].to_owned()
    } else if last.ends_with("ss") || last.ends_with("us") || last.ends_with("is") || last.len() <= 2 {
        last
    } else if let Some(stem) = last.strip_suffix('s') {
        stem.to_owned()
    } else {
        last
    };
    ws.push(one);
    ws.join("_")
}

/// Names a type must not take in generated modules: they would shadow the prelude or the
/// derives the generated code uses.
pub(crate) const RESERVED_TYPE_NAMES: &[&str] = &[
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "String",
    "Vec",
    "Box",
    "Default",
    "Clone",
    "Copy",
    "Debug",
    "Send",
    "Sync",
    "Sized",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "From",
    "Into",
    "Iterator",
    "IntoIterator",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "ToString",
    "ToOwned",
    "Self",
    "Serialize",
    "Deserialize",
    "Extend",
    "AsRef",
    "AsMut",
    "Unpin",
    "TryFrom",
    "TryInto",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert_eq!(snake("openId"), "open_id");
        assert_eq!(snake("leaderID"), "leader_id");
        assert_eq!(snake("STZone"), "st_zone");
        assert_eq!(snake("IBAN"), "iban");
        assert_eq!(snake("en-US"), "en_us");
        assert_eq!(snake("custom_field_ID"), "custom_field_id");
        assert_eq!(snake("clockIn_need_photo"), "clock_in_need_photo");
        assert_eq!(snake("i18n_name"), "i18n_name");
        assert_eq!(snake("batchDelete"), "batch_delete");
        assert_eq!(snake("type"), "type_");
        assert_eq!(snake("move"), "move_");
        assert_eq!(snake("enum"), "enum_");
        assert_eq!(snake("3d"), "n_3d");
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("access_record.access_photo"), "AccessRecordAccessPhoto");
        assert_eq!(pascal("zh-CN"), "ZhCn");
        assert_eq!(pascal("1"), "V1");
        assert_eq!(pascal("leave_approvalV2"), "LeaveApprovalV2");
        assert_eq!(pascal("message.receive_v1"), "MessageReceiveV1");
        assert_eq!(pascal("linear-gradient"), "LinearGradient");
    }

    #[test]
    fn singulars() {
        assert_eq!(singular("user_ids"), "user_id");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("addresses"), "address");
        assert_eq!(singular("boxes"), "box");
        assert_eq!(singular("status"), "status");
        assert_eq!(singular("items"), "item");
        assert_eq!(singular("user_list"), "user");
        assert_eq!(singular("members"), "member");
    }
}
