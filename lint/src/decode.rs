//! Typed decoding straight from the positioned YAML tree, with unknown-field detection.
//!
//! k8s-openapi's types ignore fields they do not know, so a typo such as `completionMod`
//! would silently vanish. This module implements a serde `Deserializer` over [`Node`]: every
//! struct tells it its field names (`deserialize_struct`'s `fields`), so each mapping key that
//! is not one of them is recorded as unknown (with the key's position and the closest field
//! name as a suggestion) and skipped; and every type error is stamped with the position and
//! path of the innermost node that caused it. One pass, no JSON round trip.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::yaml::{Entry, Node, Path, Pos, Seg, Value};

/// A field the type does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Path of the mapping that contains the key.
    pub parent: Path,
    pub key: String,
    pub pos: Pos,
    /// The closest known field name, when one is close enough to be a plausible typo.
    pub suggestion: Option<&'static str>,
}

/// Why a node could not be decoded into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    pub path: Path,
    pub pos: Pos,
    pub message: String,
}

/// Everything wrong with one object's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaProblems {
    pub unknown: Vec<UnknownField>,
    pub invalid: Option<InvalidValue>,
}

/// Decodes `node` into `T`. Returns the value and the unknown fields found on the way, or the
/// decoding error (plus any unknown fields seen before it).
pub fn decode<T: DeserializeOwned>(node: &Node) -> Result<(T, Vec<UnknownField>), SchemaProblems> {
    let ctx = Ctx::default();
    let result = T::deserialize(NodeDe {
        node,
        trail: &Trail::Root,
        ctx: &ctx,
    });
    let unknown = ctx.unknown.into_inner();
    match result {
        Ok(value) => Ok((value, unknown)),
        Err(err) => {
            let (pos, path) = err.at.unwrap_or((node.pos, Path::root()));
            Err(SchemaProblems {
                unknown,
                invalid: Some(InvalidValue {
                    path,
                    pos,
                    message: err.message,
                }),
            })
        }
    }
}

#[derive(Default)]
struct Ctx {
    unknown: RefCell<Vec<UnknownField>>,
}

/// The path to the node being decoded, as a chain of stack frames: it is only turned into a
/// [`Path`] when something needs reporting, so decoding allocates nothing for paths.
enum Trail<'p> {
    Root,
    Key(&'p Trail<'p>, &'p str),
    Index(&'p Trail<'p>, usize),
}

impl Trail<'_> {
    fn to_path(&self) -> Path {
        let mut segs = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                Trail::Root => break,
                Trail::Key(parent, key) => {
                    segs.push(Seg::Key((*key).to_owned()));
                    cur = parent;
                }
                Trail::Index(parent, index) => {
                    segs.push(Seg::Index(*index));
                    cur = parent;
                }
            }
        }
        segs.reverse();
        Path(segs)
    }
}

/// A decoding error; `at` is filled by the innermost node that sees it.
#[derive(Debug)]
pub struct Error {
    message: String,
    at: Option<(Pos, Path)>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Error {
        Error {
            message: msg.to_string(),
            at: None,
        }
    }
}

struct NodeDe<'a, 'p> {
    node: &'a Node,
    trail: &'p Trail<'p>,
    ctx: &'p Ctx,
}

impl NodeDe<'_, '_> {
    fn stamp(&self, mut err: Error) -> Error {
        if err.at.is_none() {
            err.at = Some((self.node.pos, self.trail.to_path()));
        }
        err
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'a> de::Deserializer<'a> for NodeDe<'a, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                trail: self.trail,
                ctx: self.ctx,
            }),
            Value::Map(entries) => {
                visitor.visit_map(MapDe::new(entries, None, self.trail, self.ctx))
            }
        };
        result.map_err(|e| self.stamp(e))
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.stamp(e))
        } else {
            let (trail, ctx, node) = (self.trail, self.ctx, self.node);
            visitor
                .visit_some(NodeDe { node, trail, ctx })
                .map_err(|e| NodeDe { node, trail, ctx }.stamp(e))
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (trail, ctx, node) = (self.trail, self.ctx, self.node);
        visitor
            .visit_newtype_struct(NodeDe { node, trail, ctx })
            .map_err(|e| NodeDe { node, trail, ctx }.stamp(e))
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Map(entries) => {
                visitor.visit_map(MapDe::new(entries, Some(fields), self.trail, self.ctx))
            }
            // Let the visitor produce serde's standard "invalid type" message.
            _ => return self.deserialize_any(visitor),
        };
        result.map_err(|e| self.stamp(e))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumDe {
                entry: &entries[0],
                trail: self.trail,
                ctx: self.ctx,
            }),
            _ => Err(de::Error::invalid_type(
                unexpected(self.node),
                &"a string or a single-key mapping",
            )),
        };
        result.map_err(|e| self.stamp(e))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }
}

fn unexpected(node: &Node) -> de::Unexpected<'_> {
    match &node.value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(*i),
        Value::UInt(u) => de::Unexpected::Unsigned(*u),
        Value::Float(f) => de::Unexpected::Float(*f),
        Value::Str(s) => de::Unexpected::Str(s),
        Value::Seq(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
    }
}

struct SeqDe<'a, 'p> {
    items: &'a [Node],
    index: usize,
    trail: &'p Trail<'p>,
    ctx: &'p Ctx,
}

impl<'a> de::SeqAccess<'a> for SeqDe<'a, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let trail = Trail::Index(self.trail, self.index);
        self.index += 1;
        seed.deserialize(NodeDe {
            node,
            trail: &trail,
            ctx: self.ctx,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapDe<'a, 'p> {
    entries: &'a [Entry],
    /// The struct's field names; `None` for free-form maps (labels, trigger metadata).
    fields: Option<&'static [&'static str]>,
    next: usize,
    current: Option<&'a Entry>,
    trail: &'p Trail<'p>,
    ctx: &'p Ctx,
}

impl<'a, 'p> MapDe<'a, 'p> {
    fn new(
        entries: &'a [Entry],
        fields: Option<&'static [&'static str]>,
        trail: &'p Trail<'p>,
        ctx: &'p Ctx,
    ) -> Self {
        MapDe {
            entries,
            fields,
            next: 0,
            current: None,
            trail,
            ctx,
        }
    }
}

impl<'a> de::MapAccess<'a> for MapDe<'a, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        while let Some(entry) = self.entries.get(self.next) {
            self.next += 1;
            if let Some(fields) = self.fields {
                // A null value is how YAML spells "not set"; the API server ignores it too.
                if !fields.contains(&entry.key.as_str()) {
                    if !entry.value.is_null() {
                        self.ctx.unknown.borrow_mut().push(UnknownField {
                            parent: self.trail.to_path(),
                            key: entry.key.clone(),
                            pos: entry.key_pos,
                            suggestion: closest(&entry.key, fields),
                        });
                    }
                    continue;
                }
            }
            self.current = Some(entry);
            let key: de::value::BorrowedStrDeserializer<'a, Error> =
                de::value::BorrowedStrDeserializer::new(&entry.key);
            return seed.deserialize(key).map(Some).map_err(|mut e: Error| {
                e.at.get_or_insert_with(|| {
                    (entry.key_pos, Trail::Key(self.trail, &entry.key).to_path())
                });
                e
            });
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let entry = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("value requested before its key"))?;
        let trail = Trail::Key(self.trail, &entry.key);
        seed.deserialize(NodeDe {
            node: &entry.value,
            trail: &trail,
            ctx: self.ctx,
        })
    }
}

struct EnumDe<'a, 'p> {
    entry: &'a Entry,
    trail: &'p Trail<'p>,
    ctx: &'p Ctx,
}

impl<'a, 'p> de::EnumAccess<'a> for EnumDe<'a, 'p> {
    type Error = Error;
    type Variant = NodeVariant<'a, 'p>;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let key: de::value::BorrowedStrDeserializer<'a, Error> =
            de::value::BorrowedStrDeserializer::new(&self.entry.key);
        let variant = seed.deserialize(key)?;
        Ok((
            variant,
            NodeVariant {
                entry: self.entry,
                trail: self.trail,
                ctx: self.ctx,
            },
        ))
    }
}

struct NodeVariant<'a, 'p> {
    entry: &'a Entry,
    trail: &'p Trail<'p>,
    ctx: &'p Ctx,
}

impl<'a> de::VariantAccess<'a> for NodeVariant<'a, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, Error> {
        let trail = Trail::Key(self.trail, &self.entry.key);
        seed.deserialize(NodeDe {
            node: &self.entry.value,
            trail: &trail,
            ctx: self.ctx,
        })
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let trail = Trail::Key(self.trail, &self.entry.key);
        de::Deserializer::deserialize_any(
            NodeDe {
                node: &self.entry.value,
                trail: &trail,
                ctx: self.ctx,
            },
            visitor,
        )
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let trail = Trail::Key(self.trail, &self.entry.key);
        de::Deserializer::deserialize_struct(
            NodeDe {
                node: &self.entry.value,
                trail: &trail,
                ctx: self.ctx,
            },
            "",
            fields,
            visitor,
        )
    }
}

/// The known field closest to a misspelled one, if it is close enough to be the intended
/// field (case-insensitive equality, or an edit distance of at most a third of the length).
pub fn closest(key: &str, fields: &[&'static str]) -> Option<&'static str> {
    let key_lower = key.to_ascii_lowercase();
    fields
        .iter()
        .map(|f| (edit_distance(&key_lower, &f.to_ascii_lowercase()), *f))
        .filter(|(d, f)| *d <= (f.len().max(key.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;
    use k8s_openapi::api::batch::v1::Job;

    fn doc(text: &str) -> Node {
        parse_stream(text).unwrap().remove(0)
    }

    #[test]
    fn finds_unknown_fields_at_any_depth_with_suggestions() {
        let node = doc(concat!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: a\n",
            "spec:\n  completionMod: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n",
            "      containers:\n        - name: c\n          image: i:1\n          imagePullPolicyy: Always\n",
            "      nodeSelector: ~\n      bogus: ~\n",
        ));
        let (job, unknown) = decode::<Job>(&node).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("a"));
        let found: Vec<_> = unknown
            .iter()
            .map(|u| (u.parent.to_string(), u.key.as_str(), u.pos, u.suggestion))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "spec".to_owned(),
                    "completionMod",
                    Pos::new(6, 3),
                    Some("completionMode")
                ),
                (
                    "spec.template.spec.containers[0]".to_owned(),
                    "imagePullPolicyy",
                    Pos::new(13, 11),
                    Some("imagePullPolicy")
                ),
            ],
            "null-valued unknown keys are ignored like the API server does"
        );
    }

    #[test]
    fn type_errors_point_at_the_offending_value() {
        let node = doc(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: a\nspec:\n  backoffLimit: \"3\"\n  template: {}\n",
        );
        let problems = decode::<Job>(&node).unwrap_err();
        let invalid = problems.invalid.unwrap();
        assert_eq!(invalid.path.to_string(), "spec.backoffLimit");
        assert_eq!(invalid.pos, Pos::new(6, 17));
        assert!(
            invalid.message.contains("expected i32"),
            "{}",
            invalid.message
        );
    }

    #[test]
    fn missing_required_fields_point_at_their_parent() {
        // k8s-openapi defaults missing required fields (model.rs checks those); serde-derived
        // types such as the KEDA ones report them.
        let node = doc(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata:\n  name: a\nspec:\n  pollingInterval: 2\n",
        );
        let invalid = decode::<crate::keda::ScaledJob>(&node)
            .unwrap_err()
            .invalid
            .unwrap();
        assert_eq!(invalid.path.to_string(), "spec");
        assert_eq!(invalid.pos, Pos::new(6, 3));
        assert!(
            invalid.message.contains("missing field `jobTargetRef`"),
            "{}",
            invalid.message
        );
    }

    #[test]
    fn suggestions_need_a_plausible_typo() {
        assert_eq!(
            closest("completionMod", &["completionMode", "completions"]),
            Some("completionMode")
        );
        assert_eq!(
            closest("RestartPolicy", &["restartPolicy"]),
            Some("restartPolicy")
        );
        assert_eq!(closest("zzz", &["restartPolicy"]), None);
    }
}
