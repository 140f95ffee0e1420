//! The settings' flags, built from the library's table (`microgpt::settings::GROUPS`): each
//! flag's name, default, rule, accepted values and help come from its setting's entry there.
//! A command takes a [`Selection`] of the settings.

use super::values::Utf8Path;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use microgpt::settings::{self, Choice, DefaultValue, Kind, RunSettings, Setting, SettingsMap};
use microgpt::training::gradcheck;
use serde_json::Value;
use std::ffi::OsStr;
use std::marker::PhantomData;

/// The settings a command takes as flags.
pub trait Selection: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Each setting, with what differs here from its table entry.
    fn flags() -> Vec<Flag>;
}

/// A setting's flag in one command: the table's entry, but where the command says otherwise.
pub struct Flag {
    pub setting: &'static Setting,
    /// Its help here, where the table's does not fit.
    pub help: Option<String>,
    /// The values it takes here, where the command takes fewer than the setting's.
    pub choices: Option<Vec<&'static str>>,
}

impl Flag {
    fn new(setting: &'static Setting) -> Self {
        Flag {
            setting,
            help: None,
            choices: None,
        }
    }
}

/// Every setting: `train` and `sweep`.
#[derive(Clone, Debug)]
pub struct AllSettings;

impl Selection for AllSettings {
    fn flags() -> Vec<Flag> {
        settings::all().map(Flag::new).collect()
    }
}

/// The data (but its split), the whole model group, the batch size and the dtype:
/// `gradcheck`, which checks the model a run would train, in the dtypes it can check.
#[derive(Clone, Debug)]
pub struct GradcheckSettings;

impl Selection for GradcheckSettings {
    fn flags() -> Vec<Flag> {
        let named = |names: &[&str]| -> Vec<&'static Setting> {
            let named = names.iter().map(|name| settings::setting(name));
            named.map(|s| s.expect("a setting")).collect()
        };
        let model = settings::GROUPS
            .iter()
            .filter(|(group, _)| *group == "model")
            .flat_map(|(_, settings)| settings.iter());
        let own = |flag: Flag| match flag.setting.name {
            "batch_size" => Flag {
                help: Some("Documents per checked batch".into()),
                ..flag
            },
            "dtype" => Flag {
                help: Some(format!(
                    "Element type of the tensor engine (the reference is always f64); not bf16: {}",
                    gradcheck::WHY_NOT_BF16
                )),
                choices: Some(gradcheck::DTYPES.iter().map(|d| d.name()).collect()),
                ..flag
            },
            _ => flag,
        };
        named(&["input", "data", "seed"])
            .into_iter()
            .chain(model)
            .chain(named(&["batch_size", "dtype"]))
            .map(|s| own(Flag::new(s)))
            .collect()
    }
}

/// The flags of the settings `S` selects, and the values given to them.
#[derive(Clone, Debug)]
pub struct SettingFlags<S> {
    /// The settings given on the command line, each checked by its rule, by name.
    pub given: SettingsMap,
    selection: PhantomData<S>,
}

impl<S: Selection> SettingFlags<S> {
    /// The defaults with the given settings. Each value follows its rule; the whole is not
    /// validated (a sweep's base settings need not be valid without its grid).
    pub fn settings(&self) -> RunSettings {
        let mut map = RunSettings::default().to_map();
        map.extend(self.given.clone());
        RunSettings::from_map(&map).expect("checked values of settings")
    }
}

impl<S: Selection> FromArgMatches for SettingFlags<S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = S::flags()
            .into_iter()
            .map(|flag| flag.setting)
            .filter(|s| matches.value_source(s.name) == Some(ValueSource::CommandLine))
            .filter_map(|s| {
                let value = matches.get_one::<Value>(s.name)?;
                Some((s.name.to_string(), value.clone()))
            })
            .collect();
        Ok(SettingFlags {
            given,
            selection: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<S: Selection> Args for SettingFlags<S> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        S::flags()
            .into_iter()
            .fold(cmd, |cmd, flag| cmd.arg(arg(flag)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A setting's flag, as its table entry describes it but where the command says otherwise.
fn arg(flag: Flag) -> Arg {
    let setting = flag.setting;
    let mut help = flag.help.unwrap_or_else(|| setting.help.into());
    if let DefaultValue::Null(meaning) = setting.default {
        help.push_str(&format!(" [default: {meaning}]"));
    }
    let mut arg = Arg::new(setting.name)
        .long(setting.name.replace('_', "-"))
        .help(help)
        .action(ArgAction::Set)
        .value_name(
            setting
                .value_name
                .map_or_else(|| setting.name.to_uppercase(), Into::into),
        )
        .value_parser(SettingParser {
            setting,
            choices: flag.choices,
        });
    if let Some(default) = setting.default_text() {
        arg = arg.default_value(default);
    }
    arg
}

/// The parser of the setting `name`, for a command's own flag of that name typed `T`
/// (`sample --temperature`): the same rule and accepted values as the setting's.
pub fn setting<T>(name: &str) -> impl TypedValueParser<Value = T>
where
    T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let setting = settings::setting(name).expect("a setting of the table");
    let parser = SettingParser {
        setting,
        choices: None,
    };
    parser.map(|value| serde_json::from_value(value).expect("a checked value"))
}

/// Parses a flag's text by its setting's rule into the value `config.json` stores.
#[derive(Clone)]
struct SettingParser {
    setting: &'static Setting,
    /// A choice's names the command takes (`None`: all of the setting's).
    choices: Option<Vec<&'static str>>,
}

impl SettingParser {
    fn names(&self) -> Option<Vec<&'static str>> {
        match self.setting.kind {
            Kind::Choice(names) => Some(self.choices.clone().unwrap_or_else(names)),
            _ => None,
        }
    }
}

impl TypedValueParser for SettingParser {
    type Value = Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<Value, clap::Error> {
        let setting = self.setting;
        if let Some(names) = self.names() {
            return PossibleValuesParser::new(names)
                .parse_ref(cmd, arg, value)
                .map(Value::String);
        }
        match setting.kind {
            Kind::Path => Utf8Path
                .parse_ref(cmd, arg, value)
                .map(|path| Value::String(path.to_string_lossy().into())),
            // clap's own wording for a refused value: "invalid value 'V' for '--flag <V>': why".
            _ => (move |text: &str| setting.parse_text(text)).parse_ref(cmd, arg, value),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let names = self.names()?;
        Some(Box::new(names.into_iter().map(PossibleValue::new)))
    }
}
