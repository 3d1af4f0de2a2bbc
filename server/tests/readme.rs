//! The README says what `chat-server --help` says. Its configuration table lists every flag with
//! the flag's environment variable and default, and a default restated in its prose, written
//! "`--flag` (default N)", "`--flag`, default N" or "`--flag` (N)", is the flag's default. The
//! defaults themselves are written once, in `Settings::default()` and the engine's
//! `Config::default()`, and the CLI reads them from there; this holds the docs to them.

use std::collections::BTreeMap;

use chat_server::cli::Args;
use clap::CommandFactory;

const README: &str = include_str!("../../README.md");

/// How the table says a flag has no default value.
const NO_DEFAULT: &[&str] = &["none", "unset", "embedded copy"];

/// A flag as `--help` describes it.
#[derive(Debug)]
struct Flag {
    env: Option<String>,
    default: Option<String>,
}

/// Every flag of the binary, by its long name (`--addr`).
fn flags() -> BTreeMap<String, Flag> {
    let mut command = Args::command();
    command.build();
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = (!defaults.is_empty()).then(|| defaults.join(","));
            Some((format!("--{long}"), Flag { env, default }))
        })
        .collect()
}

/// The first `code span` of a cell, or the whole cell.
fn code(cell: &str) -> &str {
    cell.split('`').nth(1).unwrap_or(cell)
}

/// The rows of the README's configuration table: flag -> (env cell, default cell).
fn table() -> BTreeMap<String, (String, String)> {
    let section = README
        .split("\n## Configuration\n")
        .nth(1)
        .expect("the README has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            assert!(cells.len() >= 5, "a row with four cells: {line}");
            let flag = code(cells[1]).to_owned();
            (flag, (cells[2].to_owned(), cells[3].to_owned()))
        })
        .collect()
}

#[test]
fn the_configuration_table_has_every_flag_with_its_env_and_default() {
    let flags = flags();
    let table = table();
    let documented: Vec<&String> = table.keys().collect();
    let existing: Vec<&String> = flags.keys().collect();
    assert_eq!(documented, existing, "the table's flags are the binary's");
    let mut wrong = Vec::new();
    for (name, flag) in &flags {
        let (env, default) = &table[name];
        if Some(code(env)) != flag.env.as_deref() {
            wrong.push(format!(
                "{name}: env {env} in the README, {:?} in --help",
                flag.env
            ));
        }
        match &flag.default {
            Some(value) if code(default) != value => {
                wrong.push(format!(
                    "{name}: default {default} in the README, {value} in --help"
                ));
            }
            None if !NO_DEFAULT.contains(&default.as_str()) => {
                wrong.push(format!(
                    "{name}: default {default} in the README, none in --help"
                ));
            }
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "README out of date:\n{}",
        wrong.join("\n")
    );
}

/// What the README says right after each mention of a flag, when it restates a default there.
fn restated_defaults() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for piece in README.split("`--").skip(1) {
        let Some((name, rest)) = piece.split_once('`') else {
            continue;
        };
        let value = if let Some(rest) = rest.strip_prefix(" (default ") {
            rest.split(')').next()
        } else if let Some(rest) = rest.strip_prefix(", default ") {
            rest.split([')', ',', ';', ' ', '\n']).next()
        } else if let Some(rest) = rest.strip_prefix(" (") {
            rest.split(')')
                .next()
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        } else {
            None
        };
        if let Some(value) = value {
            found.push((format!("--{name}"), value.trim_matches('`').to_owned()));
        }
    }
    found
}

#[test]
fn defaults_restated_in_the_readme_are_the_flags_defaults() {
    let flags = flags();
    let restated = restated_defaults();
    assert!(
        restated.len() >= 4,
        "the README restates defaults in several places, found only {restated:?}"
    );
    let mut wrong = Vec::new();
    for (name, value) in &restated {
        match flags.get(name) {
            Some(Flag {
                default: Some(default),
                ..
            }) if default == value => {}
            Some(flag) => wrong.push(format!(
                "{name}: the README says default {value}, --help says {:?}",
                flag.default
            )),
            None => wrong.push(format!(
                "{name}: no such flag (the README says default {value})"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "README out of date:\n{}",
        wrong.join("\n")
    );
}
