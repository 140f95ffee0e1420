//! How each flag's value is parsed and checked: every refusal is a message of the flag's
//! own, negative numbers included.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use microgpt::dtype::Dtype;
use microgpt::{settings, validate};
use std::path::PathBuf;

/// A path that must be UTF-8 because config.json records it as text. Any other path is
/// refused naming it (lossily), rather than failing later without saying which.
#[derive(Clone)]
pub struct Utf8Path;

impl TypedValueParser for Utf8Path {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PathBuf, clap::Error> {
        match value.to_str() {
            Some(text) => Ok(PathBuf::from(text)),
            None => {
                let flag = arg.and_then(|a| a.get_long()).unwrap_or("path");
                let message = format!(
                    "the path {} given to --{flag} is not valid UTF-8, which config.json cannot record: rename it\n",
                    std::path::Path::new(value).display()
                );
                Err(clap::Error::raw(ErrorKind::InvalidUtf8, message).with_cmd(cmd))
            }
        }
    }
}

/// Parses one of `T`'s names; `--help` lists them.
pub fn choice<T: settings::Choice + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|c| c.name())).map(|name| {
        *T::ALL
            .iter()
            .find(|c| c.name() == name)
            .expect("a listed name")
    })
}

/// gradcheck's `--dtype`: f64 or f32. bf16 rounds every GEMM operand to 8 bits, beyond any
/// gradient check's tolerance; bf16 training is checked by its loss curve against f32's.
pub fn gradient_dtype() -> impl TypedValueParser<Value = Dtype> {
    choice::<Dtype>().try_map(|d| match d {
        Dtype::Bf16 => Err("gradcheck checks f64 or f32: bf16 rounds every GEMM operand to 8 bits, beyond a gradient check's tolerance (bf16 training is checked by its loss curve against f32's)"),
        d => Ok(d),
    })
}

/// Parses `s` as a `T` after checking it with the library's rule (`microgpt::validate`),
/// the one a run's `config.json` is checked with too: a negative or out-of-range number
/// gets the rule's own message, not a parse error.
fn checked<T>(s: &str, rule: validate::Rule) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    // As config.json would hold it: an integer when it is one, else a float (null when
    // not finite, which every numeric rule refuses).
    let number = match (s.parse::<u64>(), s.parse::<i64>(), s.parse::<f64>()) {
        (Ok(n), _, _) => Some(serde_json::Value::from(n)),
        (_, Ok(n), _) => Some(serde_json::Value::from(n)),
        (_, _, Ok(x)) => {
            Some(serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into))
        }
        _ => None,
    };
    if let Some(number) = number {
        rule(&number)?;
    }
    s.parse::<T>().map_err(|e| e.to_string())
}

pub fn at_least_one(s: &str) -> Result<usize, String> {
    checked(s, validate::at_least_one)
}

/// A whole number of 0 or more; a negative one is refused as such, not as a bad digit.
pub fn whole<T: std::str::FromStr<Err = std::num::ParseIntError>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| {
        if is_negative(s) {
            "must be 0 or more".into()
        } else {
            e.to_string()
        }
    })
}

fn is_negative(s: &str) -> bool {
    s.parse::<f64>().is_ok_and(|x| x < 0.0)
}

pub fn size(s: &str) -> Result<u64, String> {
    microgpt::memory::parse_size(s).map_err(|e| e.to_string())
}

pub fn positive(s: &str) -> Result<f64, String> {
    checked(s, validate::positive)
}

pub fn non_negative(s: &str) -> Result<f64, String> {
    checked(s, validate::non_negative)
}

pub fn unit_interval(s: &str) -> Result<f64, String> {
    checked(s, validate::unit_interval)
}
