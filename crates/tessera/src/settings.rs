//! One settings model for every command: each option is a flag, a `TESSERA_*` variable and
//! a key of the optional TOML file (`--config`, `TESSERA_CONFIG`), resolved with the
//! precedence flag > environment > file > profile > default, and each value remembers where
//! it came from, so that errors and `tessera config show` can say so.
//!
//! clap stays the one definition of every option (name, variable, default, parser, help).
//! The file and the profile are layered in by handing clap the values that neither a flag
//! nor the environment set, as if they were flags, after checking each with the option's
//! own parser (so a bad file value is reported with its file and line, not as a flag).
//!
//! File layout: keys are the options' names in snake case (`access_token_ttl = "15m"`);
//! top-level keys apply to every command that has the option, a `[serve]`, `[guard]`,
//! `[janitor]`… table to that command only (and wins over the top level). An unknown key is
//! an error, not a silent no-op: a misspelt setting must not leave the default in force.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, ValueEnum};
use serde::Serialize;

use crate::cli::Cli;

/// A preset of token lifetimes for an application's security classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// 15-minute access tokens, 14-day refresh tokens within 90 days (the defaults).
    Standard,
    /// High-value data: 15-minute access tokens, 7-day refresh tokens within 30 days, no
    /// refresh grace window, 1-hour sign-in sessions.
    High,
    /// Internal tools on a trusted network: 60-minute access tokens, 30-day refresh tokens
    /// within 180 days.
    Internal,
}

impl Profile {
    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::High => "high",
            Profile::Internal => "internal",
        }
    }

    /// The settings the profile presets, as option ids and values.
    pub fn presets(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Standard => &[
                ("access_token_ttl", "15m"),
                ("refresh_token_ttl", "14d"),
                ("refresh_token_max_lifetime", "90d"),
            ],
            Profile::High => &[
                ("access_token_ttl", "15m"),
                ("refresh_token_ttl", "7d"),
                ("refresh_token_max_lifetime", "30d"),
                ("refresh_grace", "0s"),
                ("session_ttl", "1h"),
            ],
            Profile::Internal => &[
                ("access_token_ttl", "60m"),
                ("refresh_token_ttl", "30d"),
                ("refresh_token_max_lifetime", "180d"),
            ],
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A command-line flag.
    Flag {
        /// The flag, `--name`.
        flag: String,
    },
    /// An environment variable.
    Env {
        /// The variable.
        var: String,
    },
    /// The configuration file.
    File {
        /// Its path.
        path: String,
        /// The 1-based line of the key.
        line: usize,
    },
    /// The security profile.
    Profile {
        /// The profile's name.
        profile: &'static str,
    },
    /// The built-in default.
    Default,
    /// Not set, no default.
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag { flag } => write!(f, "flag {flag}"),
            Source::Env { var } => write!(f, "environment {var}"),
            Source::File { path, line } => write!(f, "{path} line {line}"),
            Source::Profile { profile } => write!(f, "profile {profile}"),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("not set"),
        }
    }
}

/// One resolved option of the command being run.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The option's id, which is also its file key.
    pub key: String,
    /// Its flag, `--name`.
    pub flag: String,
    /// Its environment variable, if any.
    pub env: Option<String>,
    /// The effective value as given (several values joined with `,`), redacted if secret.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// Whether the value is a secret (shown redacted).
    #[serde(skip)]
    pub secret: bool,
}

/// The parsed command line with every option's source.
#[derive(Debug)]
pub struct Resolved {
    /// The command and its arguments, file and profile values included.
    pub cli: Cli,
    /// The options of the command being run, in declaration order.
    pub settings: Vec<Setting>,
}

impl Resolved {
    /// The option `key`, if the command has it.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// `key = value (from source)`, for messages about a setting.
    pub fn describe(&self, key: &str) -> String {
        match self.setting(key) {
            Some(s) => format!(
                "{key} = {} (from {})",
                s.value.as_deref().unwrap_or("(none)"),
                s.source
            ),
            None => key.to_owned(),
        }
    }
}

/// Why the settings could not be resolved.
#[derive(Debug)]
pub enum ResolveError {
    /// The command line itself is wrong (clap's own message and exit code).
    Clap(clap::Error),
    /// The file, the profile or a value is wrong; one line per problem.
    Settings(Vec<String>),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Clap(e) => write!(f, "{e}"),
            ResolveError::Settings(problems) => f.write_str(&problems.join("\n")),
        }
    }
}

impl std::error::Error for ResolveError {}

/// One value of the configuration file.
#[derive(Debug, Clone)]
struct FileValue {
    values: Vec<String>,
    /// `Some(b)` when the TOML value is a boolean.
    boolean: Option<bool>,
    line: usize,
}

/// The configuration file, read: values by section (`""` for the top level) and key.
#[derive(Debug, Default)]
struct ConfigFile {
    path: String,
    sections: BTreeMap<String, BTreeMap<String, FileValue>>,
}

impl ConfigFile {
    /// The value of `key` for the command `top` (its table first, then the top level).
    fn get(&self, top: &str, key: &str) -> Option<&FileValue> {
        self.sections
            .get(top)
            .and_then(|section| section.get(key))
            .or_else(|| self.sections.get("").and_then(|s| s.get(key)))
    }
}

/// Options the file and profile never set.
const NOT_FROM_FILE: [&str; 3] = ["help", "version", "config"];

/// Resolves `argv` (program name first).
pub fn resolve(argv: &[OsString]) -> Result<Resolved, ResolveError> {
    let mut command = Cli::command();
    command.build();
    let first = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(ResolveError::Clap)?;
    let path = subcommand_path(&first);
    let mut levels = levels(&command, &first, &path);
    place(&mut levels, argv, &path);
    let leaf = levels.last().map_or(&first, |level| level.matches);

    let config_path = leaf.get_one::<PathBuf>("config").cloned();
    let file = match &config_path {
        Some(path) => Some(read_file(path, &command)?),
        None => None,
    };
    let top = path.first().map(String::as_str).unwrap_or_default();
    let profile = profile(leaf, file.as_ref(), top)?;

    let mut injections: Vec<(usize, Vec<OsString>)> = Vec::new();
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    // Leaf first: a global option is handled where it is finally parsed.
    for level in levels.iter().rev() {
        let mut tokens = Vec::new();
        for arg in level.command.get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version"].contains(&id) || !seen.insert(id.to_owned()) {
                continue;
            }
            let layerable = !NOT_FROM_FILE.contains(&id);
            let flag = format!("--{long}");
            let source = match level.matches.value_source(id) {
                Some(ValueSource::CommandLine) => Source::Flag { flag: flag.clone() },
                Some(ValueSource::EnvVariable) => Source::Env {
                    var: env_name(arg).unwrap_or_default(),
                },
                _ => match layered(arg, file.as_ref(), top, profile).filter(|_| layerable) {
                    Some((source, values)) => {
                        match inject(&level.command, arg, &flag, &values, &source) {
                            Ok(args) => tokens.extend(args),
                            Err(problem) => problems.push(problem),
                        }
                        source
                    }
                    None if level.matches.value_source(id) == Some(ValueSource::DefaultValue) => {
                        Source::Default
                    }
                    None => Source::Unset,
                },
            };
            settings.push(Setting {
                key: id.to_owned(),
                flag,
                env: env_name(arg),
                value: None,
                source,
                secret: arg.is_hide_env_values_set() || id.contains("secret"),
            });
        }
        if !tokens.is_empty() {
            injections.push((level.position, tokens));
        }
    }
    if !problems.is_empty() {
        return Err(ResolveError::Settings(problems));
    }
    let mut argv = argv.to_vec();
    // Insert from the back so earlier positions stay valid.
    injections.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    for (position, tokens) in injections {
        let at = (position + 1).min(argv.len());
        argv.splice(at..at, tokens);
    }
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .map_err(ResolveError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ResolveError::Clap)?;
    let mut by_level = vec![&matches];
    let mut current = &matches;
    for name in &path {
        match current.subcommand_matches(name) {
            Some(next) => {
                by_level.push(next);
                current = next;
            }
            None => break,
        }
    }
    for setting in &mut settings {
        let raw = by_level
            .iter()
            .rev()
            .find_map(|m| raw_values(m, &setting.key));
        setting.value = raw.map(|v| redact(&v, setting.secret));
    }
    Ok(Resolved { cli, settings })
}

/// One subcommand on the path from the root to the command being run.
struct Level<'a> {
    command: Command,
    matches: &'a ArgMatches,
    /// Index in argv of the subcommand's name (0 for the root).
    position: usize,
}

fn subcommand_path(matches: &ArgMatches) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, next)) = current.subcommand() {
        path.push(name.to_owned());
        current = next;
    }
    path
}

fn levels<'a>(root: &Command, matches: &'a ArgMatches, path: &[String]) -> Vec<Level<'a>> {
    let mut levels = Vec::new();
    let mut command = root.clone();
    let mut current = matches;
    levels.push(Level {
        command: command.clone(),
        matches: current,
        position: 0,
    });
    for name in path {
        let Some(next_command) = command.find_subcommand(name).cloned() else {
            break;
        };
        let Some(next_matches) = current.subcommand_matches(name) else {
            break;
        };
        command = next_command;
        current = next_matches;
        levels.push(Level {
            command: command.clone(),
            matches: current,
            position: usize::MAX,
        });
    }
    levels
}

/// Fills in the argv positions of the subcommand names on the path.
fn place(levels: &mut [Level<'_>], argv: &[OsString], path: &[String]) {
    let mut from = 1;
    for (level, name) in levels.iter_mut().skip(1).zip(path) {
        let at = argv
            .iter()
            .skip(from)
            .position(|a| a == OsStr::new(name))
            .map_or(argv.len() - 1, |i| i + from);
        level.position = at;
        from = at + 1;
    }
}

fn env_name(arg: &Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// The file or profile value of `arg`, if either has one.
fn layered(
    arg: &Arg,
    file: Option<&ConfigFile>,
    top: &str,
    profile: Option<Profile>,
) -> Option<(Source, FileValue)> {
    let id = arg.get_id().as_str();
    if let Some(file) = file
        && let Some(value) = file.get(top, id)
    {
        let source = Source::File {
            path: file.path.clone(),
            line: value.line,
        };
        return Some((source, value.clone()));
    }
    let profile = profile?;
    let (_, value) = profile.presets().iter().find(|(key, _)| *key == id)?;
    let value = FileValue {
        values: vec![(*value).to_owned()],
        boolean: None,
        line: 0,
    };
    Some((
        Source::Profile {
            profile: profile.name(),
        },
        value,
    ))
}

/// The flag tokens that give `arg` the file or profile `value`, after checking the value
/// with the option's own parser.
fn inject(
    command: &Command,
    arg: &Arg,
    flag: &str,
    value: &FileValue,
    source: &Source,
) -> Result<Vec<OsString>, String> {
    let id = arg.get_id().as_str();
    let problem = |reason: &str| format!("{id} ({source}): {reason}");
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value.boolean {
            Some(true) => Ok(vec![flag.into()]),
            Some(false) => Ok(Vec::new()),
            None => Err(problem("must be true or false")),
        };
    }
    // The option alone, with its own parser, in a throwaway command: clap keeps parsers'
    // entry points private, and the full command would report a file value as a flag.
    let alone = Command::new(command.get_name().to_owned())
        .no_binary_name(true)
        .arg(
            Arg::new(id.to_owned())
                .long(flag.trim_start_matches("--").to_owned())
                .action(ArgAction::Set)
                .value_parser(arg.get_value_parser().clone()),
        );
    let mut tokens = Vec::new();
    for item in &value.values {
        let token = format!("{flag}={item}");
        if let Err(error) = alone.clone().try_get_matches_from([token.as_str()]) {
            let reason = first_line(&error.to_string());
            return Err(problem(&format!("{item:?} is not valid: {reason}")));
        }
        tokens.push(OsString::from(token));
    }
    Ok(tokens)
}

/// The first line of a clap message, without its `error: ` prefix and the option name it
/// adds (the caller names the setting and its source).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.rsplit_once("': ") {
        Some((_, reason)) => reason.to_owned(),
        None => line.to_owned(),
    }
}

fn raw_values(matches: &ArgMatches, id: &str) -> Option<String> {
    let raw = matches.try_get_raw(id).ok().flatten()?;
    let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
    Some(values.join(","))
}

/// A secret shown as set-but-hidden; a URL keeps everything but its password.
fn redact(value: &str, secret: bool) -> String {
    if let Ok(mut url) = url::Url::parse(value)
        && url.password().is_some()
    {
        let _ = url.set_password(Some("***"));
        return url.to_string();
    }
    if secret && !value.is_empty() {
        return "***".to_owned();
    }
    value.to_owned()
}

/// The profile: flag or environment, else the file's `profile` key.
fn profile(
    leaf: &ArgMatches,
    file: Option<&ConfigFile>,
    top: &str,
) -> Result<Option<Profile>, ResolveError> {
    if let Some(profile) = leaf.get_one::<Profile>("profile") {
        return Ok(Some(*profile));
    }
    let Some(file) = file else { return Ok(None) };
    let Some(value) = file.get(top, "profile") else {
        return Ok(None);
    };
    let name = value.values.first().map(String::as_str).unwrap_or_default();
    Profile::from_str(name, true).map(Some).map_err(|_| {
        ResolveError::Settings(vec![format!(
            "profile ({} line {}): {name:?} is not a profile (standard, high, internal)",
            file.path, value.line
        )])
    })
}

/// Reads and checks the configuration file: TOML, known keys only.
fn read_file(path: &Path, command: &Command) -> Result<ConfigFile, ResolveError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ResolveError::Settings(vec![format!(
            "cannot read the configuration file {shown}: {e}"
        )])
    })?;
    let document = toml_edit::Document::parse(text.as_str()).map_err(|e| {
        let line = e.span().map_or(0, |span| line_of(&text, span.start));
        ResolveError::Settings(vec![format!(
            "{shown} line {line}: not valid TOML: {}",
            e.message()
        )])
    })?;
    let known = known_keys(command);
    let sections: HashSet<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut file = ConfigFile {
        path: shown.clone(),
        sections: BTreeMap::new(),
    };
    let mut problems = Vec::new();
    for (key, item) in document.as_table().iter() {
        let line = item
            .span()
            .or_else(|| document.as_table().key(key).and_then(|k| k.span()))
            .map_or(0, |span| line_of(&text, span.start));
        match item {
            toml_edit::Item::Table(table) => {
                if !sections.contains(key) {
                    problems.push(format!(
                        "{shown} line {line}: [{key}] is not a command (tables are named after commands: [serve], [guard], [janitor], ...)"
                    ));
                    continue;
                }
                let section_known = command
                    .find_subcommand(key)
                    .map(known_keys)
                    .unwrap_or_default();
                for (inner, value) in table.iter() {
                    let line = table
                        .key(inner)
                        .and_then(|k| k.span())
                        .map_or(line, |span| line_of(&text, span.start));
                    add(
                        &mut file,
                        &mut problems,
                        key,
                        inner,
                        value,
                        line,
                        &section_known,
                    );
                }
            }
            _ => add(&mut file, &mut problems, "", key, item, line, &known),
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(ResolveError::Settings(problems))
    }
}

fn add(
    file: &mut ConfigFile,
    problems: &mut Vec<String>,
    section: &str,
    key: &str,
    item: &toml_edit::Item,
    line: usize,
    known: &HashSet<String>,
) {
    let normalized = key.replace('-', "_");
    let path = file.path.clone();
    if normalized != "profile" && !known.contains(&normalized) {
        let hint = closest(&normalized, known)
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        problems.push(format!("{path} line {line}: unknown setting {key}{hint}"));
        return;
    }
    match file_value(item) {
        Ok((values, boolean)) => {
            file.sections.entry(section.to_owned()).or_default().insert(
                normalized,
                FileValue {
                    values,
                    boolean,
                    line,
                },
            );
        }
        Err(reason) => problems.push(format!("{path} line {line}: {key} {reason}")),
    }
}

fn file_value(item: &toml_edit::Item) -> Result<(Vec<String>, Option<bool>), &'static str> {
    let scalar = |value: &toml_edit::Value| match value {
        toml_edit::Value::String(s) => Ok(s.value().clone()),
        toml_edit::Value::Integer(i) => Ok(i.value().to_string()),
        toml_edit::Value::Float(f) => Ok(f.value().to_string()),
        toml_edit::Value::Boolean(b) => Ok(b.value().to_string()),
        _ => Err("must be a string, a number, a boolean or an array of them"),
    };
    match item.as_value() {
        Some(toml_edit::Value::Array(array)) => {
            Ok((array.iter().map(scalar).collect::<Result<_, _>>()?, None))
        }
        Some(toml_edit::Value::Boolean(b)) => Ok((vec![b.value().to_string()], Some(*b.value()))),
        Some(value) => Ok((vec![scalar(value)?], None)),
        None => Err("must be a string, a number, a boolean or an array of them"),
    }
}

/// Every option id (with a flag) of `command` and its subcommands.
fn known_keys(command: &Command) -> HashSet<String> {
    let mut keys: HashSet<String> = command
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| a.get_id().as_str().to_owned())
        .filter(|id| !NOT_FROM_FILE.contains(&id.as_str()))
        .collect();
    for sub in command.get_subcommands() {
        keys.extend(known_keys(sub));
    }
    keys
}

/// The known key nearest to `key` by edit distance, if near enough to be a typo.
fn closest<'a>(key: &str, known: &'a HashSet<String>) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k.as_str())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
