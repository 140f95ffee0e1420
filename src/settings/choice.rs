//! Settings chosen by name (`--activation gelu`): each enum's values and their names, one
//! line a value, so adding a value (say `Dtype::Bf16`) adds one line here. The names are
//! also the enums' serde names in `config.json` (a test checks they agree).

use crate::model::config::Activation;
use crate::model::engine::EngineKind;
use crate::model::optim::LrSchedule;
use crate::numerics::dtype::Dtype;
use serde::{Deserialize, Serialize};

/// An enum whose values a setting names.
pub trait Choice: Copy + PartialEq + 'static {
    /// Every value with its name, in the order `--help` lists them.
    const NAMES: &'static [(Self, &'static str)];

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(value, _)| *value == self)
            .map(|&(_, name)| name)
            .expect("every value of a Choice is named")
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|&(v, _)| v)
    }
}

/// The names `T` offers: a setting's `Kind::Choice`.
pub fn names<T: Choice>() -> Vec<&'static str> {
    T::NAMES.iter().map(|&(_, name)| name).collect()
}

/// How a text file becomes training sequences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    /// One document per line, framed by BOS (the original's).
    #[default]
    Lines,
    /// The whole file as one sequence of characters, newlines included; each step trains
    /// on windows at random positions.
    Stream,
}

impl Choice for DataMode {
    const NAMES: &'static [(Self, &'static str)] =
        &[(DataMode::Lines, "lines"), (DataMode::Stream, "stream")];
}

impl Choice for Dtype {
    const NAMES: &'static [(Self, &'static str)] = &[
        (Dtype::F32, "f32"),
        (Dtype::F64, "f64"),
        (Dtype::Bf16, "bf16"),
    ];
}

impl Choice for Activation {
    const NAMES: &'static [(Self, &'static str)] = &[
        (Activation::Relu, "relu"),
        (Activation::Gelu, "gelu"),
        (Activation::Relu2, "relu2"),
    ];
}

impl Choice for LrSchedule {
    const NAMES: &'static [(Self, &'static str)] = &[
        (LrSchedule::Linear, "linear"),
        (LrSchedule::Cosine, "cosine"),
        (LrSchedule::Constant, "constant"),
    ];
}

impl Choice for EngineKind {
    const NAMES: &'static [(Self, &'static str)] = &[
        (EngineKind::Tensor, "tensor"),
        (EngineKind::Scalar, "scalar"),
    ];
}

/// `Display` as the value's name, for the enums of this module's `Choice`s.
macro_rules! display_by_name {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}

display_by_name!(DataMode, Dtype, Activation, LrSchedule, EngineKind);

#[cfg(test)]
mod tests {
    use super::*;

    /// Each name is the value's serde name too, so `config.json` and the flags agree.
    fn names_are_serde_names<T: Choice + Serialize + serde::de::DeserializeOwned>() {
        for &(value, name) in T::NAMES {
            assert_eq!(serde_json::to_value(value).unwrap(), name);
            let back: T = serde_json::from_value(name.into()).unwrap();
            assert!(back == value, "{name}");
            assert!(T::from_name(name) == Some(value));
        }
    }

    #[test]
    fn every_choice_is_named_as_serde_names_it() {
        names_are_serde_names::<DataMode>();
        names_are_serde_names::<Dtype>();
        names_are_serde_names::<Activation>();
        names_are_serde_names::<LrSchedule>();
        names_are_serde_names::<EngineKind>();
    }
}
