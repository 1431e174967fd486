//! The seeded contact users, serialised once at start so that replies cost no JSON work.

use bytes::Bytes;
use serde_json::json;

/// Seeded users `1..=n`: user `N` has open_id `ou_N`, user_id `u_N`, union_id `on_N`.
#[derive(Debug)]
pub(crate) struct Users {
    /// Each user object, serialised.
    objects: Vec<Bytes>,
    /// Each user's complete `GET /open-apis/contact/v3/users/:id` reply.
    replies: Vec<Bytes>,
}

/// The user object of seeded user `n`.
fn user_object(n: usize) -> serde_json::Value {
    json!({
        "open_id": format!("ou_{n}"),
        "user_id": format!("u_{n}"),
        "union_id": format!("on_{n}"),
        "name": format!("User {n}"),
        "en_name": format!("User {n}"),
        "nickname": "",
        "email": format!("user{n}@example.com"),
        "enterprise_email": "",
        "mobile_visible": true,
        "gender": 0,
        "city": "",
        "country": "",
        "employee_no": format!("E{n:05}"),
        "employee_type": 1,
        "join_time": 1_700_000_000 + n as i64,
        "is_tenant_manager": n == 1,
        "job_title": "Engineer",
        "department_ids": ["od_testkit"],
        "leader_user_id": if n == 1 { String::new() } else { "ou_1".to_owned() },
        "status": {
            "is_activated": true,
            "is_exited": false,
            "is_frozen": false,
            "is_resigned": false,
            "is_unjoin": false,
        },
        "avatar": {
            "avatar_72": format!("https://example.invalid/avatar/{n}/72.png"),
            "avatar_240": format!("https://example.invalid/avatar/{n}/240.png"),
            "avatar_640": format!("https://example.invalid/avatar/{n}/640.png"),
            "avatar_origin": format!("https://example.invalid/avatar/{n}/origin.png"),
        },
    })
}

impl Users {
    /// Seeds `n` users.
    pub(crate) fn seed(n: usize) -> Users {
        let mut objects = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(n);
        for i in 1..=n {
            let user = user_object(i);
            objects.push(Bytes::from(serde_json::to_vec(&user).unwrap_or_default()));
            let reply = json!({"code": 0, "msg": "success", "data": {"user": user}});
            replies.push(Bytes::from(serde_json::to_vec(&reply).unwrap_or_default()));
        }
        Users { objects, replies }
    }

    /// Number of seeded users.
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// Index of the user whose id of type `id_type` (`open_id`, `user_id`, `union_id`) is `id`.
    pub(crate) fn find(&self, id: &str, id_type: &str) -> Option<usize> {
        let prefix = match id_type {
            "open_id" => "ou_",
            "user_id" => "u_",
            "union_id" => "on_",
            _ => return None,
        };
        let digits = id.strip_prefix(prefix)?;
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = digits.parse().ok()?;
        (1..=self.len()).contains(&n).then(|| n - 1)
    }

    /// The ready-made reply for the user at `index`.
    pub(crate) fn reply(&self, index: usize) -> Bytes {
        self.replies[index].clone()
    }

    /// A list reply for users `offset..offset + size` (clamped), with `has_more` and the next
    /// `page_token` when more remain.
    pub(crate) fn list_reply(&self, offset: usize, size: usize) -> Bytes {
        let end = offset.saturating_add(size).min(self.len());
        let start = offset.min(end);
        let page = &self.objects[start..end];
        let has_more = end < self.len();
        let mut out = Vec::with_capacity(64 + page.iter().map(|b| b.len() + 1).sum::<usize>());
        out.extend_from_slice(br#"{"code":0,"msg":"success","data":{"has_more":"#);
        out.extend_from_slice(if has_more { b"true" } else { b"false" });
        if has_more {
            out.extend_from_slice(br#","page_token":""#);
            out.extend_from_slice(page_token(end).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(br#","items":["#);
        for (i, user) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(user);
        }
        out.extend_from_slice(b"]}}");
        out.into()
    }
}

/// The page token that resumes at `offset`.
pub(crate) fn page_token(offset: usize) -> String {
    format!("pt_{offset}")
}

/// The offset a page token resumes at, if it is one of ours.
pub(crate) fn parse_page_token(token: &str) -> Option<usize> {
    let digits = token.strip_prefix("pt_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_list() {
        let users = Users::seed(3);
        assert_eq!(users.find("ou_1", "open_id"), Some(0));
        assert_eq!(users.find("u_3", "user_id"), Some(2));
        assert_eq!(users.find("on_2", "union_id"), Some(1));
        assert_eq!(users.find("ou_4", "open_id"), None);
        assert_eq!(users.find("ou_01", "open_id"), None);
        assert_eq!(users.find("u_1", "open_id"), None);
        let v: serde_json::Value = serde_json::from_slice(&users.list_reply(0, 2)).unwrap();
        assert_eq!(v["data"]["has_more"], true);
        assert_eq!(v["data"]["page_token"], "pt_2");
        assert_eq!(v["data"]["items"][1]["open_id"], "ou_2");
        let v: serde_json::Value = serde_json::from_slice(&users.list_reply(2, 2)).unwrap();
        assert_eq!(v["data"]["has_more"], false);
        assert!(v["data"].get("page_token").is_none());
        assert_eq!(v["data"]["items"].as_array().unwrap().len(), 1);
        assert_eq!(parse_page_token("pt_12"), Some(12));
        assert_eq!(parse_page_token("pt_"), None);
        assert_eq!(parse_page_token("x"), None);
    }
}
