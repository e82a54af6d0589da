//! The test definition file as written: serde structures with spans, before validation.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub test: Spanned<RawTest>,
    #[serde(default)]
    pub bench: Option<RawBench>,
    #[serde(default)]
    pub step: Option<Spanned<Vec<Spanned<RawStep>>>>,
    #[serde(default)]
    pub scenario: Option<Spanned<Vec<Spanned<RawScenario>>>>,
    #[serde(default)]
    pub data: Option<Vec<Spanned<RawData>>>,
    #[serde(default)]
    pub monitor: Option<RawMonitor>,
    #[serde(default)]
    pub service: Option<Spanned<RawService>>,
    #[serde(default)]
    pub threshold: super::threshold::RawThresholds,
    #[serde(default)]
    pub generator: Option<Spanned<RawGenerator>>,
}

/// `[test]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTest {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub url: Spanned<String>,
    /// `"1.1"` (default), `"2"` or `"auto"`.
    pub http: Option<Spanned<String>>,
    /// Requests in flight per user on its HTTP/2 connection.
    pub streams: Option<Spanned<i64>>,
}

/// `[bench]`; times in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBench {
    pub cycles: Option<Spanned<Vec<Spanned<i64>>>>,
    pub duration: Option<Spanned<f64>>,
    pub startup_delay: Option<Spanned<f64>>,
    pub sleep_time_min: Option<Spanned<f64>>,
    pub sleep_time_max: Option<Spanned<f64>>,
    pub sleep_time: Option<Spanned<f64>>,
    pub cycle_time: Option<Spanned<f64>>,
    pub apdex_t: Option<Spanned<f64>>,
    pub ok_codes: Option<Spanned<OneOrMany<i64>>>,
    pub timeout: Option<Spanned<f64>>,
    pub insecure: Option<Spanned<bool>>,
    /// Open model: test executions started per second, one value per cycle.
    pub rate: Option<Spanned<OneOrMany<i64>>>,
    /// Open model: most executions in flight at once.
    pub max_users: Option<Spanned<i64>>,
    /// Seed of the users' random streams (scenario picks, think times, random rows).
    pub seed: Option<Spanned<i64>>,
    /// Ask for compressed answers (default true).
    pub compression: Option<Spanned<bool>>,
    /// The steps' default for `resources` (`true`, `false` or `"all"`).
    pub resources: Option<Spanned<toml::Value>>,
    /// Extra connections per user that fetch page resources.
    pub resource_connections: Option<Spanned<i64>>,
}

/// `[[scenario]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub step: Option<Spanned<Vec<Spanned<RawStep>>>>,
}

/// `[[step]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: Spanned<String>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub headers: Option<Ordered<Spanned<String>, Spanned<String>>>,
    pub body: Option<Spanned<String>>,
    pub form: Option<Spanned<Ordered<Spanned<String>, Spanned<String>>>>,
    pub json: Option<Spanned<toml::Value>>,
    pub body_file: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<OneOrMany<i64>>>,
    pub contains: Option<Spanned<OneOrMany<String>>>,
    pub not_contains: Option<Spanned<OneOrMany<String>>>,
    pub regex: Option<Spanned<OneOrMany<String>>>,
    pub capture: Option<Vec<Spanned<RawCapture>>>,
    pub http: Option<Spanned<String>>,
    /// A WebSocket step: the socket's path or `ws(s)://` URL.
    pub websocket: Option<Spanned<String>>,
    pub send: Option<Spanned<String>>,
    pub send_binary: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    /// Ask for a compressed answer; default the bench's `compression`.
    pub compression: Option<Spanned<bool>>,
    /// Fetch the page's resources: `true` (same origin), `false` or `"all"` (every origin).
    pub resources: Option<Spanned<toml::Value>>,
}

/// `[[step.capture]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCapture {
    pub name: Spanned<String>,
    pub regex: Option<Spanned<String>>,
    pub json: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
}

/// `[monitor]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMonitor {
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[service]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub command: Spanned<Vec<String>>,
    pub host: Option<String>,
    pub ready_url: Spanned<String>,
    pub ready_timeout: Option<Spanned<f64>>,
}

/// `[generator]`: a program as the load generator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenerator {
    pub command: Spanned<Vec<String>>,
    pub steps: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub files: Option<Vec<Spanned<String>>>,
}

/// A value written either alone (`contains = "x"`) or as a list (`contains = ["x", "y"]`).
#[derive(Debug)]
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> V<T> {
            fn one<E: de::Error, X: IntoDeserializer<'de, E>>(x: X) -> Result<OneOrMany<T>, E> {
                T::deserialize(x.into_deserializer()).map(|t| OneOrMany(vec![t]))
            }
        }

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Self::one(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Self::one(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Self::one(v.to_string())
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Self::one(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
        }

        d.deserialize_any(V(PhantomData))
    }
}

/// A TOML table kept in the order it was written.
#[derive(Debug)]
pub(crate) struct Ordered<K, V>(pub Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Ordered<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = Ordered<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }

        d.deserialize_map(Vis(PhantomData))
    }
}

/// `[[data]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawData {
    pub name: Spanned<String>,
    pub file: Spanned<String>,
    pub order: Option<Spanned<String>>,
    pub on_end: Option<Spanned<String>>,
}
