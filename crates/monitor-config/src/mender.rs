//! Mender's check files: `KEY="value"` lines, read as data and never run.
//!
//! Mender sources these files with a shell. We accept what such files hold in practice
//! (double, single or no quotes, `export`, comments, `\"` inside double quotes) and refuse
//! what would need a shell to mean something (`$VAR`, `$(...)`, backquotes, pipes), so that
//! a value never silently differs from what Mender would have used.

use std::collections::BTreeMap;
use std::path::Path;

use monitor_wire::Subsystem;

use crate::check::{
    AlertOverrides, CheckDefinition, DbusDefinition, LogDefinition, ServiceDefinition, ServiceKind,
};
use crate::problem::Problem;
use monitor_wire::duration::{expiration_message, Expiration};

/// The keys a Mender log (or dockerevents) check file may set.
pub const MENDER_LOG_KEYS: [&str; 13] = [
    "SERVICE_NAME",
    "LOG_PATTERN",
    "LOG_FILE",
    "LOG_PATTERN_EXPIRATION",
    "LOG_ALERT_LEVEL",
    "LOG_ALERT_DESCRIPTION",
    "LOG_ALERT_DETAILS",
    "LOG_ALERT_STATUS",
    "LOG_ALERT_TYPE",
    "DEFAULT_LOG_LINES_BEFORE",
    "DEFAULT_LOG_LINES_AFTER",
    "LOG_LINES_BEFORE",
    "LOG_LINES_AFTER",
];

/// The keys a Mender service check file may set.
pub const MENDER_SERVICE_KEYS: [&str; 2] = ["SERVICE_NAME", "SERVICE_TYPE"];

/// The keys a Mender D-Bus check file may set.
pub const MENDER_DBUS_KEYS: [&str; 4] = [
    "DBUS_NAME",
    "DBUS_PATTERN",
    "DBUS_WATCH_EXPRESSION",
    "DBUS_ALERT_EXPIRATION",
];

/// The keys a Mender check file of `subsystem` may set.
pub fn mender_keys(subsystem: Subsystem) -> &'static [&'static str] {
    match subsystem {
        Subsystem::Log | Subsystem::Dockerevents => &MENDER_LOG_KEYS,
        Subsystem::Service => &MENDER_SERVICE_KEYS,
        Subsystem::Dbus => &MENDER_DBUS_KEYS,
        Subsystem::Monitor => &[],
    }
}

/// One `KEY=value` line, with the value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellAssignment {
    pub key: String,
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A line that is not a plain assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSyntaxError {
    /// 1-based line where the assignment starts.
    pub line: usize,
    /// The key, when the line got that far.
    pub key: Option<String>,
    pub message: String,
}

/// Reads every `KEY=value` assignment of a shell-style file, and every line that is not one.
/// A bad line never hides the good ones.
pub fn parse_shell_assignments(text: &str) -> (Vec<ShellAssignment>, Vec<ShellSyntaxError>) {
    let mut cursor = Cursor::new(text);
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    loop {
        while matches!(cursor.peek(), Some(' ' | '\t' | '\r' | '\n' | ';')) {
            cursor.bump();
        }
        let Some(first) = cursor.peek() else {
            break;
        };
        let line = cursor.line;
        if first == '#' {
            cursor.skip_line();
            continue;
        }
        let mut key = cursor.read_name();
        if key == "export" && matches!(cursor.peek(), Some(' ' | '\t')) {
            while matches!(cursor.peek(), Some(' ' | '\t')) {
                cursor.bump();
            }
            key = cursor.read_name();
        }
        let starts_well = key
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
        if !starts_well || cursor.peek() != Some('=') {
            errors.push(ShellSyntaxError {
                line,
                key: None,
                message: format!(
                    "line {line}: expected KEY=\"value\", found `{}{}`: write one KEY=\"value\" per line",
                    key,
                    cursor.rest_of_line().trim_end()
                ),
            });
            cursor.skip_line();
            continue;
        }
        cursor.bump();
        let value = match cursor.read_value() {
            Ok(value) => value,
            Err(message) => {
                errors.push(ShellSyntaxError {
                    line,
                    key: Some(key),
                    message: format!("line {line}: {message}"),
                });
                cursor.skip_line();
                continue;
            }
        };
        while matches!(cursor.peek(), Some(' ' | '\t')) {
            cursor.bump();
        }
        match cursor.peek() {
            None | Some('\n' | '\r' | ';') => {}
            Some('#') => cursor.skip_line(),
            Some(_) => {
                errors.push(ShellSyntaxError {
                    line,
                    key: Some(key),
                    message: format!(
                        "line {line}: unexpected `{}` after the value: put the whole value in double quotes",
                        cursor.rest_of_line().trim_end()
                    ),
                });
                cursor.skip_line();
                continue;
            }
        }
        assignments.push(ShellAssignment { key, value, line });
    }
    (assignments, errors)
}

/// A position in the file being read, counting lines.
struct Cursor {
    chars: Vec<char>,
    position: usize,
    line: usize,
}

impl Cursor {
    fn new(text: &str) -> Self {
        Cursor {
            chars: text.chars().collect(),
            position: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.position += 1;
        if next == '\n' {
            self.line += 1;
        }
        Some(next)
    }

    fn skip_line(&mut self) {
        while self.peek().is_some_and(|next| next != '\n') {
            self.bump();
        }
    }

    fn rest_of_line(&self) -> String {
        self.chars[self.position..]
            .iter()
            .take_while(|next| **next != '\n')
            .collect()
    }

    fn read_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(next) = self
            .peek()
            .filter(|next| next.is_ascii_alphanumeric() || *next == '_')
        {
            name.push(next);
            self.bump();
        }
        name
    }

    /// Reads one shell word: quoted and unquoted pieces up to unquoted whitespace.
    fn read_value(&mut self) -> Result<String, String> {
        let mut value = String::new();
        loop {
            match self.peek() {
                None | Some(' ' | '\t' | '\n' | '\r' | ';') => return Ok(value),
                Some('"') => {
                    self.bump();
                    self.read_double_quoted(&mut value)?;
                }
                Some('\'') => {
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(
                                    "unterminated single quote: end the value with '".to_owned()
                                )
                            }
                            Some('\'') => break,
                            Some(next) => value.push(next),
                        }
                    }
                }
                Some('\\') => {
                    self.bump();
                    match self.bump() {
                        // A backslash before a newline continues the line.
                        None | Some('\n') => {}
                        Some(next) => value.push(next),
                    }
                }
                Some('$') => {
                    self.bump();
                    self.refuse_expansion()?;
                    value.push('$');
                }
                Some('`') => return Err(command_substitution()),
                Some(operator @ ('|' | '&' | '<' | '>' | '(' | ')')) => {
                    return Err(format!(
                        "unquoted `{operator}`: put the whole value in double quotes"
                    ))
                }
                Some(next) => {
                    self.bump();
                    value.push(next);
                }
            }
        }
    }

    /// After an opening `"`: backslash escapes only `$`, `` ` ``, `"`, `\` and newlines,
    /// as in a shell, so regexes like `"\d+"` keep their backslash.
    fn read_double_quoted(&mut self, value: &mut String) -> Result<(), String> {
        loop {
            match self.bump() {
                None => return Err("unterminated double quote: end the value with \"".to_owned()),
                Some('"') => return Ok(()),
                Some('\\') => match self.peek() {
                    Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                        self.bump();
                        value.push(escaped);
                    }
                    Some('\n') => {
                        self.bump();
                    }
                    _ => value.push('\\'),
                },
                Some('$') => {
                    self.refuse_expansion()?;
                    value.push('$');
                }
                Some('`') => return Err(command_substitution()),
                Some(next) => value.push(next),
            }
        }
    }

    /// After a `$`: a variable or command would be expanded by a shell, and we do not run one.
    fn refuse_expansion(&self) -> Result<(), String> {
        match self.peek() {
            Some('(') => Err(command_substitution()),
            Some(next) if next == '{' || next == '_' || next.is_ascii_alphabetic() => {
                let name: String = self.chars[self.position..]
                    .iter()
                    .take_while(|next| next.is_ascii_alphanumeric() || matches!(next, '_' | '{'))
                    .collect();
                Err(format!(
                    "`${name}` would be expanded by a shell, but check files are read, not run: write the value itself, or escape the dollar as \\$"
                ))
            }
            _ => Ok(()),
        }
    }
}

fn command_substitution() -> String {
    "command substitution is not run (check files are read, not run): write the value itself"
        .to_owned()
}

/// Converts a Mender check file's text into our definition. Problems name Mender's keys.
pub(crate) fn definition_from_shell(
    subsystem: Subsystem,
    text: &str,
    file: &Path,
) -> Result<CheckDefinition, Vec<Problem>> {
    let (assignments, errors) = parse_shell_assignments(text);
    let mut problems: Vec<Problem> = errors
        .into_iter()
        .map(|error| Problem {
            file: file.to_owned(),
            field: error.key,
            message: error.message,
        })
        .collect();
    let known = mender_keys(subsystem);
    let mut values = MenderValues {
        file,
        values: BTreeMap::new(),
        problems: Vec::new(),
    };
    for assignment in assignments {
        match known.iter().find(|key| **key == assignment.key) {
            // As in a shell, the last assignment wins.
            Some(key) => {
                values.values.insert(key, (assignment.value, assignment.line));
            }
            None => problems.push(Problem::at_field(
                file,
                assignment.key,
                format!(
                    "line {}: unknown key for a {subsystem} check: use one of {} (or remove the line)",
                    assignment.line,
                    known.join(", ")
                ),
            )),
        }
    }
    let definition = match subsystem {
        Subsystem::Log | Subsystem::Dockerevents => log_definition(&mut values),
        Subsystem::Service => service_definition(&mut values),
        Subsystem::Dbus => dbus_definition(&mut values),
        Subsystem::Monitor => {
            problems.push(crate::check::agent_only(file));
            None
        }
    };
    problems.extend(values.problems);
    match definition {
        Some(definition) if problems.is_empty() => Ok(definition),
        _ => Err(problems),
    }
}

/// The known keys of one file, and the problems found while converting them.
struct MenderValues<'a> {
    file: &'a Path,
    values: BTreeMap<&'static str, (String, usize)>,
    problems: Vec<Problem>,
}

impl MenderValues<'_> {
    fn required(&mut self, key: &str, example: &str) -> Option<String> {
        let value = self.values.get(key).map(|(value, _)| value.clone());
        if value.is_none() {
            self.problems.push(Problem::at_field(
                self.file,
                key,
                format!("missing: add {key}=\"{example}\""),
            ));
        }
        value
    }

    /// The value, or `None` when absent or empty (Mender writes `KEY=""` for "not set").
    fn optional(&self, key: &str) -> Option<String> {
        self.values
            .get(key)
            .map(|(value, _)| value.clone())
            .filter(|value| !value.is_empty())
    }

    /// Parses an optional value, recording a problem (with its line) when it does not parse.
    fn parsed<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let (value, line) = self
            .values
            .get(key)
            .filter(|(value, _)| !value.is_empty())?;
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                let message = format!("line {line}: {message}");
                self.problems
                    .push(Problem::at_field(self.file, key, message));
                None
            }
        }
    }

    fn expiration(&mut self, key: &str) -> Option<Expiration> {
        self.parsed(key, |text| {
            text.parse::<Expiration>()
                .map_err(|error| expiration_message(&error))
        })
    }

    fn lines(&mut self, key: &str) -> Option<usize> {
        self.parsed(key, |text| {
            text.trim().parse::<usize>().map_err(|_| {
                format!("\"{text}\" is not a number of lines: write a whole number such as 30")
            })
        })
    }
}

fn log_definition(values: &mut MenderValues) -> Option<CheckDefinition> {
    let pattern = values.required("LOG_PATTERN", "<regex>");
    let source = values.required("LOG_FILE", "/var/log/<file> or @<command>");
    let expiration = values.expiration("LOG_PATTERN_EXPIRATION");
    values.parsed("LOG_ALERT_LEVEL", |level| {
        if level.trim().eq_ignore_ascii_case("CRITICAL") {
            Ok(())
        } else {
            Err(format!(
                "alert level \"{level}\" is not supported, only CRITICAL: set LOG_ALERT_LEVEL=\"CRITICAL\" or remove the line"
            ))
        }
    });
    let lines_before = values
        .lines("LOG_LINES_BEFORE")
        .or_else(|| values.lines("DEFAULT_LOG_LINES_BEFORE"));
    let lines_after = values
        .lines("LOG_LINES_AFTER")
        .or_else(|| values.lines("DEFAULT_LOG_LINES_AFTER"));
    let description = values.optional("LOG_ALERT_DESCRIPTION");
    let kind = values.optional("LOG_ALERT_TYPE");
    // Mender names docker event alerts after their description (`Docker container web die`).
    let name = if kind.as_deref() == Some("docker_event") {
        description.clone()
    } else {
        None
    };
    let alert = AlertOverrides {
        name,
        description,
        details: values.optional("LOG_ALERT_DETAILS"),
        status: values.optional("LOG_ALERT_STATUS"),
        kind,
    };
    Some(CheckDefinition::Log(LogDefinition {
        pattern: pattern?,
        source: source?,
        expiration,
        lines_before,
        lines_after,
        alert,
    }))
}

fn service_definition(values: &mut MenderValues) -> Option<CheckDefinition> {
    let name = values.required("SERVICE_NAME", "<service>");
    let kind_text = values.required("SERVICE_TYPE", "systemd");
    if kind_text.as_deref() == Some("") {
        values.problems.push(Problem::at_field(
            values.file,
            "SERVICE_TYPE",
            "empty: set SERVICE_TYPE=\"systemd\" or SERVICE_TYPE=\"sysV\"",
        ));
    }
    let kind = values.parsed("SERVICE_TYPE", |text| {
        text.parse::<ServiceKind>()
            .map_err(|error| error.to_string())
    });
    Some(CheckDefinition::Service(ServiceDefinition {
        name: name?,
        kind: kind?,
        on_failure: None,
    }))
}

fn dbus_definition(values: &mut MenderValues) -> Option<CheckDefinition> {
    let bus_name = values.required("DBUS_NAME", "<bus name>");
    let expiration = values.expiration("DBUS_ALERT_EXPIRATION");
    Some(CheckDefinition::Dbus(DbusDefinition {
        bus_name: bus_name?,
        pattern: values.optional("DBUS_PATTERN").unwrap_or_default(),
        watch_expression: values.optional("DBUS_WATCH_EXPRESSION").unwrap_or_default(),
        expiration,
    }))
}

/// A validation problem about one of our fields, renamed to the Mender key it came from.
pub(crate) fn rename_fields_to_mender(subsystem: Subsystem, mut problem: Problem) -> Problem {
    let mender_key = match (subsystem, problem.field.as_deref()) {
        (Subsystem::Log | Subsystem::Dockerevents, Some(field)) => match field {
            "pattern" => Some("LOG_PATTERN"),
            "source" => Some("LOG_FILE"),
            "expiration" => Some("LOG_PATTERN_EXPIRATION"),
            "lines_before" => Some("LOG_LINES_BEFORE"),
            "lines_after" => Some("LOG_LINES_AFTER"),
            "alert.name" | "alert.description" => Some("LOG_ALERT_DESCRIPTION"),
            "alert.details" => Some("LOG_ALERT_DETAILS"),
            "alert.status" => Some("LOG_ALERT_STATUS"),
            "alert.type" => Some("LOG_ALERT_TYPE"),
            _ => None,
        },
        (Subsystem::Service, Some(field)) => match field {
            "name" => Some("SERVICE_NAME"),
            "type" => Some("SERVICE_TYPE"),
            _ => None,
        },
        (Subsystem::Dbus, Some(field)) => match field {
            "bus_name" => Some("DBUS_NAME"),
            "pattern" => Some("DBUS_PATTERN"),
            "watch_expression" => Some("DBUS_WATCH_EXPRESSION"),
            "expiration" => Some("DBUS_ALERT_EXPIRATION"),
            _ => None,
        },
        (Subsystem::Monitor, _) | (_, None) => None,
    };
    if let Some(key) = mender_key {
        problem.field = Some(key.to_owned());
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn file() -> PathBuf {
        PathBuf::from("/etc/mender-monitor/monitor.d/available/log_auth.sh")
    }

    fn values(text: &str) -> Vec<(String, String)> {
        let (assignments, errors) = parse_shell_assignments(text);
        assert_eq!(errors, []);
        assignments
            .into_iter()
            .map(|assignment| (assignment.key, assignment.value))
            .collect()
    }

    #[test]
    fn reads_quotes_export_comments_and_escapes() {
        let text = r#"# This file was autogenerated by Monitoring Utilities based on the configuration
SERVICE_NAME="auth"

export LOG_PATTERN='session opened for user [a-z0-9]* by'
LOG_FILE=/var/log/auth.log   # trailing comment
LOG_ALERT_DESCRIPTION="user said \"hi\" \\o/ for \$5"
LOG_ALERT_DETAILS="digits \d+ stay; so does $"
LOG_ALERT_STATUS=it\'s" here"
"#;
        assert_eq!(
            values(text),
            [
                ("SERVICE_NAME".into(), "auth".into()),
                (
                    "LOG_PATTERN".into(),
                    "session opened for user [a-z0-9]* by".into()
                ),
                ("LOG_FILE".into(), "/var/log/auth.log".into()),
                (
                    "LOG_ALERT_DESCRIPTION".into(),
                    r#"user said "hi" \o/ for $5"#.into()
                ),
                (
                    "LOG_ALERT_DETAILS".into(),
                    r"digits \d+ stay; so does $".into()
                ),
                ("LOG_ALERT_STATUS".into(), "it's here".into()),
            ]
        );
    }

    #[test]
    fn refuses_what_needs_a_shell_and_keeps_going() {
        let text = "A=\"$HOME/log\"\nB=$(cat /etc/x)\nC=\"unterminated\nD=ok\n";
        let (assignments, errors) = parse_shell_assignments(text);
        let messages: Vec<String> = errors.into_iter().map(|error| error.message).collect();
        assert_eq!(
            messages,
            [
                "line 1: `$HOME` would be expanded by a shell, but check files are read, not run: write the value itself, or escape the dollar as \\$",
                "line 2: command substitution is not run (check files are read, not run): write the value itself",
                "line 3: unterminated double quote: end the value with \"",
            ]
        );
        // The unterminated quote swallows the rest of the file, as it would in a shell.
        assert_eq!(assignments, []);

        let (assignments, errors) = parse_shell_assignments("A=one two\nrm -rf /\nB=2\n");
        assert_eq!(
            errors.iter().map(|error| error.message.as_str()).collect::<Vec<_>>(),
            [
                "line 1: unexpected `two` after the value: put the whole value in double quotes",
                "line 2: expected KEY=\"value\", found `rm -rf /`: write one KEY=\"value\" per line",
            ]
        );
        assert_eq!(
            assignments,
            [ShellAssignment {
                key: "B".into(),
                value: "2".into(),
                line: 3
            }]
        );
    }

    #[test]
    fn converts_a_log_check_with_overrides() {
        let text = "SERVICE_NAME=\"web_die\"\nLOG_PATTERN=\".*container die.*name=web.*\"\nLOG_FILE=\"@docker events\"\nLOG_PATTERN_EXPIRATION=\"60\"\nLOG_ALERT_LEVEL=\"CRITICAL\"\nLOG_ALERT_DESCRIPTION=\"Docker container web die\"\nLOG_ALERT_TYPE=\"docker_event\"\nDEFAULT_LOG_LINES_BEFORE=\"10\"\nLOG_LINES_AFTER=5\n";
        let definition = definition_from_shell(Subsystem::Log, text, &file()).unwrap();
        assert_eq!(
            definition,
            CheckDefinition::Log(LogDefinition {
                pattern: ".*container die.*name=web.*".into(),
                source: "@docker events".into(),
                expiration: Some(Expiration::After(Duration::from_secs(60))),
                lines_before: Some(10),
                lines_after: Some(5),
                alert: AlertOverrides {
                    name: Some("Docker container web die".into()),
                    description: Some("Docker container web die".into()),
                    details: None,
                    status: None,
                    kind: Some("docker_event".into()),
                },
            })
        );
    }

    #[test]
    fn converts_service_and_dbus_checks() {
        assert_eq!(
            definition_from_shell(
                Subsystem::Service,
                "SERVICE_NAME=\"cron\"\nSERVICE_TYPE=\"systemd\"\n",
                &file()
            ),
            Ok(CheckDefinition::service("cron", ServiceKind::Systemd))
        );
        assert_eq!(
            definition_from_shell(
                Subsystem::Dbus,
                "DBUS_NAME=\"io.mender.AuthenticationManager\"\nDBUS_PATTERN=\"JwtTokenStateChange\"\nDBUS_WATCH_EXPRESSION=\"type='signal',interface='io.mender.Authentication1'\"\nDBUS_ALERT_EXPIRATION=\"0\"\n",
                &file()
            ),
            Ok(CheckDefinition::dbus(
                "io.mender.AuthenticationManager",
                "JwtTokenStateChange",
                "type='signal',interface='io.mender.Authentication1'",
                Some(Expiration::Never)
            ))
        );
    }

    #[test]
    fn every_problem_names_the_mender_key() {
        let text = "LOG_PATERN=\"x\"\nLOG_FILE=\"/var/log/x\"\nLOG_PATTERN_EXPIRATION=\"soon\"\nLOG_ALERT_LEVEL=\"WARNING\"\n";
        let messages: Vec<String> = definition_from_shell(Subsystem::Log, text, &file())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATERN: line 1: unknown key for a log check: use one of SERVICE_NAME, LOG_PATTERN, LOG_FILE, LOG_PATTERN_EXPIRATION, LOG_ALERT_LEVEL, LOG_ALERT_DESCRIPTION, LOG_ALERT_DETAILS, LOG_ALERT_STATUS, LOG_ALERT_TYPE, DEFAULT_LOG_LINES_BEFORE, DEFAULT_LOG_LINES_AFTER, LOG_LINES_BEFORE, LOG_LINES_AFTER (or remove the line)",
                "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATTERN: missing: add LOG_PATTERN=\"<regex>\"",
                "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_PATTERN_EXPIRATION: line 3: invalid duration \"soon\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m, or never",
                "/etc/mender-monitor/monitor.d/available/log_auth.sh: LOG_ALERT_LEVEL: line 4: alert level \"WARNING\" is not supported, only CRITICAL: set LOG_ALERT_LEVEL=\"CRITICAL\" or remove the line",
            ]
        );
    }

    #[test]
    fn service_type_must_be_known() {
        let messages: Vec<String> = definition_from_shell(
            Subsystem::Service,
            "SERVICE_NAME=\"cron\"\nSERVICE_TYPE=\"upstart\"\n",
            &file(),
        )
        .unwrap_err()
        .iter()
        .map(|problem| problem.to_string())
        .collect();
        assert_eq!(
            messages,
            ["/etc/mender-monitor/monitor.d/available/log_auth.sh: SERVICE_TYPE: line 2: unknown service type \"upstart\": use systemd, sysV or docker"]
        );
    }
}
