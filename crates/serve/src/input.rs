//! Feature rows as clients send them, read straight from the JSON text: an array of numbers in the
//! model's order, or an object of feature name → number. Values that are not numbers are kept as
//! descriptions (not refused by the parser) so the answer can list every bad feature by name.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum FeatureInput {
    /// In the model's feature order; `bad` holds (position, what was sent) for non-numbers.
    Vector { values: Vec<f64>, bad: Vec<(usize, String)> },
    /// Name → value in the order sent; `bad` holds (name, what was sent) for non-numbers.
    Named { values: Vec<(String, f64)>, bad: Vec<(String, String)> },
}

impl FeatureInput {
    /// Feature `name`, if sent by name as a number.
    pub fn get(&self, name: &str) -> Option<f64> {
        match self {
            FeatureInput::Named { values, .. } => values.iter().find(|(n, _)| n == name).map(|(_, v)| *v),
            FeatureInput::Vector { .. } => None,
        }
    }

    /// As JSON, for the prediction log of a fallback answer (bad values as their descriptions).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FeatureInput::Vector { values, bad } => {
                let mut out: Vec<serde_json::Value> = values.iter().map(|v| serde_json::json!(v)).collect();
                for (i, what) in bad {
                    if *i <= out.len() {
                        out.insert(*i, serde_json::json!(what));
                    }
                }
                serde_json::Value::Array(out)
            }
            FeatureInput::Named { values, bad } => {
                let mut map = serde_json::Map::new();
                for (n, v) in values {
                    map.insert(n.clone(), serde_json::json!(v));
                }
                for (n, what) in bad {
                    map.insert(n.clone(), serde_json::json!(what));
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

/// One value: a number, or a description of what came instead.
enum Value {
    Number(f64),
    Other(String),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Other(format!("{v:?}")))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Other(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Other("null".into()))
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Other("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Value::Other("an array".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Value::Other("an object".into()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for FeatureInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FeatureInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers in the model's feature order, or an object of feature name → number")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FeatureInput, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                let mut bad = Vec::new();
                let mut i = 0;
                while let Some(v) = seq.next_element::<Value>()? {
                    match v {
                        Value::Number(x) => values.push(x),
                        Value::Other(what) => bad.push((i, what)),
                    }
                    i += 1;
                }
                Ok(FeatureInput::Vector { values, bad })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeatureInput, A::Error> {
                let mut values = Vec::with_capacity(map.size_hint().unwrap_or(64));
                let mut bad = Vec::new();
                while let Some((name, v)) = map.next_entry::<String, Value>()? {
                    match v {
                        Value::Number(x) => values.push((name, x)),
                        Value::Other(what) => bad.push((name, what)),
                    }
                }
                Ok(FeatureInput::Named { values, bad })
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_and_objects_keeping_what_is_not_a_number() {
        let v: FeatureInput = serde_json::from_str(r#"[1, 2.5, null, "NaN", -3e2]"#).unwrap();
        assert_eq!(
            v,
            FeatureInput::Vector {
                values: vec![1.0, 2.5, -300.0],
                bad: vec![(2, "null".into()), (3, "\"NaN\"".into())]
            }
        );
        let n: FeatureInput = serde_json::from_str(r#"{"a": 1, "b": [1], "c": 0.1}"#).unwrap();
        assert_eq!(n.get("c"), Some(0.1));
        assert_eq!(n.get("b"), None);
        assert!(serde_json::from_str::<FeatureInput>("\"1,2\"")
            .unwrap_err()
            .to_string()
            .contains("an array of numbers"));
        // Exact: the same bits as Rust's own parser.
        let x: FeatureInput = serde_json::from_str("[0.30000000000000004, 5.233]").unwrap();
        assert_eq!(x, FeatureInput::Vector { values: vec![0.30000000000000004, 5.233], bad: vec![] });
    }
}
