//! Feature rows as clients send them, read straight from the JSON text: an array of numbers in the
//! model's order, or an object of feature name → number. Values that are not numbers are kept as
//! descriptions (not refused by the parser) so the answer can list every bad feature by name.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
        // The JSON text of the value, already checked to be valid JSON by the parser. A plain array
        // of numbers (what clients send on the hot path) is read by `plain_number_array`: serde_json's
        // exact float parsing was a tenth of the server's CPU under load. Anything else goes through
        // the general reader below.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        if let Some(vector) = plain_number_array(raw.get()) {
            return Ok(vector);
        }
        serde_json::from_str::<General>(raw.get()).map(|g| g.0).map_err(|e| {
            // The position is the outer parser's to add; the inner one counts from the value's start.
            let message = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            D::Error::custom(message.strip_suffix(&position).unwrap_or(&message))
        })
    }
}

/// The numbers of `[n, n, …]` (JSON whitespace allowed) as a vector, or None when the array holds
/// anything else or the text is not an array. `text` must be valid JSON, so each number token
/// follows JSON's grammar, and Rust's parser rounds it exactly as serde_json's `float_roundtrip`
/// does (integers too: both round to the nearest double). A number beyond a double's range
/// (`1e999`) is kept as a bad value, so the answer names its feature.
fn plain_number_array(text: &str) -> Option<FeatureInput> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut values = Vec::with_capacity(inner.len() / 8 + 1);
    let mut bad = Vec::new();
    if !inner.bytes().all(|b| b.is_ascii_whitespace()) {
        for (i, token) in inner.split(',').enumerate() {
            let token = token.trim_matches(|c: char| c.is_ascii_whitespace());
            if !token.bytes().next().is_some_and(|b| b == b'-' || b.is_ascii_digit()) {
                return None; // null, a string, a nested value: the general reader describes it
            }
            match token.parse::<f64>() {
                Ok(x) if x.is_finite() => values.push(x),
                _ => bad.push((i, format!("{token}, beyond the range of a double"))),
            }
        }
    }
    Some(FeatureInput::Vector { values, bad })
}

/// The general reader: arrays with non-numbers and name → value objects.
struct General(FeatureInput);

impl<'de> Deserialize<'de> for General {
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
        deserializer.deserialize_any(V).map(General)
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
        // Inside a request, a wrong type is an error at the field, positioned in the whole body.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Request {
            features: FeatureInput,
        }
        let e = serde_json::from_str::<Request>("{\"features\": \"1,2\"}").unwrap_err();
        assert_eq!(e.classify(), serde_json::error::Category::Data);
        assert!(e.to_string().starts_with("invalid type: string \"1,2\", expected an array of numbers"), "{e}");
        assert_eq!(e.to_string().matches(" at line ").count(), 1, "{e}");
        assert_eq!((e.line(), e.column()), (1, 19), "{e}");
    }

    /// The plain-array reader gives exactly serde_json's values (float_roundtrip) for every kind of
    /// number token, and leaves every other array to the general reader.
    #[test]
    fn plain_arrays_read_exactly_as_serde_json_reads_them() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut tokens: Vec<String> = [
            "0",
            "-0",
            "1",
            "-1",
            "0.1",
            "1e5",
            "1E-5",
            "-2.5e+300",
            "1e-320",
            "4.9e-324",
            "2e-324",
            "1.7976931348623157e308",
            "9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "123456789012345678901234567890",
            "0.30000000000000004",
            "2.2250738585072011e-308",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            let bits = next();
            let x = f64::from_bits(bits);
            if x.is_finite() {
                tokens.push(format!("{x:?}"));
                tokens.push(format!("{x:e}"));
            }
            tokens.push(format!("{}.{}e{}", next() % 100_000, next(), (next() % 620) as i64 - 320));
            tokens.push(format!("{}", next() as i64));
        }
        for chunk in tokens.chunks(37) {
            let text = format!("[ {} ]", chunk.join(" ,\n"));
            let expected: Vec<f64> = serde_json::from_str::<Vec<serde_json::Value>>(&text)
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let Some(FeatureInput::Vector { values: got, bad }) = plain_number_array(&text) else {
                panic!("{text}: not read as a plain array")
            };
            assert!(bad.is_empty(), "{text}: {bad:?}");
            let same =
                got.len() == expected.len() && got.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{text}: {got:?} vs {expected:?}");
            let via_serde: FeatureInput = serde_json::from_str(&text).unwrap();
            assert_eq!(via_serde, FeatureInput::Vector { values: got, bad: vec![] });
        }
        let empty = Some(FeatureInput::Vector { values: vec![], bad: vec![] });
        assert_eq!(plain_number_array("[]"), empty);
        assert_eq!(plain_number_array("[ \n ]"), empty);
        assert_eq!(
            plain_number_array("[1, -1e999, 2]"),
            Some(FeatureInput::Vector {
                values: vec![1.0, 2.0],
                bad: vec![(1, "-1e999, beyond the range of a double".into())]
            })
        );
        for other in ["[1, null]", "[\"1\"]", "[[1]]", "[1, {}]", "[true]", "{\"a\": 1}"] {
            assert_eq!(plain_number_array(other), None, "{other}");
        }
    }
}
