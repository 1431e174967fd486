//! Serde helpers shared by the generated API types (`lark-services`) and event types
//! (`lark-events`), so both use one copy:
//!
//! - [`int64`] / [`int64_vec`] / [`Int64`]: 64-bit integers, which travel as JSON strings
//!   (`"123"`) so no digit is lost; they are read from strings or numbers and written as strings.
//! - [`number`] / [`number_vec`]: numbers whose kind the API list does not settle (most are
//!   integers, some carry fractions), held as `f64`: read from a number or a numeric string,
//!   written as an integer when whole (`3`, not `3.0`).
//! - [`decimal`]: decimals kept as text, read from a JSON string or number.
//! - [`open_enum!`](crate::open_enum): string enums that keep values they do not know as
//!   `Unknown(String)` instead of failing, since the platform adds values over time.
//! - [`secret`]: reading a [`SecretString`] from JSON, and writing one back on purpose.
//! - [`json_struct!`](crate::json_struct): `Serialize` / `Deserialize` for the generated
//!   structs, leaner to build than the serde derives.
//!
//! Every `with` module here works on `Option<_>` fields; use them with `#[serde(default)]`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

use crate::SecretString;

#[doc(hidden)]
pub use serde as __serde;

/// A string enum whose unknown values are kept; implemented by [`open_enum!`](crate::open_enum).
pub trait OpenEnum: Sized {
    /// The value as the platform writes it.
    fn as_str(&self) -> &str;
    /// The enum for a value (unknown values become the `Unknown` variant).
    fn from_wire(value: &str) -> Self;
    /// Whether the value is not one the SDK was generated with.
    fn is_unknown(&self) -> bool;
}

/// Declares a string enum that keeps unknown values.
///
/// ```
/// lark_types::open_enum! {
///     /// Which kind of id `receive_id` is.
///     pub enum ReceiveIdType {
///         /// `open_id`
///         OpenId = "open_id",
///         /// `chat_id`
///         ChatId = "chat_id",
///     }
/// }
/// let t: ReceiveIdType = serde_json::from_str("\"chat_id\"").unwrap();
/// assert_eq!(t, ReceiveIdType::ChatId);
/// let new: ReceiveIdType = serde_json::from_str("\"thread_id\"").unwrap();
/// assert_eq!(new, ReceiveIdType::Unknown("thread_id".into()));
/// assert_eq!(serde_json::to_string(&new).unwrap(), "\"thread_id\"");
/// assert_eq!(ReceiveIdType::from("open_id"), ReceiveIdType::OpenId);
/// ```
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this SDK does not know (the platform adds values over time).
            Unknown(::std::string::String),
        }

        impl $crate::serde_helpers::OpenEnum for $name {
            fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(other) => other.as_str(),
                }
            }
            fn from_wire(value: &str) -> Self {
                match value {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(::std::borrow::ToOwned::to_owned(other)),
                }
            }
            fn is_unknown(&self) -> bool {
                ::std::matches!(self, $name::Unknown(_))
            }
        }

        impl $name {
            /// The value as the platform writes it.
            $vis fn as_str(&self) -> &str {
                $crate::serde_helpers::OpenEnum::as_str(self)
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(value: &str) -> Self {
                $crate::serde_helpers::OpenEnum::from_wire(value)
            }
        }

        impl ::std::convert::From<::std::string::String> for $name {
            fn from(value: ::std::string::String) -> Self {
                $crate::serde_helpers::OpenEnum::from_wire(&value)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::serde_helpers::__serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error>
            where
                S: $crate::serde_helpers::__serde::Serializer,
            {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::serde_helpers::__serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
            where
                D: $crate::serde_helpers::__serde::Deserializer<'de>,
            {
                $crate::serde_helpers::deserialize_open_enum(deserializer)
            }
        }
    };
}

/// Implements `Serialize` and `Deserialize` for a struct whose fields are all `Option`s: a
/// lean replacement for the serde derives, used by the generated code (thousands of structs,
/// where the derives' size dominates build time).
///
/// Reading: fields are matched by wire name, unknown fields are skipped, absent and `null`
/// fields are `None`, a repeated field keeps its last value. Writing: `None` fields are left
/// out. A field may name a kind, a module of this one: `as int64` / `as int64_vec` (integers
/// from strings or numbers, written as strings), `as number` / `as number_vec` (`f64` from numbers
/// or numeric strings, whole values written as integers), `as decimal` (text from a string or
/// number), `as secret` (a `SecretString`).
///
/// ```
/// #[derive(Debug, Default, PartialEq)]
/// struct User {
///     open_id: Option<String>,
///     type_: Option<i32>,
///     dept_id: Option<i64>,
///     score: Option<f64>,
/// }
/// lark_types::json_struct!(User {
///     open_id: "open_id",
///     type_: "type",
///     dept_id: "dept_id" as int64,
///     score: "score" as number,
/// });
///
/// let u: User =
///     serde_json::from_str(r#"{"open_id":"ou_1","type":2,"dept_id":42,"score":4.5,"new":1}"#).unwrap();
/// assert_eq!(u, User { open_id: Some("ou_1".into()), type_: Some(2), dept_id: Some(42), score: Some(4.5) });
/// let u = User { score: Some(3.0), ..u };
/// assert_eq!(
///     serde_json::to_string(&u).unwrap(),
///     r#"{"open_id":"ou_1","type":2,"dept_id":"42","score":3}"#
/// );
/// ```
#[macro_export]
macro_rules! json_struct {
    ($name:ident { $( $field:ident : $wire:literal $(as $kind:ident)? ),* $(,)? }) => {
        impl $crate::serde_helpers::__serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error>
            where
                S: $crate::serde_helpers::__serde::Serializer,
            {
                #[allow(unused_mut)]
                let mut map = $crate::serde_helpers::__serde::Serializer::serialize_map(
                    serializer,
                    ::std::option::Option::None,
                )?;
                $(
                    if let ::std::option::Option::Some(value) = &self.$field {
                        $crate::__json_write!(map, $wire, value $(, $kind)?);
                    }
                )*
                $crate::serde_helpers::__serde::ser::SerializeMap::end(map)
            }
        }

        impl<'de> $crate::serde_helpers::__serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
            where
                D: $crate::serde_helpers::__serde::Deserializer<'de>,
            {
                $crate::serde_helpers::deserialize_fields(deserializer)
            }
        }

        impl $crate::serde_helpers::Fields for $name {
            fn read_field<'de, A>(&mut self, key: &str, map: &mut A) -> ::std::result::Result<(), A::Error>
            where
                A: $crate::serde_helpers::__serde::de::MapAccess<'de>,
            {
                match key {
                    $( $wire => self.$field = $crate::__json_read!(map $(, $kind)?), )*
                    _ => $crate::serde_helpers::skip_value(map)?,
                }
                ::std::result::Result::Ok(())
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __json_write {
    ($map:ident, $wire:literal, $value:ident) => {
        $crate::serde_helpers::__serde::ser::SerializeMap::serialize_entry(&mut $map, $wire, $value)?
    };
    ($map:ident, $wire:literal, $value:ident, $kind:ident) => {
        $crate::serde_helpers::__serde::ser::SerializeMap::serialize_entry(
            &mut $map,
            $wire,
            &$crate::serde_helpers::$kind::Out($value),
        )?
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __json_read {
    ($map:ident) => {
        $crate::serde_helpers::__serde::de::MapAccess::next_value($map)?
    };
    ($map:ident, $kind:ident) => {
        $crate::serde_helpers::__serde::de::MapAccess::next_value_seed(
            $map,
            $crate::serde_helpers::$kind::Seed,
        )?
    };
}

/// A struct read field by field; implemented by [`json_struct!`](crate::json_struct).
pub trait Fields: Default {
    /// Reads the value of field `key` from `map` (skipping it when the field is unknown).
    fn read_field<'de, A>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>
    where
        A: de::MapAccess<'de>;
}

/// Reads a JSON object into a [`Fields`] struct.
pub fn deserialize_fields<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Fields,
{
    struct Obj<T>(std::marker::PhantomData<T>);

    impl<'de, T: Fields> Visitor<'de> for Obj<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut out = T::default();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                out.read_field(key.as_str(), &mut map)?;
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(Obj(std::marker::PhantomData))
}

/// Skips the value of an unknown field.
pub fn skip_value<'de, A: de::MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<de::IgnoredAny>().map(|_| ())
}

/// An object key, borrowed from the input when it can be.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        deserializer.deserialize_str(K)
    }
}

/// Reads an [`OpenEnum`] from a JSON string (numbers and booleans are read as their text, since
/// some enums are numeric codes written as strings).
pub fn deserialize_open_enum<'de, D, E>(deserializer: D) -> Result<E, D::Error>
where
    D: Deserializer<'de>,
    E: OpenEnum,
{
    struct Wire<E>(std::marker::PhantomData<E>);

    impl<E: OpenEnum> Visitor<'_> for Wire<E> {
        type Value = E;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<Er: de::Error>(self, v: &str) -> Result<E, Er> {
            Ok(E::from_wire(v))
        }

        fn visit_i64<Er: de::Error>(self, v: i64) -> Result<E, Er> {
            Ok(E::from_wire(&v.to_string()))
        }

        fn visit_u64<Er: de::Error>(self, v: u64) -> Result<E, Er> {
            Ok(E::from_wire(&v.to_string()))
        }

        fn visit_bool<Er: de::Error>(self, v: bool) -> Result<E, Er> {
            Ok(E::from_wire(if v { "true" } else { "false" }))
        }
    }

    deserializer.deserialize_any(Wire(std::marker::PhantomData))
}

/// An integer from a JSON number or a string holding one (`"-12"`); a float is accepted when it
/// has no fractional part.
#[derive(Clone, Copy)]
struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("integer {v} is out of range for i64")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v >= i64::MIN as f64 && v <= i64::MAX as f64 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("expected an integer, found {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim().parse().map_err(|_| E::custom(format!("expected an integer, found the string {v:?}")))
    }
}

/// `Option<i64>` read from a JSON string or number (or `null`), written as a string.
pub mod int64 {
    use super::*;

    /// Writes the value as a JSON string (or `null`).
    pub fn serialize<S: Serializer>(value: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a JSON number, a string holding an integer, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        deserializer.deserialize_option(OptionOf(IntVisitor))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<i64>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
            deserialize(d)
        }
    }

    /// A set value as [`json_struct!`](crate::json_struct) writes it: a JSON string.
    #[derive(Clone, Copy, Debug)]
    pub struct Out<'a>(pub &'a i64);

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self.0)
        }
    }
}

/// `Option<Vec<i64>>` whose items may each be a JSON string or number, written as strings.
pub mod int64_vec {
    use super::*;

    /// Writes the values as JSON strings (or `null`).
    pub fn serialize<S: Serializer>(value: &Option<Vec<i64>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an array of numbers or integer strings, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<i64>>, D::Error> {
        deserializer.deserialize_option(OptionOf(SeqOf(IntVisitor)))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<Vec<i64>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Vec<i64>>, D::Error> {
            deserialize(d)
        }
    }

    /// Set values as [`json_struct!`](crate::json_struct) writes them: an array of strings.
    #[derive(Clone, Copy, Debug)]
    pub struct Out<'a>(pub &'a Vec<i64>);

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(super::int64::Out))
        }
    }
}

/// An int64 where no field helper reaches (a map's values, nested arrays): read from a JSON
/// string or number, written as a string.
///
/// ```
/// use lark_types::serde_helpers::Int64;
///
/// let v: std::collections::BTreeMap<String, Int64> = serde_json::from_str(r#"{"a":"7","b":8}"#).unwrap();
/// assert_eq!(i64::from(v["a"]), 7);
/// assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":"7","b":"8"}"#);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Int64(pub i64);

impl From<i64> for Int64 {
    fn from(v: i64) -> Self {
        Int64(v)
    }
}

impl From<i32> for Int64 {
    fn from(v: i32) -> Self {
        Int64(i64::from(v))
    }
}

impl From<Int64> for i64 {
    fn from(v: Int64) -> Self {
        v.0
    }
}

impl fmt::Display for Int64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl serde::Serialize for Int64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        int64::Out(&self.0).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntVisitor).map(Int64)
    }
}

/// A number from a JSON number or a string holding one; not NaN or infinite.
#[derive(Clone, Copy)]
struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(E::custom(format!("expected a number, found the string {v:?}"))),
        }
    }
}

/// Writes `v` as an integer when it is whole and exact in an `f64` (|v| ≤ 2^53), else as is.
fn write_number<S: Serializer>(v: f64, serializer: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.fract() == 0.0 && v.abs() <= EXACT {
        serializer.serialize_i64(v as i64)
    } else {
        serializer.serialize_f64(v)
    }
}

/// `Option<f64>` for a number of unknown kind: read from a JSON number or numeric string (or
/// `null`), written as an integer when whole.
pub mod number {
    use super::*;

    /// Writes the value (`3` for `3.0`), or `null`.
    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a JSON number, a string holding one, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        deserializer.deserialize_option(OptionOf(NumberVisitor))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<f64>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
            deserialize(d)
        }
    }

    /// A set value as [`json_struct!`](crate::json_struct) writes it.
    #[derive(Clone, Copy, Debug)]
    pub struct Out<'a>(pub &'a f64);

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            write_number(*self.0, serializer)
        }
    }
}

/// `Option<Vec<f64>>` of numbers of unknown kind (see [`number`]).
pub mod number_vec {
    use super::*;

    /// Writes the values (whole ones as integers), or `null`.
    pub fn serialize<S: Serializer>(value: &Option<Vec<f64>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an array of numbers or numeric strings, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<f64>>, D::Error> {
        deserializer.deserialize_option(OptionOf(SeqOf(NumberVisitor)))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<Vec<f64>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Vec<f64>>, D::Error> {
            deserialize(d)
        }
    }

    /// Set values as [`json_struct!`](crate::json_struct) writes them.
    #[derive(Clone, Copy, Debug)]
    pub struct Out<'a>(pub &'a Vec<f64>);

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(super::number::Out))
        }
    }
}

/// `Option<String>` holding a decimal, read from a JSON string or number, written as a string.
pub mod decimal {
    use super::*;

    #[derive(Clone, Copy)]
    struct DecimalVisitor;

    impl Visitor<'_> for DecimalVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal as a string or a number")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    /// Writes the decimal as a JSON string (or `null`).
    pub fn serialize<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a JSON string or number, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        deserializer.deserialize_option(OptionOf(DecimalVisitor))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
            deserialize(d)
        }
    }

    /// A set value as [`json_struct!`](crate::json_struct) writes it: a JSON string.
    #[derive(Clone, Copy, Debug)]
    pub struct Out<'a>(pub &'a String);

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.0)
        }
    }
}

/// `Option<SecretString>` fields (tokens, tickets): read from a JSON string; written back as the
/// plain secret, which serializing such a struct does on purpose (e.g. to forward an event).
pub mod secret {
    use super::*;

    #[derive(Clone, Copy)]
    struct SecretVisitor;

    impl Visitor<'_> for SecretVisitor {
        type Value = SecretString;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretString, E> {
            Ok(SecretString::new(v))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<SecretString, E> {
            Ok(SecretString::new(v))
        }
    }

    /// Writes the secret's plain value (or `null`).
    pub fn serialize<S: Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serde::Serialize::serialize(&Out(v), serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a JSON string, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
        deserializer.deserialize_option(OptionOf(SecretVisitor))
    }

    /// [`deserialize`] as a seed, for [`json_struct!`](crate::json_struct).
    #[derive(Clone, Copy, Debug)]
    pub struct Seed;

    impl<'de> de::DeserializeSeed<'de> for Seed {
        type Value = Option<SecretString>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<SecretString>, D::Error> {
            deserialize(d)
        }
    }

    /// A set value as [`json_struct!`](crate::json_struct) writes it: the plain secret.
    pub struct Out<'a>(pub &'a SecretString);

    impl fmt::Debug for Out<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("Out").field(self.0).finish()
        }
    }

    impl serde::Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.0.expose_secret())
        }
    }
}

/// `None` for `null`, otherwise the inner visitor's value.
#[derive(Clone, Copy)]
struct OptionOf<V>(V);

impl<'de, V: Visitor<'de> + Copy> Visitor<'de> for OptionOf<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self.0).map(Some)
    }
}

/// A sequence whose items are read by the inner visitor.
#[derive(Clone, Copy)]
struct SeqOf<V>(V);

impl<'de, V: Visitor<'de> + Copy> Visitor<'de> for SeqOf<V> {
    type Value = Vec<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        struct Item<V>(V);
        impl<'de, V: Visitor<'de>> de::DeserializeSeed<'de> for Item<V> {
            type Value = V::Value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
                d.deserialize_any(self.0)
            }
        }
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(Item(self.0))? {
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(default, skip_serializing_if = "Option::is_none", with = "int64")]
        id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "int64_vec")]
        ids: Option<Vec<i64>>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "decimal")]
        amount: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "secret")]
        token: Option<SecretString>,
        kind: Option<Kind>,
    }

    crate::open_enum! {
        /// A test enum.
        enum Kind {
            /// `a`
            A = "a",
            /// `1`
            One = "1",
        }
    }

    #[test]
    fn int64_accepts_strings_and_numbers_and_writes_strings() {
        let s: Sample = serde_json::from_str(r#"{"id":"7","ids":["1",2,3.0],"amount":12.5}"#).unwrap();
        assert_eq!(s.id, Some(7));
        assert_eq!(s.ids, Some(vec![1, 2, 3]));
        assert_eq!(s.amount.as_deref(), Some("12.5"));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"id":"7","ids":["1","2","3"],"amount":"12.5","kind":null}"#
        );
        let s: Sample = serde_json::from_str(r#"{"id":null,"ids":null,"amount":"0.10"}"#).unwrap();
        assert_eq!((s.id, s.ids, s.amount.as_deref()), (None, None, Some("0.10")));
        assert!(serde_json::from_str::<Sample>(r#"{"id":"x"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"id":1.5}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"id":18446744073709551615}"#).is_err());
        let s: Sample = serde_json::from_str(r#"{"id":"-9223372036854775808"}"#).unwrap();
        assert_eq!(s.id, Some(i64::MIN));
    }

    #[test]
    fn open_enums_keep_unknown_values_and_read_numbers() {
        let s: Sample = serde_json::from_str(r#"{"kind":"zzz"}"#).unwrap();
        assert_eq!(s.kind, Some(Kind::Unknown("zzz".into())));
        assert!(s.kind.as_ref().unwrap().is_unknown());
        assert_eq!(serde_json::to_value(&s).unwrap()["kind"], "zzz");
        let s: Sample = serde_json::from_str(r#"{"kind":1}"#).unwrap();
        assert_eq!(s.kind, Some(Kind::One));
        assert_eq!(Kind::from("a").to_string(), "a");
        assert_eq!(Kind::from(String::from("1")), Kind::One);
        assert!(serde_json::from_str::<Sample>(r#"{"kind":{}}"#).is_err());
    }

    #[derive(Debug, Default, PartialEq)]
    struct Lean {
        id: Option<i64>,
        ids: Option<Vec<i64>>,
        amount: Option<String>,
        token: Option<SecretString>,
        kind: Option<Kind>,
        type_: Option<Vec<Lean>>,
        n: Option<f64>,
        ns: Option<Vec<f64>>,
    }
    crate::json_struct!(Lean {
        id: "id" as int64,
        ids: "ids" as int64_vec,
        amount: "amount" as decimal,
        token: "token" as secret,
        kind: "kind",
        type_: "type",
        n: "n" as number,
        ns: "ns" as number_vec,
    });

    #[test]
    fn json_struct_reads_tolerantly_and_writes_set_fields() {
        let raw = r#"{"id":"9","ids":[1,"2"],"amount":3.5,"token":"t-1","kind":"new","extra":{"a":[1]},
            "type":[{"id":1,"type":null}],"id":10,"n":3.0,"ns":[1.5,"2",-4]}"#;
        let v: Lean = serde_json::from_str(raw).unwrap();
        assert_eq!(v.id, Some(10), "the last of a repeated field wins");
        assert_eq!(v.ids, Some(vec![1, 2]));
        assert_eq!(v.amount.as_deref(), Some("3.5"));
        assert_eq!(v.token.as_ref().map(SecretString::expose_secret), Some("t-1"));
        assert_eq!(v.kind, Some(Kind::Unknown("new".into())));
        assert_eq!(v.type_.as_ref().unwrap()[0].id, Some(1));
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"id":"10","ids":["1","2"],"amount":"3.5","token":"t-1","kind":"new","type":[{"id":"1"}],
                "n":3,"ns":[1.5,2,-4]})
        );
        let empty: Lean = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Lean::default());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert!(serde_json::from_str::<Lean>(r#"{"kind":[]}"#).is_err());
        assert!(serde_json::from_str::<Lean>("[]").is_err());
    }

    #[test]
    fn numbers_of_unknown_kind_read_fractions_and_write_whole_values_as_integers() {
        let v: Lean = serde_json::from_str(r#"{"n":2.75,"ns":[1,"0.5"]}"#).unwrap();
        assert_eq!((v.n, v.ns.as_deref()), (Some(2.75), Some(&[1.0, 0.5][..])));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"n":2.75,"ns":[1,0.5]}"#);
        let big = Lean { n: Some(1e300), ..Lean::default() };
        assert_eq!(serde_json::to_string(&big).unwrap(), r#"{"n":1e+300}"#);
        let whole = Lean { n: Some(-9_007_199_254_740_992.0), ..Lean::default() };
        assert_eq!(serde_json::to_string(&whole).unwrap(), r#"{"n":-9007199254740992}"#);
        assert!(serde_json::from_str::<Lean>(r#"{"n":"abc"}"#).is_err());
        assert!(serde_json::from_str::<Lean>(r#"{"n":"NaN"}"#).is_err());
        assert!(serde_json::from_str::<Lean>(r#"{"n":true}"#).is_err());
        let none: Lean = serde_json::from_str(r#"{"n":null,"ns":null}"#).unwrap();
        assert_eq!(none, Lean::default());
    }

    #[test]
    fn int64_newtype_reads_strings_and_numbers_and_writes_strings() {
        let v: Vec<Int64> = serde_json::from_str(r#"["9223372036854775807",-3,4.0]"#).unwrap();
        assert_eq!(v, [Int64(i64::MAX), Int64(-3), Int64(4)]);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["9223372036854775807","-3","4"]"#);
        assert!(serde_json::from_str::<Int64>(r#""x""#).is_err());
        assert!(serde_json::from_str::<Int64>("1.5").is_err());
        assert_eq!(Int64::from(5).to_string(), "5");
        assert_eq!(i64::from(Int64::from(6i64)), 6);
    }

    #[test]
    fn secrets_read_redacted_and_write_plain() {
        let s: Sample = serde_json::from_str(r#"{"token":"t-123"}"#).unwrap();
        let token = s.token.as_ref().unwrap();
        assert_eq!(token.expose_secret(), "t-123");
        assert!(!format!("{s:?}").contains("t-123"));
        assert_eq!(serde_json::to_value(&s).unwrap()["token"], "t-123");
    }
}
