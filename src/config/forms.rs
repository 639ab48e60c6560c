//! How typed settings are written: durations as whole milliseconds, counts that must be at least
//! one as plain numbers. Each module here is a `#[serde(with = …)]` adapter that reads and writes
//! exactly the form bbb-webhooks 3.x uses, and turns a value that has no meaning into an error at
//! load (reported against the setting's key and source by [`super::load()`]).
//!
//! This module owns only those forms; the settings themselves and their defaults are in
//! [`super::settings`], and checks that span several settings are in [`super::validate`].

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const AT_LEAST_ONE: &str = "must be at least 1";

/// The duration's count of whole milliseconds (exact for every duration read here).
fn to_millis(d: &Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A list of durations written as milliseconds (`0` allowed).
pub mod millis_list {
    use super::*;

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(to_millis))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(Duration::from_millis)
            .collect())
    }
}

/// A duration written as milliseconds that must be at least 1 ms.
pub mod positive_millis {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        to_millis(d).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(D::Error::custom(AT_LEAST_ONE)),
            ms => Ok(Duration::from_millis(ms)),
        }
    }
}

/// A count that must be at least 1.
pub mod at_least_one {
    use super::*;

    pub fn serialize<S: Serializer>(n: &NonZeroUsize, s: S) -> Result<S::Ok, S::Error> {
        n.get().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroUsize, D::Error> {
        NonZeroUsize::new(usize::deserialize(d)?).ok_or_else(|| D::Error::custom(AT_LEAST_ONE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "millis_list")]
        list: Vec<Duration>,
        #[serde(with = "positive_millis")]
        positive: Duration,
        #[serde(with = "at_least_one")]
        count: NonZeroUsize,
    }

    #[test]
    fn numbers_in_numbers_out() {
        let written = json!({"list": [0, 100, 60000], "positive": 5000, "count": 3});
        let sample: Sample = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(sample.list[2], Duration::from_secs(60));
        assert_eq!(sample.positive, Duration::from_secs(5));
        assert_eq!(sample.count.get(), 3);
        assert_eq!(serde_json::to_value(&sample).unwrap(), written);
    }

    #[test]
    fn zero_where_one_is_needed_is_refused() {
        let zero_duration = json!({"list": [], "positive": 0, "count": 1});
        let err = serde_json::from_value::<Sample>(zero_duration).unwrap_err();
        assert_eq!(err.to_string(), AT_LEAST_ONE);
        let zero_count = json!({"list": [], "positive": 1, "count": 0});
        let err = serde_json::from_value::<Sample>(zero_count).unwrap_err();
        assert_eq!(err.to_string(), AT_LEAST_ONE);
        let text = json!({"list": [], "positive": "x", "count": 1});
        let err = serde_json::from_value::<Sample>(text).unwrap_err();
        assert!(err.to_string().contains("expected u64"), "{err}");
    }
}
