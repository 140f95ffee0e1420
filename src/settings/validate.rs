//! The rules every setting's value must follow, in one place: the command line, a run's
//! `config.json`, resumes and sweeps all check through [`check`] and
//! [`RunSettings::validate`], so a value one refuses, none accepts.

use crate::settings::{role, Role, RunSettings, SettingsMap};
use anyhow::{bail, Result};
use std::path::Path;

/// The largest `batch_size`, `block_size`, `n_embd` and `n_head`, and `n_layer`: far beyond
/// what trains on a CPU, small enough that a typo is an error rather than an allocator abort.
pub const MAX_WIDTH: u64 = 1 << 16;
pub const MAX_LAYERS: u64 = 1 << 10;

/// A rule a setting's value must follow: `Err` says why not, in the command line's words.
pub type Rule = fn(&serde_json::Value) -> std::result::Result<(), String>;

/// The rules of the settings that have one.
const RULES: &[(&str, Rule)] = &[
    ("val_frac", unit_interval),
    ("n_embd", |v| count(v, MAX_WIDTH)),
    ("n_head", |v| count(v, MAX_WIDTH)),
    ("n_layer", |v| count(v, MAX_LAYERS)),
    ("block_size", |v| count(v, MAX_WIDTH)),
    ("init_std", positive),
    ("lr", positive),
    ("beta1", unit_interval),
    ("beta2", unit_interval),
    ("eps", positive),
    ("weight_decay", non_negative),
    (
        "grad_clip",
        |v| if v.is_null() { Ok(()) } else { positive(v) },
    ),
    ("steps", at_least_one),
    ("batch_size", |v| count(v, MAX_WIDTH)),
    ("temperature", positive),
    ("threads", |v| count(v, MAX_WIDTH)),
];

fn count(v: &serde_json::Value, max: u64) -> std::result::Result<(), String> {
    match v.as_u64() {
        Some(0) => Err("must be at least 1".into()),
        Some(n) if n > max => Err(format!("must be at most {max}")),
        Some(_) => Ok(()),
        None if v.as_f64().is_some_and(|x| x < 1.0) => Err("must be at least 1".into()),
        None => Err("must be a whole number".into()),
    }
}

pub fn at_least_one(v: &serde_json::Value) -> std::result::Result<(), String> {
    count(v, u64::MAX)
}

/// Whether `v` is a finite number for which `ok` holds.
fn finite(
    v: &serde_json::Value,
    ok: impl Fn(f64) -> bool,
    why: &str,
) -> std::result::Result<(), String> {
    match v.as_f64() {
        Some(x) if x.is_finite() && ok(x) => Ok(()),
        _ => Err(why.into()),
    }
}

pub fn positive(v: &serde_json::Value) -> std::result::Result<(), String> {
    finite(v, |x| x > 0.0, "must be a positive number")
}

pub fn non_negative(v: &serde_json::Value) -> std::result::Result<(), String> {
    finite(v, |x| x >= 0.0, "must be a non-negative number")
}

pub fn unit_interval(v: &serde_json::Value) -> std::result::Result<(), String> {
    finite(v, |x| (0.0..1.0).contains(&x), "must be in [0, 1)")
}

/// Whether `value` is allowed for the setting `key` (flat name); settings without a rule
/// take any value of their type.
pub fn check(key: &str, value: &serde_json::Value) -> std::result::Result<(), String> {
    RULES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(Ok(()), |(_, rule)| rule(value))
}

/// The command-line flag of the setting `key`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

impl RunSettings {
    /// Every setting against its rule; the error names the first broken one by its flag.
    pub fn validate(&self) -> Result<()> {
        for (key, value) in self.to_map() {
            if let Err(why) = check(&key, &value) {
                bail!("{} {value}: {why}", flag(&key));
            }
        }
        Ok(())
    }
}

/// The stored settings of a run with the ones given on the command line that may change on
/// resume (see [`Role`]); changing a setting of the run's identity is an error, giving it
/// unchanged is not. `config` names the stored settings' file in errors.
pub fn resumed(stored: &RunSettings, given: SettingsMap, config: &Path) -> Result<RunSettings> {
    let mut map = stored.to_map();
    for (key, value) in given {
        if role(&key) == Some(Role::Identity) && !same_value(&key, map.get(&key), &value) {
            bail!(
                "{} cannot change when resuming: the run's settings are in {}",
                flag(&key),
                config.display()
            );
        }
        if key != "input" {
            map.insert(key, value);
        }
    }
    let settings = RunSettings::from_map(&map)?;
    settings.validate()?;
    Ok(settings)
}

/// Whether a given setting is the stored one: paths are compared as the files they name.
fn same_value(key: &str, stored: Option<&serde_json::Value>, given: &serde_json::Value) -> bool {
    let path = |v: &serde_json::Value| v.as_str().and_then(|p| std::fs::canonicalize(p).ok());
    match stored {
        Some(stored) if key == "input" => {
            stored == given || path(stored).is_some_and(|p| path(given) == Some(p))
        }
        stored => stored == Some(given),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag_of_the_first_broken_rule() {
        assert!(RunSettings::default().validate().is_ok());
        let mut s = RunSettings::default();
        s.optimizer.lr = -0.01;
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "--lr -0.01: must be a positive number"
        );
        s.optimizer.lr = 0.01;
        s.schedule.batch_size = 1_000_000_000_000;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("--batch-size 1000000000000: must be at most"),
            "{err}"
        );
        s.schedule.batch_size = 1;
        s.optimizer.grad_clip = Some(0.0);
        assert!(s.validate().is_err());
        assert_eq!(
            check("beta1", &serde_json::json!(1.5)),
            Err("must be in [0, 1)".into())
        );
    }
}
