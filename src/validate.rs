//! Typed validation errors, one shape for every settings section, spec and manifest.
//!
//! A bad value names its key, the value given, what is wrong with it and what is allowed, so
//! `hark check-config`, start-up and SIGHUP all say the same thing the same way:
//! `pipeline.top_k = 0: must be at least 1 (allowed: 1 to 527)`.
//!
//! Owns no policy: each section decides its own ranges and calls [`Invalid::new`].

use std::fmt;

/// One bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The full key as the user writes it (`decision.labels."Dog".on`, `hooks[2].timeout`).
    pub key: String,
    /// The value given, as written (`"0"`, `"-1.5"`, `"\"wav\""`).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// What would be accepted; empty when the problem says it all.
    pub allowed: String,
}

impl Invalid {
    /// A bad `value` for `key`: `problem` says what is wrong.
    pub fn new(
        key: impl Into<String>,
        value: impl fmt::Display,
        problem: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            value: value.to_string(),
            problem: problem.into(),
            allowed: String::new(),
        }
    }

    /// What would be accepted instead.
    pub fn allowed(mut self, allowed: impl Into<String>) -> Self {
        self.allowed = allowed.into();
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.key, self.value, self.problem)?;
        if !self.allowed.is_empty() {
            write!(f, " (allowed: {})", self.allowed)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// Every bad value a check found, in the order it found them; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Invalid>);

impl Problems {
    pub fn push(&mut self, p: Invalid) {
        self.0.push(p);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was found.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Merge another check's result into this one.
    pub fn absorb(&mut self, r: Result<(), Problems>) {
        if let Err(p) = r {
            self.0.extend(p.0);
        }
    }
}

impl From<Invalid> for Problems {
    fn from(p: Invalid) -> Self {
        Problems(vec![p])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The result of a check.
pub type Checked = Result<(), Problems>;

/// Deserializes a count that must be a whole number: `1.5` is an error (naming the value),
/// not silently 1 or 2, as a plain `usize` field would make it through the config layers.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct Whole;
    impl Visitor<'_> for Whole {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number >= 0")
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<usize, E> {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as usize)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// A whole number in `lo..=hi`, or the problem with it.
pub fn count_in(key: &str, v: usize, lo: usize, hi: usize) -> Result<(), Invalid> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Invalid::new(key, v, "out of range").allowed(format!("{lo} to {hi}")))
    }
}

/// A finite number of seconds above 0 (or from 0, with `zero_ok`) and at most `max`, or the
/// problem with it. A bound on every duration keeps what it sizes (buffers, histories)
/// bounded before anything is allocated.
pub fn seconds_in(key: &str, v: f64, zero_ok: bool, max: f64) -> Result<(), Invalid> {
    let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
    if v.is_finite() && low_ok && v <= max {
        Ok(())
    } else {
        let from = if zero_ok { "0" } else { "more than 0" };
        Err(Invalid::new(key, v, "out of range").allowed(format!("{from} to {max} seconds")))
    }
}

/// Keys serde ignored while deserializing TOML `text` into `T`: what `config::load` reports
/// as unknown. For the tests of each section.
#[cfg(test)]
pub(crate) fn ignored_keys<T: serde::de::DeserializeOwned>(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let _: T =
        serde_ignored::deserialize(toml::Deserializer::new(text), |p| keys.push(p.to_string()))
            .expect("the text deserializes");
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_key_value_problem_and_allowed() {
        let p = Invalid::new("pipeline.top_k", 0, "must be at least 1").allowed("1 to 527");
        assert_eq!(
            p.to_string(),
            "pipeline.top_k = 0: must be at least 1 (allowed: 1 to 527)"
        );
        assert_eq!(
            Invalid::new("a", "x", "bad").to_string(),
            "a = x: bad",
            "no allowed part when none is given"
        );
    }

    #[test]
    fn problems_list_one_per_line_and_merge() {
        let mut all = Problems::default();
        assert_eq!(all.clone().into_result(), Ok(()));
        all.push(Invalid::new("a", 1, "bad"));
        all.absorb(Err(Invalid::new("b", 2, "worse").into()));
        all.absorb(Ok(()));
        assert_eq!(all.to_string(), "a = 1: bad\nb = 2: worse");
    }
}
