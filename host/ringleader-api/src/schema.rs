//! The `schema` key every document carries.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A stable JSON document: its `schema` key's value, e.g. `ringleader.status/v1` (the
/// `title` and `schema` constant of `docs/schemas/status.v1.json`).
pub trait Document {
    const SCHEMA: &'static str;
}

/// The `schema` key of document `D`: written as [`Document::SCHEMA`]; reading anything
/// else is an error naming both, so a client given the wrong document says so instead of
/// misreading it.
pub struct Schema<D>(PhantomData<fn() -> D>);

impl<D: Document> Schema<D> {
    pub const fn new() -> Schema<D> {
        Schema(PhantomData)
    }

    pub const fn as_str(&self) -> &'static str {
        D::SCHEMA
    }
}

impl<D: Document> Default for Schema<D> {
    fn default() -> Schema<D> {
        Schema::new()
    }
}

impl<D> Clone for Schema<D> {
    fn clone(&self) -> Schema<D> {
        *self
    }
}

impl<D> Copy for Schema<D> {}

impl<D> PartialEq for Schema<D> {
    fn eq(&self, _: &Schema<D>) -> bool {
        true
    }
}

impl<D> Eq for Schema<D> {}

impl<D: Document> fmt::Debug for Schema<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", D::SCHEMA)
    }
}

impl<D: Document> fmt::Display for Schema<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(D::SCHEMA)
    }
}

impl<D: Document> Serialize for Schema<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(D::SCHEMA)
    }
}

impl<'de, D: Document> Deserialize<'de> for Schema<D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Schema<D>, De::Error> {
        struct Expect<D>(PhantomData<fn() -> D>);

        impl<D: Document> Visitor<'_> for Expect<D> {
            type Value = Schema<D>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "`{}`", D::SCHEMA)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Schema<D>, E> {
                if v == D::SCHEMA {
                    Ok(Schema::new())
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_str(Expect(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Doc;

    impl Document for Doc {
        const SCHEMA: &'static str = "ringleader.doc/v1";
    }

    #[test]
    fn a_schema_reads_only_its_own_name() {
        let s: Schema<Doc> = serde_json::from_str("\"ringleader.doc/v1\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ringleader.doc/v1\"");
        let e = serde_json::from_str::<Schema<Doc>>("\"ringleader.doc/v2\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value: string \"ringleader.doc/v2\", expected `ringleader.doc/v1` at line 1 column 19"
        );
    }
}
