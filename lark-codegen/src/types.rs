//! Schema trees to Rust types, per generated module.
//!
//! Each object becomes a struct, each `enum` list an open enum. A module holds one namespace;
//! a nested type is named after its field (`sender` → `Sender`; array items take the singular:
//! `mentions` → `Mention`) and shared by every place with the same name *and* the same shape.
//! When the name is taken by a different shape, the parent type's name is put in front
//! (`ChatSender`), then a number is added (`ChatSender2`). Inputs are processed in a fixed
//! order, so the output is deterministic.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::names::{pascal, singular, snake, RESERVED_TYPE_NAMES};
use crate::spec::Schema;

/// Field names typed as `SecretString` wherever they hold a string: their `Debug` shows nothing.
/// Besides these, every name ending in one of [`SECRET_SUFFIXES`] is a secret.
pub(crate) const SECRET_FIELDS: &[&str] = &[
    // application.v6: the app's secret, event encrypt key and verification token.
    "secret",
    "encryption_key",
    "verification_token",
    // Passwords: meetings (vc, calendar), caldav, drive links, exams, accounts.
    "password",
    // approval.v4 external approvals: the token and key that sign and encrypt callbacks.
    "action_callback_token",
    "action_callback_key",
];

/// Name endings that make a string field a secret: `app_secret`, `ent_email_password`,
/// `*access_token`, `*refresh_token`, `app_ticket`. A bare `ticket` (the id of a drive import
/// or export task) is not one.
pub(crate) const SECRET_SUFFIXES: &[&str] =
    &["_secret", "_password", "access_token", "refresh_token", "_ticket"];

/// Whether a field of this wire name holds a secret (when it holds a string).
pub(crate) fn is_secret(wire: &str) -> bool {
    SECRET_FIELDS.contains(&wire) || SECRET_SUFFIXES.iter().any(|s| wire.ends_with(s))
}

/// `ty` for a field of this wire name: a string whose name says secret becomes [`Ty::Secret`].
pub(crate) fn secret_by_name(ty: Ty, wire: &str) -> Ty {
    if ty == Ty::Str && is_secret(wire) {
        Ty::Secret
    } else {
        ty
    }
}

/// A Rust type of a field (always held in an `Option`, except path values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `String`.
    Str,
    /// `bool`.
    Bool,
    /// `i32` (`format: int32`).
    I32,
    /// `i64` (`format: int64`): read from a string or a number, written as a string.
    I64,
    /// `f64` (`format: float` / `double`).
    F64,
    /// `f64` for a number whose kind the spec does not settle (no `format`, or `int32` with
    /// `format_hint: float`): read from a number or a numeric string, written as an integer
    /// when it is whole.
    Num,
    /// A decimal kept as text.
    Decimal,
    /// `lark_types::serde_helpers::Int64`: an int64 where no field-level helper reaches (inside
    /// maps or nested arrays).
    Int64,
    /// `serde_json::Number`: a number of unknown kind where no field-level helper reaches.
    Number,
    /// `serde_json::Value`: `any`, `anyOf`, or an object without properties.
    Json,
    /// `lark_types::SecretString`.
    Secret,
    /// An upload part: `crate::UploadFile`.
    File,
    /// `Vec<T>`.
    Vec(Box<Ty>),
    /// `BTreeMap<String, T>`.
    Map(Box<Ty>),
    /// A generated struct.
    Struct(String),
    /// A generated open enum.
    Enum(String),
}

impl Ty {
    /// The Rust type, as written in generated code.
    pub(crate) fn rust(&self) -> String {
        match self {
            Ty::Str => "String".into(),
            Ty::Bool => "bool".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::F64 | Ty::Num => "f64".into(),
            Ty::Int64 => "lark_types::serde_helpers::Int64".into(),
            Ty::Decimal => "String".into(),
            Ty::Number => "serde_json::Number".into(),
            Ty::Json => "serde_json::Value".into(),
            Ty::Secret => "lark_types::SecretString".into(),
            Ty::File => "crate::UploadFile".into(),
            Ty::Vec(t) => format!("Vec<{}>", t.rust()),
            Ty::Map(t) => format!("std::collections::BTreeMap<String, {}>", t.rust()),
            Ty::Struct(n) | Ty::Enum(n) => n.clone(),
        }
    }

    /// The `json_struct!` kind a field of `Option<Self>` is (de)serialized as (a module of
    /// `lark_types::serde_helpers`).
    pub(crate) fn serde_kind(&self) -> Option<&'static str> {
        match self {
            Ty::I64 => Some("int64"),
            Ty::Vec(t) if **t == Ty::I64 => Some("int64_vec"),
            Ty::Num => Some("number"),
            Ty::Vec(t) if **t == Ty::Num => Some("number_vec"),
            Ty::Decimal => Some("decimal"),
            Ty::Secret => Some("secret"),
            _ => None,
        }
    }

    /// A key that identifies the type in a shape.
    fn key(&self) -> String {
        format!("{self:?}")
    }

    /// The same type where no field-level helper can reach: int64s become the `Int64` newtype,
    /// numbers of unknown kind `serde_json::Number` (kept exactly as sent), decimals and secrets
    /// plain values.
    fn deep(self) -> Ty {
        match self {
            Ty::I64 => Ty::Int64,
            Ty::Num => Ty::Number,
            Ty::Decimal => Ty::Json,
            Ty::Secret => Ty::Str,
            Ty::Vec(t) => Ty::Vec(Box::new(t.deep())),
            Ty::Map(t) => Ty::Map(Box::new(t.deep())),
            other => other,
        }
    }
}

/// One struct field.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    /// Rust name.
    pub(crate) ident: String,
    /// Name on the wire.
    pub(crate) wire: String,
    /// Type (held in an `Option`).
    pub(crate) ty: Ty,
    /// Listed as required by the spec.
    pub(crate) required: bool,
}

/// A generated struct.
#[derive(Clone, Debug)]
pub(crate) struct StructDef {
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
    /// Reached from a request: gets setters.
    pub(crate) settable: bool,
    /// Where it was first seen, for its doc.
    pub(crate) origin: String,
}

/// A generated open enum.
#[derive(Clone, Debug)]
pub(crate) struct EnumDef {
    pub(crate) name: String,
    /// `(variant, wire value)`.
    pub(crate) variants: Vec<(String, String)>,
    pub(crate) origin: String,
}

/// Which side of a call a schema belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Sent by the caller: structs get setters.
    Request,
    /// Received.
    Response,
}

/// Counters for the generator's summary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) structs: usize,
    pub(crate) enums: usize,
    pub(crate) fields: usize,
    pub(crate) reused: usize,
    /// Names written as a type alias of an earlier struct of the same shape.
    pub(crate) aliased: usize,
}

/// A struct name that is an alias of an earlier struct of the same shape.
#[derive(Clone, Debug)]
pub(crate) struct AliasDef {
    /// The struct it stands for.
    pub(crate) target: String,
    /// Where it was first seen, for its doc.
    pub(crate) origin: String,
}

/// The types of one generated module.
#[derive(Debug, Default)]
pub(crate) struct TypeSpace {
    /// name → shape key.
    names: BTreeMap<String, String>,
    pub(crate) structs: BTreeMap<String, StructDef>,
    /// Struct names that alias a struct of the same shape under another name.
    pub(crate) aliases: BTreeMap<String, AliasDef>,
    /// shape key → the struct first defined with it.
    shapes: BTreeMap<String, String>,
    pub(crate) enums: BTreeMap<String, EnumDef>,
    pub(crate) stats: Stats,
}

impl TypeSpace {
    /// Claims `name` for something that is not a shared type (a request, an accessor).
    ///
    /// # Panics
    ///
    /// When the name is taken: two APIs of one module would get the same type name.
    pub(crate) fn reserve(&mut self, name: &str) {
        let prev = self.names.insert(name.to_owned(), format!("reserved {name}"));
        assert!(prev.is_none(), "type name {name} is generated twice in one module");
    }

    /// Finds the name for a shape: the preferred name, else `parent + preferred`, else with a
    /// number. Returns the name and whether the shape is new under it.
    fn alloc(&mut self, preferred: &str, parent: &str, key: &str) -> (String, bool) {
        let qualified = format!("{parent}{preferred}");
        let mut candidates = vec![preferred.to_owned(), qualified.clone()];
        candidates.extend((2..).map(|n| format!("{qualified}{n}")).take(1000));
        for cand in candidates {
            if RESERVED_TYPE_NAMES.contains(&cand.as_str()) {
                continue;
            }
            match self.names.get(&cand) {
                Some(k) if k == key => {
                    self.stats.reused += 1;
                    return (cand, false);
                }
                Some(_) => continue,
                None => {
                    self.names.insert(cand.clone(), key.to_owned());
                    return (cand, true);
                }
            }
        }
        unreachable!("a thousand names for {preferred} are taken")
    }

    /// The type of a schema node.
    ///
    /// `preferred` is the name an object or enum here would take, `parent` the name of the
    /// enclosing type, `origin` a phrase for docs (``"`im.v1.message.create` response"``).
    pub(crate) fn resolve(
        &mut self,
        schema: &Schema,
        preferred: &str,
        parent: &str,
        origin: &str,
        side: Side,
    ) -> Ty {
        match schema.ty.as_deref() {
            Some("string") => match &schema.enum_values {
                Some(values) if !values.is_empty() => self.open_enum(values, preferred, parent, origin),
                _ => Ty::Str,
            },
            Some("number") | Some("integer") => number_ty(schema),
            Some("boolean") => Ty::Bool,
            Some("file") => Ty::File,
            Some("array") => {
                let item = match &schema.items {
                    Some(items) => self.resolve(items, preferred, parent, origin, side),
                    None => Ty::Json,
                };
                Ty::Vec(Box::new(if matches!(item, Ty::I64 | Ty::Num) { item } else { item.deep() }))
            }
            Some("map") => {
                let value = match &schema.values {
                    Some(v) => self.resolve(v, &format!("{preferred}Value"), parent, origin, side),
                    None => Ty::Json,
                };
                Ty::Map(Box::new(value.deep()))
            }
            Some("object") if !schema.props().is_empty() => {
                Ty::Struct(self.object(schema, preferred, parent, origin, side))
            }
            _ => Ty::Json,
        }
    }

    /// The fields of an object schema (named and typed, not yet a struct).
    pub(crate) fn fields(&mut self, schema: &Schema, parent: &str, origin: &str, side: Side) -> Vec<Field> {
        let mut fields: Vec<Field> = Vec::new();
        for (wire, child) in schema.props() {
            let mut f = self.field(wire, child, schema.is_required(wire), None, parent, origin, side);
            if fields.iter().any(|g| g.ident == f.ident) {
                let mut n = 2;
                while fields.iter().any(|g| g.ident == format!("{}_{n}", f.ident)) {
                    n += 1;
                }
                f.ident = format!("{}_{n}", f.ident);
            }
            fields.push(f);
        }
        fields
    }

    /// One field: its Rust name and type. A nested object or enum is named `preferred`, or by
    /// default after the field (the singular for arrays). A string whose name [`is_secret`] is a
    /// `SecretString`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn field(
        &mut self,
        wire: &str,
        child: &Schema,
        required: bool,
        preferred: Option<String>,
        parent: &str,
        origin: &str,
        side: Side,
    ) -> Field {
        let preferred = preferred.unwrap_or_else(|| match child.ty.as_deref() {
            Some("array") => pascal(&singular(wire)),
            _ => pascal(wire),
        });
        let ty = secret_by_name(self.resolve(child, &preferred, parent, origin, side), wire);
        self.stats.fields += 1;
        Field { ident: snake(wire), wire: wire.to_owned(), ty, required }
    }

    /// A struct for an object schema; returns its name.
    pub(crate) fn object(
        &mut self,
        schema: &Schema,
        preferred: &str,
        parent: &str,
        origin: &str,
        side: Side,
    ) -> String {
        let fields = self.fields(schema, preferred, origin, side);
        self.define_struct(preferred, parent, origin, side, fields)
    }

    /// The struct a name stands for: itself, or the struct it aliases.
    fn struct_target<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, |a| a.target.as_str())
    }

    /// The shape key of a field type, naming aliased structs by the struct they stand for (so
    /// structs that differ only in the names of same-shaped children have one shape).
    fn ty_key(&self, ty: &Ty) -> String {
        match ty {
            Ty::Struct(n) => format!("Struct({})", self.struct_target(n)),
            Ty::Vec(t) => format!("Vec({})", self.ty_key(t)),
            Ty::Map(t) => format!("Map({})", self.ty_key(t)),
            other => other.key(),
        }
    }

    /// Defines (or reuses) a struct with these fields. A new name for a shape that already has a
    /// struct becomes a type alias of it, unless the name must be a type of its own (`exact`).
    fn define(
        &mut self,
        preferred: &str,
        parent: &str,
        origin: &str,
        side: Side,
        fields: Vec<Field>,
        exact: bool,
    ) -> String {
        let mut key = String::from("struct{");
        for f in &fields {
            let _ = write!(key, "{}:{}:{};", f.wire, self.ty_key(&f.ty), f.required);
        }
        key.push('}');
        let (name, new) = self.alloc(preferred, parent, &key);
        let existing = self.shapes.get(&key).cloned();
        if new {
            match existing {
                Some(target) if !exact => {
                    self.stats.aliased += 1;
                    self.aliases.insert(name.clone(), AliasDef { target, origin: origin.to_owned() });
                }
                _ => {
                    self.stats.structs += 1;
                    self.shapes.entry(key).or_insert_with(|| name.clone());
                    self.structs.insert(
                        name.clone(),
                        StructDef { name: name.clone(), fields, settable: false, origin: origin.to_owned() },
                    );
                }
            }
        }
        if side == Side::Request {
            let target = self.struct_target(&name).to_owned();
            if let Some(def) = self.structs.get_mut(&target) {
                def.settable = true;
            }
        }
        name
    }

    /// Defines (or reuses) a struct with these fields; see [`TypeSpace::define`].
    pub(crate) fn define_struct(
        &mut self,
        preferred: &str,
        parent: &str,
        origin: &str,
        side: Side,
        fields: Vec<Field>,
    ) -> String {
        self.define(preferred, parent, origin, side, fields, false)
    }

    /// Defines (or reuses) a struct under an exact name, which must be free or hold the same
    /// shape. It is always a type of its own (never an alias), so trait impls for it are unique.
    pub(crate) fn exact_struct(&mut self, name: &str, origin: &str, side: Side, fields: Vec<Field>) {
        let got = self.define(name, "", origin, side, fields, true);
        assert_eq!(got, name, "type name {name} is taken by another shape");
    }

    fn open_enum(&mut self, values: &[serde_json::Value], preferred: &str, parent: &str, origin: &str) -> Ty {
        let mut wires: Vec<String> = Vec::new();
        for v in values {
            let w = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !wires.contains(&w) {
                wires.push(w);
            }
        }
        let key = format!("enum{wires:?}");
        let (name, new) = self.alloc(preferred, parent, &key);
        if new {
            let mut variants: Vec<(String, String)> = Vec::new();
            for w in wires {
                let mut ident = pascal(&w);
                if ident == "Unknown" {
                    ident.push_str("Value");
                }
                if variants.iter().any(|(i, _)| *i == ident) {
                    let mut n = 2;
                    while variants.iter().any(|(i, _)| *i == format!("{ident}{n}")) {
                        n += 1;
                    }
                    ident = format!("{ident}{n}");
                }
                variants.push((ident, w));
            }
            self.stats.enums += 1;
            self.enums
                .insert(name.clone(), EnumDef { name: name.clone(), variants, origin: origin.to_owned() });
        }
        Ty::Enum(name)
    }
}

/// The type of a `number` / `integer` schema. `format` decides when it is given, except that
/// `int32` with `format_hint: float` (the sources disagree) is a [`Ty::Num`]; with no format the
/// number is a [`Ty::Num`] (most are integers, some are not: an `f64` reads both, and a whole
/// value is written back as an integer).
pub(crate) fn number_ty(schema: &Schema) -> Ty {
    let hint_float = schema.format_hint.as_deref() == Some("float");
    match schema.format.as_deref() {
        Some("int32") if hint_float => Ty::Num,
        Some("int32") => Ty::I32,
        Some("int64") => Ty::I64,
        Some("float") | Some("double") => Ty::F64,
        Some("decimal") => Ty::Decimal,
        _ => Ty::Num,
    }
}

/// Escapes text for a Rust string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// Writes a struct with its (de)serialization (and its setters when it is settable).
pub(crate) fn emit_struct(out: &mut String, def: &StructDef, doc: &str) {
    let _ = writeln!(out, "/// {doc}");
    out.push_str("#[derive(Clone, Debug, Default, PartialEq)]\n#[non_exhaustive]\n");
    let _ = writeln!(out, "pub struct {} {{", def.name);
    for f in &def.fields {
        let _ = writeln!(out, "/// `{}`{}.", f.wire, if f.required { " (required)" } else { "" });
        let _ = writeln!(out, "pub {}: Option<{}>,", f.ident, f.ty.rust());
    }
    out.push_str("}\n\n");
    let fields: Vec<String> = def
        .fields
        .iter()
        .map(|f| match f.ty.serde_kind() {
            Some(kind) => format!("{}: {} as {kind}", f.ident, lit(&f.wire)),
            None => format!("{}: {}", f.ident, lit(&f.wire)),
        })
        .collect();
    let _ = writeln!(out, "lark_types::json_struct!({} {{ {} }});\n", def.name, fields.join(", "));
    if def.settable && !def.fields.is_empty() {
        let _ = writeln!(out, "impl {} {{", def.name);
        for f in &def.fields {
            emit_setter(out, &f.ident, &format!("self.{}", f.ident), &format!("Sets `{}`.", f.wire), &f.ty);
        }
        out.push_str("}\n\n");
    }
}

/// Method names clippy's `should_implement_trait` expects to come from a std trait when they
/// take `self` and one argument.
const STD_TRAIT_METHODS: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "rem",
    "shl",
    "shr",
    "bitand",
    "bitor",
    "bitxor",
    "eq",
    "cmp",
    "partial_cmp",
    "from_iter",
    "extend",
    "hash",
];

/// Writes every struct and enum of `ts`, sorted by name. A struct documented in `docs` gets
/// that text; the others, and enums, are described as "of `scope`" with where they were first
/// seen.
pub(crate) fn emit_types(out: &mut String, ts: &TypeSpace, docs: &BTreeMap<String, String>, scope: &str) {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        Struct,
        Alias,
        Enum,
    }
    let mut kinds: Vec<(&String, Kind)> = ts.structs.keys().map(|k| (k, Kind::Struct)).collect();
    kinds.extend(ts.aliases.keys().map(|k| (k, Kind::Alias)));
    kinds.extend(ts.enums.keys().map(|k| (k, Kind::Enum)));
    kinds.sort();
    // The doc of a struct or alias: given, or where its shape was first seen.
    let doc_of = |name: &str, origin: &str| match docs.get(name) {
        Some(doc) => doc.clone(),
        None => format!("An object of {scope} (first seen in {origin})."),
    };
    for (name, kind) in kinds {
        match kind {
            Kind::Struct => {
                let def = &ts.structs[name];
                emit_struct(out, def, &doc_of(name, &def.origin));
            }
            Kind::Alias => {
                let def = &ts.aliases[name];
                let doc = doc_of(name, &def.origin);
                let _ = writeln!(
                    out,
                    "/// {doc}
///
/// The same shape as [`{0}`], so the same type.
pub type {name} = {0};
",
                    def.target
                );
            }
            Kind::Enum => {
                let def = &ts.enums[name];
                emit_enum(out, def, &format!("Values of {scope} (first seen in {}).", def.origin));
            }
        }
    }
}

/// Writes a builder setter `name` that stores `Some(value)` into `place`.
pub(crate) fn emit_setter(out: &mut String, name: &str, place: &str, doc: &str, ty: &Ty) {
    let _ = writeln!(out, "/// {doc}");
    let (param, value) = setter_param(ty);
    if STD_TRAIT_METHODS.contains(&name) {
        // A field named like a std operator method (`add`, `sub`, ...): the setter keeps the
        // platform's name, which clippy would read as a missing trait impl.
        out.push_str("#[allow(clippy::should_implement_trait)]\n");
    }
    let _ = writeln!(out, "pub fn {name}(mut self, value: {param}) -> Self {{");
    let _ = writeln!(out, "{place} = Some({value});");
    out.push_str("self\n}\n\n");
}

/// The parameter type of a setter for `ty`, and the expression that turns `value` into `ty`.
pub(crate) fn setter_param(ty: &Ty) -> (String, &'static str) {
    match ty {
        Ty::Vec(item) => (
            format!("impl IntoIterator<Item = impl Into<{}>>", item.rust()),
            "value.into_iter().map(Into::into).collect()",
        ),
        other => (format!("impl Into<{}>", other.rust()), "value.into()"),
    }
}

/// Writes an open enum.
pub(crate) fn emit_enum(out: &mut String, def: &EnumDef, doc: &str) {
    out.push_str("lark_types::open_enum! {\n");
    let _ = writeln!(out, "/// {doc}");
    let _ = writeln!(out, "pub enum {} {{", def.name);
    for (ident, wire) in &def.variants {
        let _ = writeln!(out, "/// `{}`", wire.replace('`', "'"));
        let _ = writeln!(out, "{ident} = {},", lit(wire));
    }
    out.push_str("}\n}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn same_name_and_shape_is_one_type_and_different_shapes_are_qualified() {
        let mut ts = TypeSpace::default();
        let a = schema(
            r#"{"type":"object","properties":{"sender":{"type":"object","properties":{"id":{"type":"string"}}}}}"#,
        );
        let b = schema(
            r#"{"type":"object","properties":{"sender":{"type":"object","properties":{"id":{"type":"number","format":"int64"}}}}}"#,
        );
        let first = ts.object(&a, "ARes", "", "a", Side::Response);
        let again = ts.object(&a, "ARes", "", "a", Side::Request);
        let other = ts.object(&b, "BRes", "", "b", Side::Response);
        assert_eq!(first, again);
        assert!(ts.structs["Sender"].settable, "reuse from a request makes it settable");
        assert_eq!(ts.structs["BRes"].fields[0].ty, Ty::Struct("BResSender".into()));
        assert_eq!(ts.structs["BResSender"].fields[0].ty, Ty::I64);
        assert_eq!(other, "BRes");
    }

    #[test]
    fn a_shape_seen_under_a_second_name_is_an_alias_except_for_exact_names() {
        let mut ts = TypeSpace::default();
        let owner = |child: &str| {
            schema(&format!(
                r#"{{"type":"object","properties":{{"{child}":{{"type":"object","properties":{{"id":{{"type":"string"}}}}}}}}}}"#
            ))
        };
        // `Creator` has the shape of `Sender`, so `Chat` has the shape of `Message`.
        assert_eq!(ts.object(&owner("sender"), "Message", "", "a", Side::Response), "Message");
        assert_eq!(ts.object(&owner("sender"), "Chat", "", "b", Side::Request), "Chat");
        assert_eq!(ts.aliases["Chat"].target, "Message");
        assert!(ts.structs["Message"].settable, "an alias used in a request makes its struct settable");
        assert!(ts.structs["Sender"].settable);
        let other = schema(
            r#"{"type":"object","properties":{"creator":{"type":"object","properties":{"id":{"type":"string"}}}}}"#,
        );
        ts.object(&other, "Doc", "", "c", Side::Response);
        assert_eq!(ts.aliases["Creator"].target, "Sender");
        assert!(ts.structs.contains_key("Doc"), "a different wire name is a different shape");
        // An exact name is always a type of its own (it may carry trait impls).
        let fields = ts.fields(&owner("sender"), "Exact", "d", Side::Response);
        ts.exact_struct("ExactEvent", "d", Side::Response, fields);
        assert!(ts.structs.contains_key("ExactEvent") && !ts.aliases.contains_key("ExactEvent"));
        assert_eq!(ts.stats.aliased, 2);
        let mut out = String::new();
        emit_types(&mut out, &ts, &BTreeMap::new(), "the tests");
        assert!(out.contains("pub type Chat = Message;"));
        assert!(out.contains("pub type Creator = Sender;"));
        assert_eq!(out.matches("pub struct ").count(), ts.structs.len());
    }

    #[test]
    fn scalars_containers_and_enums() {
        let mut ts = TypeSpace::default();
        let s = schema(
            r#"{"type":"object","properties":{
                "a":{"type":"number"},"b":{"type":"number","format_hint":"float"},
                "c":{"type":"array","items":{"type":"number","format":"int64"}},
                "d":{"type":"map","values":{"type":"number"}},
                "e":{"type":"string","enum":["x-y","1","unknown"]},
                "f":{"type":"object"},"g":{"anyOf":[{"type":"string"}]},
                "access_token":{"type":"string"},"Type":{"type":"boolean"}}}"#,
        );
        ts.object(&s, "Top", "", "t", Side::Response);
        let f = &ts.structs["Top"].fields;
        let tys: Vec<String> = f.iter().map(|f| f.ty.rust()).collect();
        assert_eq!(
            tys,
            [
                "f64",
                "f64",
                "Vec<i64>",
                "std::collections::BTreeMap<String, serde_json::Number>",
                "E",
                "serde_json::Value",
                "serde_json::Value",
                "lark_types::SecretString",
                "bool"
            ]
        );
        assert_eq!(f[0].ty, Ty::Num, "a number of unknown format reads fractions too");
        assert_eq!(f[0].ty.serde_kind(), Some("number"));
        assert_eq!(f[1].ty, Ty::Num);
        assert_eq!(f[2].ty.serde_kind(), Some("int64_vec"));
        assert_eq!(f[8].ident, "type_");
        let variants: Vec<&str> = ts.enums["E"].variants.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(variants, ["XY", "V1", "UnknownValue"]);
    }

    #[test]
    fn number_formats_and_hints() {
        let ty = |json: &str| number_ty(&schema(json));
        assert_eq!(ty(r#"{"type":"number","format":"int32"}"#), Ty::I32);
        assert_eq!(ty(r#"{"type":"number","format":"int32","format_hint":"float"}"#), Ty::Num);
        assert_eq!(ty(r#"{"type":"number","format":"int64"}"#), Ty::I64);
        assert_eq!(ty(r#"{"type":"number","format":"double","format_hint":"float"}"#), Ty::F64);
        assert_eq!(ty(r#"{"type":"number","format":"float"}"#), Ty::F64);
        assert_eq!(ty(r#"{"type":"number","format":"decimal","format_hint":"float"}"#), Ty::Decimal);
        assert_eq!(ty(r#"{"type":"integer"}"#), Ty::Num);
        assert_eq!(Ty::I64.serde_kind(), Some("int64"));

        let mut ts = TypeSpace::default();
        let s = schema(
            r#"{"type":"object","properties":{
                "m":{"type":"map","values":{"type":"number","format":"int64"}},
                "n":{"type":"array","items":{"type":"array","items":{"type":"number","format":"int64"}}},
                "v":{"type":"array","items":{"type":"number"}}}}"#,
        );
        ts.object(&s, "Top", "", "t", Side::Response);
        let f = &ts.structs["Top"].fields;
        let tys: Vec<String> = f.iter().map(|f| f.ty.rust()).collect();
        assert_eq!(
            tys,
            [
                "std::collections::BTreeMap<String, lark_types::serde_helpers::Int64>",
                "Vec<Vec<lark_types::serde_helpers::Int64>>",
                "Vec<f64>"
            ]
        );
        assert_eq!(f[2].ty.serde_kind(), Some("number_vec"));
    }

    #[test]
    fn secrets_by_name_and_suffix_but_not_ordinary_ids() {
        for name in [
            "secret",
            "app_secret",
            "password",
            "ent_email_password",
            "access_token",
            "user_access_token",
            "refresh_token",
            "app_ticket",
            "verification_token",
            "encryption_key",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in
            ["ticket", "ticket_id", "token", "file_token", "page_token", "app_token", "tenant_key", "key"]
        {
            assert!(!is_secret(name), "{name}");
        }
        let mut ts = TypeSpace::default();
        let s = schema(
            r#"{"type":"object","properties":{
                "meeting_settings":{"type":"object","properties":{"password":{"type":"string"}}},
                "allow_refresh_token":{"type":"boolean"}}}"#,
        );
        ts.object(&s, "Top", "", "t", Side::Request);
        assert_eq!(ts.structs["MeetingSettings"].fields[0].ty, Ty::Secret, "nested secrets too");
        assert_eq!(ts.structs["Top"].fields[1].ty, Ty::Bool, "only strings become secrets");
    }

    #[test]
    fn reserved_names_are_avoided() {
        let mut ts = TypeSpace::default();
        let s = schema(
            r#"{"type":"object","properties":{"option":{"type":"object","properties":{"k":{"type":"string"}}}}}"#,
        );
        ts.object(&s, "Top", "", "t", Side::Response);
        assert!(ts.structs.contains_key("TopOption"));
        assert!(!ts.structs.contains_key("Option"));
    }
}
