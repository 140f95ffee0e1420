//! A run's settings as plain data, and the one table that says everything else about them
//! (`defs.rs`): names, flags, defaults, rules, roles and help. `config.json` stores them,
//! sweeps vary them, resume keeps or changes them by role, `compare` labels runs by them;
//! the command line (the binary's `cli`) builds its flags from the table, and this module
//! knows nothing of it. [`RunSettings::from_pairs`] builds settings from (name, value)
//! pairs, as the command line and a Python binding give them.
//!
//! Uses `numerics` and `model`.

mod choice;
mod defs;
mod kind;
pub mod validate;

pub use choice::{Choice, DataMode};
pub use defs::*;
pub use kind::{
    at_least_one, parse_number, positive, DefaultValue, Kind, Role, Rule, Setting, Since,
};

use crate::model::config::ModelConfig;
use crate::model::optim::AdamConfig;
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;

/// The machine's cores: the default `threads`.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every setting, in the table's order.
pub fn all() -> impl Iterator<Item = &'static Setting> {
    GROUPS.iter().flat_map(|(_, settings)| settings.iter())
}

/// The setting named `name`, if there is one.
pub fn setting(name: &str) -> Option<&'static Setting> {
    all().find(|s| s.name == name)
}

/// The role of the setting `name`, if it is one.
pub fn role(name: &str) -> Option<Role> {
    setting(name).map(|s| s.role)
}

/// The newest `config.json` format a setting of the table needs (see [`Since`]): a run
/// directory's format is at least this.
pub const SETTINGS_FORMAT: u32 = newest_format();

const fn newest_format() -> u32 {
    let mut newest = 1;
    let mut g = 0;
    while g < GROUPS.len() {
        let settings = GROUPS[g].1;
        let mut i = 0;
        while i < settings.len() {
            if let Since::Format { version, .. } = &settings[i].since {
                if *version > newest {
                    newest = *version;
                }
            }
            i += 1;
        }
        g += 1;
    }
    newest
}

impl ModelArgs {
    pub fn config(&self, vocab_size: usize) -> ModelConfig {
        ModelConfig {
            vocab_size,
            n_embd: self.n_embd,
            n_head: self.n_head,
            n_layer: self.n_layer,
            block_size: self.block_size,
            activation: self.activation,
        }
    }
}

impl OptimizerSettings {
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }
}

/// Settings as flat name → JSON value, and back.
pub type SettingsMap = BTreeMap<String, serde_json::Value>;

impl Default for RunSettings {
    fn default() -> Self {
        let defaults = all()
            .map(|s| (s.name.to_string(), s.default_value()))
            .collect();
        RunSettings::from_map(&defaults).expect("the table's defaults are settings")
    }
}

impl RunSettings {
    /// The settings by flat name (the groups dissolved).
    pub fn to_map(&self) -> SettingsMap {
        let mut out = SettingsMap::new();
        if let serde_json::Value::Object(groups) =
            serde_json::to_value(self).expect("settings serialize")
        {
            for (_, group) in groups {
                if let serde_json::Value::Object(fields) = group {
                    out.extend(fields);
                }
            }
        }
        out
    }

    /// The settings from flat names; every setting must be present, and no other. The
    /// values are typed, not checked by their rules ([`RunSettings::validate`] does).
    pub fn from_map(map: &SettingsMap) -> Result<Self> {
        if let Some(unknown) = map.keys().find(|k| setting(k).is_none()) {
            return Err(unknown_setting(unknown));
        }
        let mut groups = serde_json::Map::new();
        for (group, settings) in GROUPS {
            let mut values = serde_json::Map::new();
            for s in *settings {
                let value = map
                    .get(s.name)
                    .with_context(|| format!("setting {} is missing", s.name))?;
                values.insert(s.name.into(), value.clone());
            }
            groups.insert(group.to_string(), values.into());
        }
        serde_json::from_value(groups.into()).context("settings do not parse")
    }

    /// The defaults with each of `pairs` (a setting's name and its value, as text or JSON)
    /// applied, each checked by its rule, then the whole validated: what a caller outside
    /// the command line (a Python binding: `train(n_embd=64, ...)`) builds a run from. The
    /// error is one line in the command line's words (`invalid value '-1' for '--lr': ...`).
    pub fn from_pairs<'a, I>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (&'a str, serde_json::Value)>,
    {
        let mut map = RunSettings::default().to_map();
        for (name, value) in pairs {
            map.insert(name.to_string(), checked_value(name, &value)?);
        }
        let settings = RunSettings::from_map(&map)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The settings that label a run among others: its identity and length.
    pub fn labels(&self) -> SettingsMap {
        let mut map = self.to_map();
        map.retain(|k, _| role(k) != Some(Role::Runtime));
        map
    }
}

/// The value of setting `name` given as `value` (text as the command line reads it, or
/// JSON), checked by its rule, as `config.json` stores it.
pub fn checked_value(name: &str, value: &serde_json::Value) -> Result<serde_json::Value> {
    let s = setting(name).ok_or_else(|| unknown_setting(name))?;
    s.value(value).map_err(|why| {
        let shown = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        anyhow!("invalid value '{shown}' for '{}': {why}", s.flag())
    })
}

fn unknown_setting(name: &str) -> anyhow::Error {
    let names: Vec<&str> = all().map(|s| s.name).collect();
    anyhow!(
        "unknown setting {name:?}: it must be one of {}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_a_setting_of_the_table_in_its_group() {
        let value = serde_json::to_value(RunSettings::default()).unwrap();
        let groups = value.as_object().unwrap();
        let fields: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(g, f)| {
                (
                    g.as_str(),
                    f.as_object().unwrap().keys().map(String::as_str).collect(),
                )
            })
            .collect();
        let mut table: Vec<(&str, Vec<&str>)> = GROUPS
            .iter()
            .map(|(g, s)| (*g, s.iter().map(|s| s.name).collect::<Vec<_>>()))
            .collect();
        for (_, names) in &mut table {
            names.sort_unstable();
        }
        table.sort_unstable();
        assert_eq!(fields, table);
    }

    #[test]
    fn defaults_are_the_originals_and_follow_their_rules() {
        let s = RunSettings::default();
        assert_eq!(
            (s.model.n_embd, s.model.n_head, s.model.block_size),
            (16, 4, 16)
        );
        assert_eq!(
            (s.optimizer.lr, s.optimizer.eps, s.optimizer.grad_clip),
            (0.01, 1e-8, None)
        );
        assert_eq!(s.data.input, None);
        assert_eq!(s.system.threads, available_cores());
        s.validate().unwrap();
    }

    #[test]
    fn settings_round_trip_through_flat_names() {
        let mut s = RunSettings::default();
        s.model.n_embd = 32;
        s.optimizer.grad_clip = Some(1.0);
        assert_eq!(RunSettings::from_map(&s.to_map()).unwrap(), s);
        let mut map = s.to_map();
        map.remove("lr");
        let err = RunSettings::from_map(&map).unwrap_err().to_string();
        assert_eq!(err, "setting lr is missing");
    }

    #[test]
    fn pairs_of_text_or_json_build_validated_settings() {
        let s = RunSettings::from_pairs([
            ("n_embd", serde_json::json!(64)),
            ("lr", serde_json::json!("3e-3")),
            ("activation", serde_json::json!("gelu")),
            ("grad_clip", serde_json::json!(1.0)),
            ("input", serde_json::json!("names.txt")),
        ])
        .unwrap();
        assert_eq!((s.model.n_embd, s.optimizer.lr), (64, 3e-3));
        assert_eq!(s.optimizer.grad_clip, Some(1.0));
        assert_eq!(s.model.activation.name(), "gelu");
        let err = |pairs: Vec<(&str, serde_json::Value)>| {
            RunSettings::from_pairs(pairs).unwrap_err().to_string()
        };
        assert_eq!(
            err(vec![("lr", serde_json::json!(-1))]),
            "invalid value '-1' for '--lr': must be a positive number"
        );
        assert_eq!(
            err(vec![("n_embd", serde_json::json!("sixteen"))]),
            "invalid value 'sixteen' for '--n-embd': invalid digit found in string"
        );
        assert_eq!(
            err(vec![("activation", serde_json::json!("tanh"))]),
            "invalid value 'tanh' for '--activation': must be one of relu, gelu, relu2"
        );
        assert!(
            err(vec![("n_embed", serde_json::json!(8))]).starts_with("unknown setting \"n_embed\"")
        );
        assert_eq!(
            err(vec![("n_embd", serde_json::json!(10))]),
            "n_embd (10) must be divisible by n_head (4)"
        );
    }

    #[test]
    fn temperature_zero_is_greedy_and_below_the_normal_range_refused() {
        let t = setting("temperature").unwrap();
        assert!(t.parse_text("0").is_ok());
        assert!(t.parse_text("2.2250738585072014e-308").is_ok());
        let err = t.parse_text("1e-310").unwrap_err();
        assert!(
            err.starts_with("must be 0 (greedy) or at least 2.2250738585072014e-308"),
            "{err}"
        );
        assert_eq!(
            t.parse_text("-1").unwrap_err(),
            "must be 0 (greedy) or a positive number"
        );
    }

    #[test]
    fn settings_added_later_say_what_their_absence_meant() {
        let mut newest = 1;
        for s in all() {
            if let Since::Format {
                version,
                absent_means,
            } = s.since
            {
                s.parse_text(absent_means).unwrap();
                newest = newest.max(version);
            }
        }
        assert_eq!(SETTINGS_FORMAT, newest);
    }
}
