//! Every setting against its rule (the table's), in one place: the command line, a run's
//! `config.json`, resumes and sweeps all check through [`RunSettings::validate`] and the
//! table's [`Setting::check`], so a value one refuses, none accepts.

use crate::settings::{role, setting, Role, RunSettings, SettingsMap};
use anyhow::{bail, Result};
use std::path::Path;

/// The command-line flag of the setting `key`: `--val-frac` for `val_frac`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Whether `value` is allowed for the setting `key` (flat name).
pub fn check(key: &str, value: &serde_json::Value) -> std::result::Result<(), String> {
    setting(key).map_or_else(|| Err(format!("{key} is no setting")), |s| s.check(value))
}

impl RunSettings {
    /// Every setting against its rule (the error names the first broken one by its flag),
    /// then the model's shape (`n_embd` a multiple of `n_head`).
    pub fn validate(&self) -> Result<()> {
        for (key, value) in self.to_map() {
            if let Err(why) = check(&key, &value) {
                bail!("{} {value}: {why}", flag(&key));
            }
        }
        // The vocabulary comes from the data; any size checks the rest of the shape.
        self.model.config(1).validate()?;
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
