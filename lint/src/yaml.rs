//! A YAML tree that remembers where every key and value came from.
//!
//! k8s-openapi deserializes from any serde source but forgets positions, so the manifests are
//! parsed twice over: once here into a [`Node`] tree (serde-saphyr's `Spanned` gives each node
//! its line and column), and then from that tree's JSON form into typed objects. Every error or
//! finding names a path into the object, and [`Node::locate`] turns the path back into the
//! line and column a person can jump to.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const fn new(line: u32, column: u32) -> Pos {
        Pos { line, column }
    }

    fn from_location(location: &serde_saphyr::Location) -> Pos {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Pos {
            line: clamp(location.line()).max(1),
            column: clamp(location.column()).max(1),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping entry; the key keeps its own position so "unknown field" can point at the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Seg {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Seg {
        Seg::Index(index)
    }
}

/// A path into a document, printed the way `kubectl explain` spells fields:
/// `spec.template.spec.containers[0].image`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// A path from dotted field names; `[n]` suffixes are indices (`containers[0]`).
    pub fn parse(dotted: &str) -> Path {
        let mut segs = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                segs.push(Seg::Key(rest[..open].to_owned()));
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    if let Ok(index) = rest[1..close].parse() {
                        segs.push(Seg::Index(index));
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                segs.push(Seg::Key(rest.to_owned()));
            }
        }
        Path(segs)
    }

    pub fn key(&self, key: &str) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Key(key.to_owned()));
        next
    }

    pub fn index(&self, index: usize) -> Path {
        let mut next = self.clone();
        next.0.push(Seg::Index(index));
        next
    }

    /// Appends a dotted suffix, e.g. `template.path("spec.containers[0]")`.
    pub fn join(&self, dotted: &str) -> Path {
        let mut next = self.clone();
        next.0.extend(Path::parse(dotted).0);
        next
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a path landed: exactly on the node, or on its nearest existing ancestor because the
/// field is absent (a finding about a missing field points at the object that lacks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub pos: Pos,
    pub exact: bool,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Position of the node at `path`: a mapping key's own position when the path ends on a
    /// key (so "unknown field `completionMod`" points at the key), the element's position for
    /// an index, and the nearest ancestor's when part of the path does not exist.
    pub fn locate(&self, path: &Path) -> Located {
        let mut node = self;
        let mut pos = self.pos;
        for (i, seg) in path.0.iter().enumerate() {
            let last = i + 1 == path.0.len();
            match (seg, &node.value) {
                (Seg::Key(key), Value::Map(entries)) => {
                    match entries.iter().find(|e| &e.key == key) {
                        Some(entry) => {
                            pos = if last { entry.key_pos } else { entry.value.pos };
                            node = &entry.value;
                        }
                        None => return Located { pos, exact: false },
                    }
                }
                (Seg::Index(index), Value::Seq(items)) => match items.get(*index) {
                    Some(item) => {
                        pos = item.pos;
                        node = item;
                    }
                    None => return Located { pos, exact: false },
                },
                _ => return Located { pos, exact: false },
            }
        }
        Located { pos, exact: true }
    }

    /// Position of the *value* at `path` (for "invalid value" errors), falling back like
    /// [`Node::locate`].
    pub fn locate_value(&self, path: &Path) -> Located {
        let mut node = self;
        for seg in &path.0 {
            let next = match (seg, &node.value) {
                (Seg::Key(key), Value::Map(entries)) => {
                    entries.iter().find(|e| &e.key == key).map(|e| &e.value)
                }
                (Seg::Index(index), Value::Seq(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => {
                    return Located {
                        pos: self.locate(path).pos,
                        exact: false,
                    };
                }
            }
        }
        Located {
            pos: node.pos,
            exact: true,
        }
    }

    pub fn node_at(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = match (seg, &node.value) {
                (Seg::Key(key), Value::Map(_)) => node.get(key)?,
                (Seg::Index(index), Value::Seq(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The JSON value that the typed deserializers read. Duplicate keys cannot reach here:
    /// the parser rejects them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short description of the node's YAML type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub pos: Option<Pos>,
}

/// Parses a YAML stream into its non-empty documents.
///
/// Duplicate keys are errors (Kubernetes' strict decoding rejects them, and silently keeping
/// one of two values hides a bug); tabs in indentation, unclosed quotes and brackets, bad
/// indentation and unknown anchors come back as [`YamlError`]s with the parser's position.
pub fn parse_stream(text: &str) -> Result<Vec<Node>, YamlError> {
    let options = serde_saphyr::options! {
        // Keep comments out of the event stream: the linter never reads them.
        emit_comments: false,
    };
    serde_saphyr::from_str_multiple_with_options::<Node, Vec<Node>>(text, options).map_err(|err| {
        let pos = err
            .location()
            .map(|l| Pos::from_location(&l))
            .filter(|p| p.line > 0);
        YamlError {
            message: plain_message(&err),
            pos,
        }
    })
}

/// The parser's message without its own "line X column Y" prefix or source snippet: the
/// reports print positions in their own format.
fn plain_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    let text = serde_saphyr::DefaultMessageFormatter
        .format_message(err.without_snippet())
        .into_owned();
    // Some errors carry nested "line X column Y: " prefixes in their text.
    let mut message = text.trim();
    while let Some(rest) = strip_position_prefix(message) {
        message = rest;
    }
    let first = message.lines().next().unwrap_or("invalid YAML").trim();
    // The parser suggests its own options; to a manifest author that is noise.
    let first = first
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(first);
    if let Some(key) = first.strip_prefix("duplicate mapping key: ") {
        return format!(
            "duplicate key `{key}`: each key may appear once per mapping (the API server rejects duplicates)"
        );
    }
    if first.contains("did not find expected key")
        || first.contains("mapping values are not allowed")
    {
        return format!("{first} (check this line's indentation against its sibling keys)");
    }
    first.to_owned()
}

fn strip_position_prefix(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    let rest = rest.strip_prefix("line ")?;
    let (_, rest) = rest.split_once(": ")?;
    Some(rest)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            value: spanned.value,
            pos: Pos::from_location(&spanned.referenced),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::UInt(u))
    }

    fn visit_i128<E: serde::de::Error>(self, i: i128) -> Result<Value, E> {
        i64::try_from(i)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {i} is out of range")))
    }

    fn visit_u128<E: serde::de::Error>(self, u: u128) -> Result<Value, E> {
        u64::try_from(u)
            .map(Value::UInt)
            .map_err(|_| E::custom(format!("integer {u} is out of range")))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key.value,
                key_pos: Pos::from_location(&key.referenced),
                value,
            });
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_and_value_positions_across_documents() {
        let docs =
            parse_stream("a: 1\nb:\n  c: [x, 2]\n---\n# only a comment\n---\nd: ~\n").unwrap();
        assert_eq!(
            docs.len(),
            2,
            "the comment-only document is empty and dropped"
        );
        let c = docs[0].locate(&Path::parse("b.c"));
        assert_eq!(
            c,
            Located {
                pos: Pos::new(3, 3),
                exact: true
            }
        );
        let x = docs[0].locate(&Path::parse("b.c[1]"));
        assert_eq!(x.pos, Pos::new(3, 10));
        let missing = docs[0].locate(&Path::parse("b.nope.deeper"));
        assert_eq!(
            missing,
            Located {
                pos: Pos::new(3, 3),
                exact: false
            }
        );
        assert_eq!(docs[1].get("d").map(Node::is_null), Some(true));
        assert_eq!(docs[1].locate(&Path::parse("d")).pos, Pos::new(7, 1));
    }

    #[test]
    fn syntax_errors_carry_positions_and_no_snippet() {
        let err = parse_stream("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos, Some(Pos::new(2, 1)));
        assert!(err.message.starts_with("duplicate key `a`"), "{err:?}");
        assert!(
            !err.message.contains("DuplicateKeyPolicy"),
            "parser-internal advice is dropped: {err:?}"
        );
        let err = parse_stream("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(2));
        assert!(err.message.contains("tab"), "{err:?}");
        assert!(
            !err.message.contains('\n') && !err.message.contains("line 2"),
            "{err:?}"
        );
    }

    #[test]
    fn paths_print_and_parse_like_kubectl_fields() {
        let path = Path::parse("spec.template.spec.containers[0].image");
        assert_eq!(path.to_string(), "spec.template.spec.containers[0].image");
        assert_eq!(path.0[4], Seg::Index(0));
        assert_eq!(
            Path::root().key("a").index(2).join("b.c").to_string(),
            "a[2].b.c"
        );
    }
}
