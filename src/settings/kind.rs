//! What an entry of the settings table says, and how a value is read and checked by it: from
//! text (the command line, sweep grids) or from JSON (`config.json`, a Python binding). A
//! value one path refuses, the other refuses too, with the same reason.

use serde_json::Value;

/// One setting: everything the command line, `config.json`, sweeps, resume and `compare`
/// know of it (see `defs.rs` for the table).
#[derive(Debug)]
pub struct Setting {
    /// Its name in `config.json`, sweep grids and `compare` labels; its flag is the name
    /// with `-` for `_` ([`Setting::flag`]).
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    pub role: Role,
    /// Which `config.json` formats record it.
    pub since: Since,
    /// The value's name in `--help` (`--eval-every <N>`); `None`: the name in capitals.
    pub value_name: Option<&'static str>,
    /// One line for `--help`: what it does, what 0 or none means.
    pub help: &'static str,
}

/// The kind of value a setting takes, and the rule it follows.
#[derive(Debug)]
pub enum Kind {
    /// A whole number from 1 to this bound.
    Count(u64),
    /// A whole number, 0 or more.
    Whole,
    /// A number the rule accepts.
    Real(Rule),
    /// One of these names (a [`super::Choice`]'s).
    Choice(fn() -> Vec<&'static str>),
    /// A file's path, as UTF-8 text (`config.json` records it as text).
    Path,
}

/// A rule for a number: `Err` says why not, in the command line's words.
pub type Rule = fn(&Value) -> Result<(), String>;

/// A setting's value when none is given.
#[derive(Debug)]
pub enum DefaultValue {
    /// This value, as the command line writes it.
    Text(&'static str),
    /// No value (`null`); `--help` says what that means.
    Null(&'static str),
    /// The machine's cores.
    Cores,
}

/// What a setting is to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Decides what the run computes: fixed once it starts; labels it in `compare`.
    Identity,
    /// The run's length: `--resume --steps M` extends it; labels it in `compare`.
    Length,
    /// How the run is computed, saved or sampled: may change on resume; not a label.
    Runtime,
}

/// The `config.json` formats that record a setting.
#[derive(Debug)]
pub enum Since {
    /// Every format.
    Always,
    /// Every file of this format and later; an older file without it meant `absent_means`,
    /// the behaviour before the setting existed.
    Format {
        version: u32,
        absent_means: &'static str,
    },
}

impl Setting {
    /// `--val-frac` for `val_frac`.
    pub fn flag(&self) -> String {
        super::validate::flag(self.name)
    }

    /// Whether `null` (no value) is allowed: for settings that are unset by default.
    pub fn nullable(&self) -> bool {
        matches!(self.default, DefaultValue::Null(_))
    }

    /// The default as the command line would give it (`None`: no value).
    pub fn default_text(&self) -> Option<String> {
        match self.default {
            DefaultValue::Text(text) => Some(text.into()),
            DefaultValue::Null(_) => None,
            DefaultValue::Cores => Some(super::available_cores().to_string()),
        }
    }

    /// The default as `config.json` stores it.
    pub fn default_value(&self) -> Value {
        self.default_text().map_or(Value::Null, |text| {
            self.parse_text(&text)
                .expect("the table's defaults follow its rules")
        })
    }

    /// The value meant by `text` (a flag's argument), checked by the rule; `Err` says why not.
    pub fn parse_text(&self, text: &str) -> Result<Value, String> {
        match self.kind {
            Kind::Count(_) | Kind::Whole => {
                parse_number::<u64>(text, |v| self.check(v)).map(Value::from)
            }
            Kind::Real(_) => parse_number::<f64>(text, |v| self.check(v)).map(Value::from),
            Kind::Choice(_) | Kind::Path => {
                let value = Value::String(text.into());
                self.check(&value).map(|()| value)
            }
        }
    }

    /// Whether `value` (as `config.json` holds it) follows the rule; `Err` says why not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if value.is_null() && self.nullable() {
            return Ok(());
        }
        match &self.kind {
            Kind::Count(max) => count(value, *max),
            Kind::Whole => whole(value),
            Kind::Real(rule) => rule(value),
            Kind::Choice(names) => {
                let names = names();
                match value.as_str() {
                    Some(name) if names.contains(&name) => Ok(()),
                    _ => Err(format!("must be one of {}", names.join(", "))),
                }
            }
            Kind::Path => match value {
                Value::String(_) => Ok(()),
                _ => Err("must be a path".into()),
            },
        }
    }

    /// `value` checked by the rule: text is read as the command line reads it, other JSON
    /// taken as it is.
    pub fn value(&self, value: &Value) -> Result<Value, String> {
        match value {
            Value::String(text) => self.parse_text(text),
            other => self.check(other).map(|()| other.clone()),
        }
    }
}

/// `text` as a `T`, after checking it with `rule` as `config.json` would hold it: a negative
/// or out-of-range number gets the rule's own message, not a parse error.
pub fn parse_number<T>(text: &str, rule: impl Fn(&Value) -> Result<(), String>) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    if let Some(number) = number(text) {
        rule(&number)?;
    }
    text.parse::<T>().map_err(|e| e.to_string())
}

/// `text` as a JSON number when it is one: an integer when it is one, else a float (`null`
/// when not finite, which every numeric rule refuses).
fn number(text: &str) -> Option<Value> {
    match (
        text.parse::<u64>(),
        text.parse::<i64>(),
        text.parse::<f64>(),
    ) {
        (Ok(n), _, _) => Some(n.into()),
        (_, Ok(n), _) => Some(n.into()),
        (_, _, Ok(x)) => Some(serde_json::Number::from_f64(x).map_or(Value::Null, Into::into)),
        _ => None,
    }
}

/// A whole number from 1 to `max`.
fn count(v: &Value, max: u64) -> Result<(), String> {
    match v.as_u64() {
        Some(0) => Err("must be at least 1".into()),
        Some(n) if n > max => Err(format!("must be at most {max}")),
        Some(_) => Ok(()),
        None if v.as_f64().is_some_and(|x| x < 1.0) => Err("must be at least 1".into()),
        None => Err("must be a whole number".into()),
    }
}

pub fn at_least_one(v: &Value) -> Result<(), String> {
    count(v, u64::MAX)
}

/// A whole number, 0 or more.
fn whole(v: &Value) -> Result<(), String> {
    match v.as_u64() {
        Some(_) => Ok(()),
        None if v.as_f64().is_some_and(|x| x < 0.0) => Err("must be 0 or more".into()),
        None => Err("must be a whole number".into()),
    }
}

/// Whether `v` is a finite number for which `ok` holds.
fn finite(v: &Value, ok: impl Fn(f64) -> bool, why: &str) -> Result<(), String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && ok(x) => Ok(()),
        _ => Err(why.into()),
    }
}

pub fn positive(v: &Value) -> Result<(), String> {
    finite(v, |x| x > 0.0, "must be a positive number")
}

pub fn non_negative(v: &Value) -> Result<(), String> {
    finite(v, |x| x >= 0.0, "must be a non-negative number")
}

pub fn unit_interval(v: &Value) -> Result<(), String> {
    finite(v, |x| (0.0..1.0).contains(&x), "must be in [0, 1)")
}

/// 0 (greedy: the most likely token) or a temperature whose inverse is finite: sampling
/// divides the logits by it, and 1/T overflows below the smallest normal f64.
pub fn temperature(v: &Value) -> Result<(), String> {
    finite(v, |t| t >= 0.0, "must be 0 (greedy) or a positive number")?;
    match v.as_f64() {
        Some(t) if t > 0.0 && t < f64::MIN_POSITIVE => Err(format!(
            "must be 0 (greedy) or at least {:e} (1/T must be finite)",
            f64::MIN_POSITIVE
        )),
        _ => Ok(()),
    }
}
