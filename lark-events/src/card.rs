//! Card callbacks and link previews: what arrives ([`CardAction`], [`UrlPreview`]) and what a
//! handler answers ([`CardResponse`], [`UrlPreviewResponse`]).
//!
//! A card action arrives in one of two styles, both given to the same handler as a
//! [`CardAction`]:
//! - **trigger** (`card.action.trigger`, a schema 2.0 callback): answered with
//!   `{"toast":{...},"card":{"type":"raw"|"template","data":...}}`, `{}` for nothing;
//! - **legacy** (the old card request URL): answered with the new card's JSON when the response
//!   is only a raw card, `{}` for nothing, otherwise the same shape as a trigger answer.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who acted on a card or asked for a link preview.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct Operator {
    /// The tenant of the user.
    pub tenant_key: Option<String>,
    /// The user's user_id (present when the app may read it).
    pub user_id: Option<String>,
    /// The user's open_id.
    pub open_id: Option<String>,
    /// The user's union_id.
    pub union_id: Option<String>,
}

/// Where a callback happened.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct CallbackContext {
    /// The link (link previews).
    pub url: Option<String>,
    /// The token of the preview (link previews).
    pub preview_token: Option<String>,
    /// The message carrying the card.
    pub open_message_id: Option<String>,
    /// The chat of the message.
    pub open_chat_id: Option<String>,
}

/// What the user did on the card.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct ActionDetail {
    /// The `value` set on the component (any JSON).
    pub value: Value,
    /// The component's tag, e.g. `button`, `select_static`, `input`.
    pub tag: Option<String>,
    /// The chosen option (selects).
    pub option: Option<String>,
    /// The chosen options (multi-selects).
    pub options: Option<Vec<String>>,
    /// The user's time zone (date pickers).
    pub timezone: Option<String>,
    /// The component's `name`.
    pub name: Option<String>,
    /// The submitted form values (forms).
    pub form_value: Option<Map<String, Value>>,
    /// The typed text (inputs).
    pub input_value: Option<String>,
    /// The checker state (checkers).
    pub checked: Option<bool>,
}

/// Which protocol delivered a card action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CardStyle {
    /// `card.action.trigger`, a schema 2.0 callback.
    #[default]
    Trigger,
    /// The old card request URL.
    Legacy,
}

/// A card action, from either protocol.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CardAction {
    /// Who clicked.
    pub operator: Operator,
    /// What they did.
    pub action: ActionDetail,
    /// The card's update token (`c-...`), valid for a while to update the card later.
    pub token: Option<String>,
    /// Where the card is shown (`im_message`, ...), trigger style only.
    pub host: Option<String>,
    /// How the callback was delivered, trigger style only.
    pub delivery_type: Option<String>,
    /// The message and chat of the card.
    pub context: CallbackContext,
    /// Which protocol delivered it (decides the shape of the answer).
    pub style: CardStyle,
}

#[derive(Deserialize)]
struct TriggerWire {
    #[serde(default)]
    operator: Operator,
    #[serde(default)]
    action: ActionDetail,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    delivery_type: Option<String>,
    #[serde(default)]
    context: CallbackContext,
}

#[derive(Deserialize)]
struct LegacyWire {
    #[serde(default)]
    open_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    union_id: Option<String>,
    #[serde(default)]
    tenant_key: Option<String>,
    #[serde(default)]
    open_message_id: Option<String>,
    #[serde(default)]
    open_chat_id: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    action: ActionDetail,
}

impl CardAction {
    /// Reads the `event` object of a `card.action.trigger` callback.
    pub(crate) fn from_trigger(event: &str) -> Result<CardAction, serde_json::Error> {
        let w: TriggerWire = serde_json::from_str(event)?;
        Ok(CardAction {
            operator: w.operator,
            action: w.action,
            token: w.token,
            host: w.host,
            delivery_type: w.delivery_type,
            context: w.context,
            style: CardStyle::Trigger,
        })
    }

    /// Reads a whole legacy card callback body.
    pub(crate) fn from_legacy(body: &[u8]) -> Result<CardAction, serde_json::Error> {
        let w: LegacyWire = serde_json::from_slice(body)?;
        Ok(CardAction {
            operator: Operator {
                tenant_key: w.tenant_key,
                user_id: w.user_id,
                open_id: w.open_id,
                union_id: w.union_id,
            },
            action: w.action,
            token: w.token,
            host: None,
            delivery_type: None,
            context: CallbackContext {
                url: None,
                preview_token: None,
                open_message_id: w.open_message_id,
                open_chat_id: w.open_chat_id,
            },
            style: CardStyle::Legacy,
        })
    }
}

/// The colour and icon of a toast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ToastKind {
    /// Neutral information.
    Info,
    /// Success.
    Success,
    /// Failure.
    Error,
    /// Warning.
    Warning,
}

/// A short message shown to the user who acted.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Toast {
    /// Colour and icon.
    #[serde(rename = "type")]
    pub kind: ToastKind,
    /// The text.
    pub content: String,
    /// Texts per locale (`zh_cn`, `en_us`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub i18n: BTreeMap<String, String>,
}

impl Toast {
    /// A toast with one text.
    pub fn new(kind: ToastKind, content: impl Into<String>) -> Toast {
        Toast { kind, content: content.into(), i18n: BTreeMap::new() }
    }

    /// Adds the text for a locale, e.g. `en_us`.
    #[must_use]
    pub fn i18n(mut self, locale: impl Into<String>, content: impl Into<String>) -> Toast {
        self.i18n.insert(locale.into(), content.into());
        self
    }
}

/// A card given in an answer: its JSON, or a template from the card builder.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Card {
    /// The card's JSON.
    Raw(Value),
    /// A card template and its variables.
    Template {
        /// The template id (`AAq...`).
        template_id: String,
        /// A published version of the template; the latest when `None`.
        template_version_name: Option<String>,
        /// The template's variables.
        template_variable: Map<String, Value>,
    },
}

impl Card {
    /// A template with no variables yet.
    pub fn template(template_id: impl Into<String>) -> Card {
        Card::Template {
            template_id: template_id.into(),
            template_version_name: None,
            template_variable: Map::new(),
        }
    }

    /// The `{"type": ..., "data": ...}` object of an answer.
    fn to_wire(&self) -> Value {
        match self {
            Card::Raw(card) => serde_json::json!({"type": "raw", "data": card}),
            Card::Template { template_id, template_version_name, template_variable } => {
                let mut data = Map::new();
                data.insert("template_id".into(), Value::from(template_id.as_str()));
                if let Some(v) = template_version_name {
                    data.insert("template_version_name".into(), Value::from(v.as_str()));
                }
                data.insert("template_variable".into(), Value::Object(template_variable.clone()));
                serde_json::json!({"type": "template", "data": data})
            }
        }
    }
}

/// The answer to a card action: a toast, a card that replaces the clicked one, both, or nothing.
///
/// ```
/// use lark_events::{CardResponse, ToastKind};
/// use serde_json::json;
///
/// let answer = CardResponse::toast(ToastKind::Success, "Approved")
///     .with_card(json!({"elements": [{"tag": "markdown", "content": "Approved ✅"}]}));
/// # let _ = answer;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CardResponse {
    /// Shown to the user who acted.
    pub toast: Option<Toast>,
    /// Replaces the card.
    pub card: Option<Card>,
}

impl CardResponse {
    /// Nothing to show: the card stays as it is.
    pub fn empty() -> CardResponse {
        CardResponse::default()
    }

    /// A toast.
    pub fn toast(kind: ToastKind, content: impl Into<String>) -> CardResponse {
        CardResponse { toast: Some(Toast::new(kind, content)), card: None }
    }

    /// A new card (its JSON) replacing the clicked one.
    pub fn card(card: Value) -> CardResponse {
        CardResponse { toast: None, card: Some(Card::Raw(card)) }
    }

    /// Sets the toast.
    #[must_use]
    pub fn with_toast(mut self, toast: Toast) -> CardResponse {
        self.toast = Some(toast);
        self
    }

    /// Sets the new card (its JSON).
    #[must_use]
    pub fn with_card(mut self, card: Value) -> CardResponse {
        self.card = Some(Card::Raw(card));
        self
    }

    /// Sets the new card as a template (see [`Card::template`]).
    #[must_use]
    pub fn with_template(mut self, card: Card) -> CardResponse {
        self.card = Some(card);
        self
    }

    /// The JSON body answering a callback of `style`.
    pub fn to_body(&self, style: CardStyle) -> Bytes {
        if let (CardStyle::Legacy, None, Some(Card::Raw(card))) = (style, &self.toast, &self.card) {
            return Bytes::from(card.to_string());
        }
        let mut out = Map::new();
        if let Some(toast) = &self.toast {
            out.insert("toast".into(), serde_json::to_value(toast).unwrap_or(Value::Null));
        }
        if let Some(card) = &self.card {
            out.insert("card".into(), card.to_wire());
        }
        Bytes::from(Value::Object(out).to_string())
    }
}

/// A `url.preview.get` callback: a link of the app's domains was posted and needs a preview.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct UrlPreview {
    /// Who posted or viewed the link.
    pub operator: Operator,
    /// Where the link is shown (`im_message`, ...).
    pub host: Option<String>,
    /// How the callback was delivered.
    pub delivery_type: Option<String>,
    /// The link, its preview token and its message.
    pub context: CallbackContext,
}

/// The link of an inline preview, per platform.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PreviewUrl {
    /// The link copied by users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_url: Option<String>,
    /// The link opened on iOS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ios: Option<String>,
    /// The link opened on Android.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub android: Option<String>,
    /// The link opened on desktop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pc: Option<String>,
    /// The link opened in a browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

/// The inline (one-line) preview of a link.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InlinePreview {
    /// The title shown in place of the link.
    pub title: String,
    /// Titles per locale.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub i18n_title: BTreeMap<String, String>,
    /// An icon (an uploaded image's key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// Where a click goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<PreviewUrl>,
}

impl InlinePreview {
    /// An inline preview with a title.
    pub fn new(title: impl Into<String>) -> InlinePreview {
        InlinePreview { title: title.into(), ..InlinePreview::default() }
    }
}

/// The answer to a link preview: an inline title, a card, both, or nothing.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct UrlPreviewResponse {
    /// The inline preview.
    pub inline: Option<InlinePreview>,
    /// A card preview.
    pub card: Option<Card>,
}

impl UrlPreviewResponse {
    /// No preview.
    pub fn empty() -> UrlPreviewResponse {
        UrlPreviewResponse::default()
    }

    /// An inline preview.
    pub fn inline(inline: InlinePreview) -> UrlPreviewResponse {
        UrlPreviewResponse { inline: Some(inline), card: None }
    }

    /// Sets a card preview.
    #[must_use]
    pub fn with_card(mut self, card: Card) -> UrlPreviewResponse {
        self.card = Some(card);
        self
    }

    /// The JSON body: `{"inline":{...},"card":{"type":...,"data":...}}`.
    pub fn to_body(&self) -> Bytes {
        let mut out = Map::new();
        if let Some(inline) = &self.inline {
            out.insert("inline".into(), serde_json::to_value(inline).unwrap_or(Value::Null));
        }
        if let Some(card) = &self.card {
            out.insert("card".into(), card.to_wire());
        }
        Bytes::from(Value::Object(out).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn card_answers_per_style() {
        let card = json!({"elements": []});
        assert_eq!(parse(&CardResponse::empty().to_body(CardStyle::Trigger)), json!({}));
        assert_eq!(parse(&CardResponse::empty().to_body(CardStyle::Legacy)), json!({}));
        assert_eq!(parse(&CardResponse::card(card.clone()).to_body(CardStyle::Legacy)), card);
        assert_eq!(
            parse(&CardResponse::card(card.clone()).to_body(CardStyle::Trigger)),
            json!({"card": {"type": "raw", "data": card}})
        );
        let both = CardResponse::toast(ToastKind::Warning, "hm")
            .with_toast(Toast::new(ToastKind::Success, "ok").i18n("en_us", "ok"))
            .with_card(card.clone());
        let expected = json!({
            "toast": {"type": "success", "content": "ok", "i18n": {"en_us": "ok"}},
            "card": {"type": "raw", "data": card},
        });
        assert_eq!(parse(&both.to_body(CardStyle::Trigger)), expected);
        assert_eq!(parse(&both.to_body(CardStyle::Legacy)), expected);
    }

    #[test]
    fn template_cards() {
        let Card::Template { template_id, template_variable, .. } = Card::template("AAq1") else {
            panic!("a template")
        };
        let mut vars = template_variable;
        vars.insert("n".into(), json!(1));
        let t = Card::Template {
            template_id,
            template_version_name: Some("1.0.0".into()),
            template_variable: vars,
        };
        assert_eq!(
            parse(&CardResponse::empty().with_template(t).to_body(CardStyle::Trigger)),
            json!({"card": {"type": "template", "data": {"template_id": "AAq1", "template_version_name": "1.0.0", "template_variable": {"n": 1}}}})
        );
    }

    #[test]
    fn preview_answer() {
        let mut inline = InlinePreview::new("Issue #1");
        inline.url = Some(PreviewUrl { web: Some("https://x/1".into()), ..PreviewUrl::default() });
        assert_eq!(
            parse(&UrlPreviewResponse::inline(inline).to_body()),
            json!({"inline": {"title": "Issue #1", "url": {"web": "https://x/1"}}})
        );
        assert_eq!(parse(&UrlPreviewResponse::empty().to_body()), json!({}));
    }

    #[test]
    fn both_styles_read_into_one_model() {
        let trigger = CardAction::from_trigger(
            r#"{"operator":{"open_id":"ou_1","tenant_key":"t1"},"token":"c-1","action":{"value":{"k":"v"},"tag":"button"},"host":"im_message","context":{"open_message_id":"om_1","open_chat_id":"oc_1"}}"#,
        )
        .unwrap();
        let legacy = CardAction::from_legacy(
            br#"{"open_id":"ou_1","tenant_key":"t1","open_message_id":"om_1","open_chat_id":"oc_1","token":"c-1","action":{"value":{"k":"v"},"tag":"button"}}"#,
        )
        .unwrap();
        assert_eq!(trigger.style, CardStyle::Trigger);
        assert_eq!(legacy.style, CardStyle::Legacy);
        for a in [&trigger, &legacy] {
            assert_eq!(a.operator.open_id.as_deref(), Some("ou_1"));
            assert_eq!(a.action.value, json!({"k": "v"}));
            assert_eq!(a.context.open_message_id.as_deref(), Some("om_1"));
            assert_eq!(a.token.as_deref(), Some("c-1"));
        }
    }
}
