//! A command lists only flags that work there (issue #21): every flag of every command's
//! `--help` is run, one at a time, with a valid value on a small command line of that
//! command, and must succeed. The valid values come from `--help` itself (a literal
//! default, each possible value) or from [`KNOWN`]; a flag with neither fails the test
//! until one is added there.

mod common;

use common::cli::*;

/// A flag as `--help` lists it.
#[derive(Debug)]
struct Listed {
    flag: String,
    takes_value: bool,
    default: Option<String>,
    possible: Vec<String>,
}

/// The flags `microgpt <command> --help` lists, `--help` itself aside.
fn listed(command: &str) -> Vec<Listed> {
    let help = ok(&[command, "--help"]);
    help.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with("--"))?;
            if !line.trim_start().starts_with('-') || words[at] == "--help" {
                return None;
            }
            let between = |open: &str| {
                let start = line.find(open)? + open.len();
                Some(line[start..start + line[start..].find(']')?].to_string())
            };
            Some(Listed {
                flag: words[at].trim_end_matches(',').to_string(),
                takes_value: words.get(at + 1).is_some_and(|w| w.starts_with('<')),
                default: between("[default: "),
                possible: between("[possible values: ")
                    .map(|p| p.split(", ").map(String::from).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Each command's small command line; `{data}`, `{run}`, `{fresh}` ... are filled in.
const BASE: &[(&str, &[&str])] = &[
    (
        "train",
        &[
            "--input",
            "{data}",
            "--n-embd",
            "8",
            "--n-head",
            "2",
            "--block-size",
            "8",
            "--steps",
            "2",
            "--num-samples",
            "1",
        ],
    ),
    (
        "sweep",
        &[
            "--grid",
            "n_embd=8",
            "--out",
            "{fresh}",
            "--input",
            "{data}",
            "--n-head",
            "1",
            "--block-size",
            "8",
            "--steps",
            "2",
            "--num-samples",
            "1",
        ],
    ),
    ("sample", &["--run", "{run}", "--num-samples", "2"]),
    ("compare", &["{run}", "--out", "{fresh}"]),
    (
        "gradcheck",
        &[
            "--input",
            "{data}",
            "--n-embd",
            "8",
            "--n-head",
            "2",
            "--block-size",
            "8",
            "--batches",
            "1",
        ],
    ),
    (
        "inspect",
        &["--run", "{run}", "--text", "kamo", "--out", "{fresh}"],
    ),
];

/// Valid uses of the flags whose `--help` shows no literal value, by command ("" for
/// every command); the flags they name replace the base command line's.
const KNOWN: &[(&str, &str, &[&str])] = &[
    ("", "--input", &["--input", "{data}"]),
    ("", "--out", &["--out", "{fresh}"]),
    ("", "--max-memory", &["--max-memory", "8G"]),
    ("", "--grad-clip", &["--grad-clip", "1"]),
    ("", "--steps", &["--steps", "3"]),
    (
        "train",
        "--stop-after",
        &["--stop-after", "1", "--out", "{fresh}"],
    ),
    ("train", "--resume", &["--resume", "{stopped}"]),
    ("sweep", "--grid", &["--grid", "n_layer=1,2"]),
    ("sample", "--run", &["--run", "{run}"]),
    ("sample", "--temperature", &["--temperature", "0.7"]),
    ("sample", "--seed", &["--seed", "7"]),
    ("sample", "--num-samples", &["--num-samples", "3"]),
    (
        "sample",
        "--max-new-tokens",
        &["--run", "{stream}", "--max-new-tokens", "5"],
    ),
    ("sample", "--temperatures", &["--temperatures", "0.5,1"]),
    ("sample", "--engine", &["--engine", "tensor"]),
    ("gradcheck", "--tolerance", &["--tolerance", "1"]),
    ("inspect", "--run", &["--run", "{run}"]),
    ("inspect", "--text", &["--text", "zoë"]),
    ("inspect", "--engine", &["--engine", "tensor"]),
];

/// The uses of `flag` this test runs: known ones, else one per possible value, else its
/// literal default; `None` when there is none of these.
fn uses(command: &str, flag: &Listed) -> Option<Vec<Vec<String>>> {
    let known = KNOWN
        .iter()
        .find(|(c, f, _)| (c.is_empty() || *c == command) && *f == flag.flag);
    if let Some((_, _, args)) = known {
        return Some(vec![args.iter().map(|a| a.to_string()).collect()]);
    }
    if !flag.takes_value {
        return Some(vec![vec![flag.flag.clone()]]);
    }
    if !flag.possible.is_empty() {
        return Some(
            flag.possible
                .iter()
                .map(|v| vec![flag.flag.clone(), v.clone()])
                .collect(),
        );
    }
    let literal = flag
        .default
        .as_deref()
        .filter(|d| d.parse::<f64>().is_ok() || *d == "\"\"");
    literal.map(|d| vec![vec![flag.flag.clone(), d.trim_matches('"').to_string()]])
}

/// `base` without the flags `use_` names (and their values), then `use_`.
fn command_line(command: &str, base: &[&str], use_: &[String]) -> Vec<String> {
    let named: Vec<&String> = use_.iter().filter(|a| a.starts_with("--")).collect();
    let mut args = vec![command.to_string()];
    let mut i = 0;
    while i < base.len() {
        if named.iter().any(|n| *n == base[i]) {
            let has_value = base.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            i += 1 + usize::from(has_value);
            continue;
        }
        args.push(base[i].to_string());
        i += 1;
    }
    args.extend(use_.iter().cloned());
    args
}

struct Places {
    dir: PathBuf,
    data: PathBuf,
    run: PathBuf,
    stream: PathBuf,
    made: usize,
}

impl Places {
    fn new() -> Self {
        let dir = tmp("help_flags");
        let data = dataset(&dir);
        let (run, stream) = (dir.join("run"), dir.join("stream"));
        train_ok(&data, &run, &["--steps", "3"]);
        train_ok(&data, &stream, &["--data", "stream", "--steps", "3"]);
        Places {
            dir,
            data,
            run,
            stream,
            made: 0,
        }
    }

    fn fill(&mut self, arg: &str) -> String {
        let mut fresh = || {
            self.made += 1;
            self.dir.join(format!("d{}", self.made))
        };
        match arg {
            "{data}" => s(&self.data).into(),
            "{run}" => s(&self.run).into(),
            "{stream}" => s(&self.stream).into(),
            "{fresh}" => s(&fresh()).into(),
            "{stopped}" => {
                let stopped = fresh();
                train_ok(&self.data, &stopped, &["--steps", "2", "--stop-after", "1"]);
                s(&stopped).into()
            }
            other => other.into(),
        }
    }
}

#[test]
fn every_listed_flag_works_in_its_command() {
    let mut places = Places::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (command, base) in BASE {
        for flag in listed(command) {
            let Some(uses) = uses(command, &flag) else {
                failures.push(format!(
                    "{command} {}: no valid value known: add one to KNOWN",
                    flag.flag
                ));
                continue;
            };
            for use_ in uses {
                let args: Vec<String> = command_line(command, base, &use_)
                    .iter()
                    .map(|a| places.fill(a))
                    .collect();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = microgpt(&argv);
                ran += 1;
                if !out.status.success() {
                    failures.push(format!(
                        "microgpt {}: {}",
                        args.join(" "),
                        text(&out.stderr).trim()
                    ));
                }
            }
        }
    }
    println!("{ran} command lines run");
    assert!(ran > 100, "only {ran} flags found: is --help still parsed?");
    assert!(
        failures.is_empty(),
        "flags listed but refused:\n{}",
        failures.join("\n")
    );
}
