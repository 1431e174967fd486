//! Message content for the `im` APIs: the `msg_type` and the `content` JSON string that
//! sending, replying to and updating a message take.
//!
//! ```
//! use lark_services::content::{Card, MessageContent, Post, PostElement, Text};
//! use lark_services::im::v1::CreateMessageRequest;
//!
//! let hello = Text::new("Hello ").at("ou_1", "Tom").push(", welcome! ").at_all();
//! assert_eq!(hello.to_content(), r#"{"text":"Hello <at user_id=\"ou_1\">Tom</at>, welcome! <at user_id=\"all\"></at>"}"#);
//!
//! let request = CreateMessageRequest::new()
//!     .receive_id_type("chat_id")
//!     .receive_id("oc_1")
//!     .message(&hello);
//! assert_eq!(request.body.msg_type.as_deref(), Some("text"));
//!
//! let notes = Post::new()
//!     .zh_cn("Release", [[PostElement::text("v1.2 is out: "), PostElement::link("notes", "https://example.com")]])
//!     .en_us("Release", [[PostElement::text("see the notes").bold()]]);
//! let card = Card::markdown("Deploy", "**done** in 3 min");
//! # let _ = (notes, card);
//! ```

use serde_json::{json, Map, Value};

/// Content of one message type.
pub trait MessageContent {
    /// The `msg_type` (`text`, `post`, `image`, `file`, `interactive`, ...).
    fn msg_type(&self) -> &'static str;

    /// The `content`: a JSON object serialised as a string.
    fn to_content(&self) -> String;
}

/// A text message, with `@` mentions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    text: String,
}

/// Drops what would break out of an `<at>` tag's attribute or body.
fn at_safe(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '"' | '<' | '>')).collect()
}

impl Text {
    /// A text message.
    pub fn new(text: impl Into<String>) -> Self {
        Text { text: text.into() }
    }

    /// Appends text.
    pub fn push(mut self, text: impl AsRef<str>) -> Self {
        self.text.push_str(text.as_ref());
        self
    }

    /// Appends an `@` mention of a user by `open_id` (or `user_id`), shown as `name`.
    pub fn at(mut self, user_id: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        self.text.push_str(&format!(
            "<at user_id=\"{}\">{}</at>",
            at_safe(user_id.as_ref()),
            at_safe(name.as_ref())
        ));
        self
    }

    /// Appends an `@` mention of everyone in the chat.
    pub fn at_all(mut self) -> Self {
        self.text.push_str("<at user_id=\"all\"></at>");
        self
    }

    /// The text with its mention tags.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl MessageContent for Text {
    fn msg_type(&self) -> &'static str {
        "text"
    }

    fn to_content(&self) -> String {
        json!({ "text": self.text }).to_string()
    }
}

/// One element of a rich-text ([`Post`]) line.
#[derive(Clone, Debug, PartialEq)]
pub struct PostElement(Map<String, Value>);

impl PostElement {
    fn tag(tag: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("tag".into(), Value::from(tag));
        m
    }

    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        let mut m = Self::tag("text");
        m.insert("text".into(), Value::from(text.into()));
        PostElement(m)
    }

    /// A link.
    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Self {
        let mut m = Self::tag("a");
        m.insert("text".into(), Value::from(text.into()));
        m.insert("href".into(), Value::from(href.into()));
        PostElement(m)
    }

    /// An `@` mention of a user by `open_id` (or `user_id`).
    pub fn at(user_id: impl Into<String>) -> Self {
        let mut m = Self::tag("at");
        m.insert("user_id".into(), Value::from(user_id.into()));
        PostElement(m)
    }

    /// An `@` mention of everyone in the chat.
    pub fn at_all() -> Self {
        Self::at("all")
    }

    /// An image uploaded before (`image_key`).
    pub fn image(image_key: impl Into<String>) -> Self {
        let mut m = Self::tag("img");
        m.insert("image_key".into(), Value::from(image_key.into()));
        PostElement(m)
    }

    /// A video (`file_key`) with its cover image (`image_key`).
    pub fn media(file_key: impl Into<String>, image_key: impl Into<String>) -> Self {
        let mut m = Self::tag("media");
        m.insert("file_key".into(), Value::from(file_key.into()));
        m.insert("image_key".into(), Value::from(image_key.into()));
        PostElement(m)
    }

    /// An emoji, by its `emoji_type` (e.g. `SMILE`).
    pub fn emotion(emoji_type: impl Into<String>) -> Self {
        let mut m = Self::tag("emotion");
        m.insert("emoji_type".into(), Value::from(emoji_type.into()));
        PostElement(m)
    }

    /// A code block.
    pub fn code_block(language: impl Into<String>, code: impl Into<String>) -> Self {
        let mut m = Self::tag("code_block");
        m.insert("language".into(), Value::from(language.into()));
        m.insert("text".into(), Value::from(code.into()));
        PostElement(m)
    }

    /// A horizontal rule.
    pub fn hr() -> Self {
        PostElement(Self::tag("hr"))
    }

    /// Markdown (must be the only element of its line).
    pub fn markdown(text: impl Into<String>) -> Self {
        let mut m = Self::tag("md");
        m.insert("text".into(), Value::from(text.into()));
        PostElement(m)
    }

    fn style(mut self, style: &str) -> Self {
        let styles = self.0.entry("style").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = styles {
            list.push(Value::from(style));
        }
        self
    }

    /// Bold (for `text` and links).
    pub fn bold(self) -> Self {
        self.style("bold")
    }

    /// Italic (for `text` and links).
    pub fn italic(self) -> Self {
        self.style("italic")
    }

    /// Underlined (for `text` and links).
    pub fn underline(self) -> Self {
        self.style("underline")
    }

    /// Struck through (for `text` and links).
    pub fn line_through(self) -> Self {
        self.style("lineThrough")
    }
}

/// A rich-text (`post`) message: per language a title and lines of [`PostElement`]s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Post {
    locales: Map<String, Value>,
}

impl Post {
    /// An empty post; add at least one language.
    pub fn new() -> Self {
        Post::default()
    }

    /// Adds (or replaces) the content for a language (`zh_cn`, `en_us`, `ja_jp`, ...).
    pub fn locale<L, E>(mut self, locale: impl Into<String>, title: impl Into<String>, lines: L) -> Self
    where
        L: IntoIterator<Item = E>,
        E: IntoIterator<Item = PostElement>,
    {
        let content: Vec<Value> = lines
            .into_iter()
            .map(|line| Value::Array(line.into_iter().map(|e| Value::Object(e.0)).collect()))
            .collect();
        self.locales.insert(locale.into(), json!({ "title": title.into(), "content": content }));
        self
    }

    /// The Chinese content.
    pub fn zh_cn<L, E>(self, title: impl Into<String>, lines: L) -> Self
    where
        L: IntoIterator<Item = E>,
        E: IntoIterator<Item = PostElement>,
    {
        self.locale("zh_cn", title, lines)
    }

    /// The English content.
    pub fn en_us<L, E>(self, title: impl Into<String>, lines: L) -> Self
    where
        L: IntoIterator<Item = E>,
        E: IntoIterator<Item = PostElement>,
    {
        self.locale("en_us", title, lines)
    }
}

impl MessageContent for Post {
    fn msg_type(&self) -> &'static str {
        "post"
    }

    fn to_content(&self) -> String {
        Value::Object(self.locales.clone()).to_string()
    }
}

/// An image message (upload the image first with `im().v1().image().create(..)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    image_key: String,
}

impl Image {
    /// The image with this `image_key`.
    pub fn new(image_key: impl Into<String>) -> Self {
        Image { image_key: image_key.into() }
    }
}

impl MessageContent for Image {
    fn msg_type(&self) -> &'static str {
        "image"
    }

    fn to_content(&self) -> String {
        json!({ "image_key": self.image_key }).to_string()
    }
}

/// A file message (upload the file first with `im().v1().file().create(..)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    file_key: String,
}

impl File {
    /// The file with this `file_key`.
    pub fn new(file_key: impl Into<String>) -> Self {
        File { file_key: file_key.into() }
    }
}

impl MessageContent for File {
    fn msg_type(&self) -> &'static str {
        "file"
    }

    fn to_content(&self) -> String {
        json!({ "file_key": self.file_key }).to_string()
    }
}

/// An interactive card (`interactive`): card JSON, or a template built in the card editor.
#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    content: Value,
}

impl Card {
    /// A card from its JSON (`{"schema":"2.0","header":{..},"body":{..}}` or the older
    /// `{"config":{..},"elements":[..]}`).
    pub fn json(card: Value) -> Self {
        Card { content: card }
    }

    /// A card made in the card editor, by template id (`AAq...`).
    pub fn template(template_id: impl Into<String>) -> Self {
        Card { content: json!({ "type": "template", "data": { "template_id": template_id.into() } }) }
    }

    /// For a template: the version to use (`1.0.0`; default the latest published).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        if let Some(data) = self.content.get_mut("data").and_then(Value::as_object_mut) {
            data.insert("template_version_name".into(), Value::from(version.into()));
        }
        self
    }

    /// For a template: its variables.
    pub fn variables(mut self, variables: Value) -> Self {
        if let Some(data) = self.content.get_mut("data").and_then(Value::as_object_mut) {
            data.insert("template_variable".into(), variables);
        }
        self
    }

    /// A simple card: a title and a markdown body (card JSON 2.0).
    pub fn markdown(title: impl Into<String>, markdown: impl Into<String>) -> Self {
        Card::json(json!({
            "schema": "2.0",
            "header": { "title": { "tag": "plain_text", "content": title.into() } },
            "body": { "elements": [ { "tag": "markdown", "content": markdown.into() } ] },
        }))
    }

    /// The card JSON.
    pub fn as_json(&self) -> &Value {
        &self.content
    }
}

impl MessageContent for Card {
    fn msg_type(&self) -> &'static str {
        "interactive"
    }

    fn to_content(&self) -> String {
        self.content.to_string()
    }
}

macro_rules! message_setter {
    ($($request:ident),*) => {$(
        impl crate::im::v1::$request {
            /// Sets `msg_type` and `content` from a [`MessageContent`]
            /// ([`Text`], [`Post`], [`Image`], [`File`], [`Card`]).
            pub fn message(self, content: &impl MessageContent) -> Self {
                self.msg_type(content.msg_type()).content(content.to_content())
            }
        }
    )*};
}

message_setter!(CreateMessageRequest, ReplyMessageRequest, UpdateMessageRequest);
