//! Mender's check files: `KEY="value"` lines, read as data and never run.
//!
//! Mender sources these files with a shell. We accept what such files hold in practice
//! (double, single or no quotes, `export`, comments, `\"` inside double quotes) and refuse
//! what would need a shell to mean something (`$VAR`, `$(...)`, backquotes, pipes), so that
//! a value never silently differs from what Mender would have used.
//!
//! A key the check's kind does not read is ignored, as it is by Mender, which sources the
//! file and reads only its own variables (its own test suite writes `DBUS_WATCH_PATTERN`,
//! which it does not read): the check is kept, and the key reported as a warning, naming the
//! closest known key when there is one.

use std::collections::BTreeMap;
use std::path::Path;

use monitor_wire::duration::{expiration_message, Expiration};
use monitor_wire::Subsystem;

use crate::problem::Problem;

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

/// Reads a Mender check file's assignments for a `subsystem` check that may set `known`:
/// their values, and a problem for every line that is not an assignment and every key not
/// in `known`. The kind then takes the values it needs.
pub(crate) fn read_values<'a>(
    subsystem: Subsystem,
    known: &'static [&'static str],
    text: &str,
    file: &'a Path,
) -> MenderValues<'a> {
    let (assignments, errors) = parse_shell_assignments(text);
    let mut values = MenderValues {
        file,
        values: BTreeMap::new(),
        file_problems: errors
            .into_iter()
            .map(|error| Problem {
                field: error.key,
                ..Problem::in_file(file, error.message)
            })
            .collect(),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    for assignment in assignments {
        match known.iter().find(|key| **key == assignment.key) {
            // As in a shell, the last assignment wins.
            Some(key) => {
                values
                    .values
                    .insert(key, (assignment.value, assignment.line));
            }
            None => {
                let advice = match closest_key(&assignment.key, known) {
                    Some(closest) => format!("remove it or use {closest} if you meant it"),
                    None => format!("remove it, or use one of {}", known.join(", ")),
                };
                values.warnings.push(Problem::warning_at_field(
                    file,
                    assignment.key,
                    format!(
                        "line {}: unknown key for a {subsystem} check, ignored: Mender ignores it too; {advice}",
                        assignment.line
                    ),
                ));
            }
        }
    }
    values
}

/// The known key `key` was most likely meant to be: one a typo away (`LOG_PATERN`), else
/// the one that shares the most leading words, at least two (`DBUS_WATCH_PATTERN` for
/// `DBUS_WATCH_EXPRESSION`). `None` when nothing is close.
fn closest_key(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let typo_distance = (key.len() / 4).max(1);
    let by_typo = known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= typo_distance)
        .min_by_key(|(distance, _)| *distance);
    if let Some((_, candidate)) = by_typo {
        return Some(candidate);
    }
    let shared_words = |candidate: &str| {
        key.split('_')
            .zip(candidate.split('_'))
            .take_while(|(ours, theirs)| ours == theirs)
            .count()
    };
    known
        .iter()
        .map(|candidate| (shared_words(candidate), *candidate))
        .filter(|(shared, _)| *shared >= 2)
        // The first of equals: the kind lists its main keys first.
        .fold(
            None,
            |best: Option<(usize, &'static str)>, next| match best {
                Some(best) if best.0 >= next.0 => Some(best),
                _ => Some(next),
            },
        )
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(first: &str, second: &str) -> usize {
    let second = second.as_bytes();
    let mut previous: Vec<usize> = (0..=second.len()).collect();
    for (row, &byte) in first.as_bytes().iter().enumerate() {
        let mut current = vec![row + 1; second.len() + 1];
        for column in 0..second.len() {
            let substitution = previous[column] + usize::from(byte != second[column]);
            current[column + 1] = substitution
                .min(previous[column + 1] + 1)
                .min(current[column] + 1);
        }
        previous = current;
    }
    previous[second.len()]
}

/// The known keys of one file, and the problems found while converting them.
pub(crate) struct MenderValues<'a> {
    pub(crate) file: &'a Path,
    values: BTreeMap<&'static str, (String, usize)>,
    /// Lines that are not assignments, a file no kind reads.
    file_problems: Vec<Problem>,
    /// What the kind found wrong with the values.
    pub(crate) problems: Vec<Problem>,
    /// Keys no kind reads: ignored, as Mender ignores them.
    warnings: Vec<Problem>,
}

impl MenderValues<'_> {
    /// A problem with the file as a whole (found before the kind read its values).
    pub(crate) fn file_problem(&mut self, problem: Problem) {
        self.file_problems.push(problem);
    }

    /// The definition the kind made and its warnings, unless anything was wrong: then every
    /// problem, warnings included, those of the file's lines first.
    pub(crate) fn finish<T>(
        self,
        definition: Option<T>,
    ) -> Result<(T, Vec<Problem>), Vec<Problem>> {
        match definition {
            Some(definition) if self.file_problems.is_empty() && self.problems.is_empty() => {
                Ok((definition, self.warnings))
            }
            _ => {
                let mut problems = self.file_problems;
                problems.extend(self.warnings);
                problems.extend(self.problems);
                Err(problems)
            }
        }
    }

    pub(crate) fn required(&mut self, key: &str, example: &str) -> Option<String> {
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
    pub(crate) fn optional(&self, key: &str) -> Option<String> {
        self.values
            .get(key)
            .map(|(value, _)| value.clone())
            .filter(|value| !value.is_empty())
    }

    /// Parses an optional value, recording a problem (with its line) when it does not parse.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
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

    pub(crate) fn expiration(&mut self, key: &str) -> Option<Expiration> {
        self.parsed(key, |text| {
            text.parse::<Expiration>()
                .map_err(|error| expiration_message(&error))
        })
    }

    pub(crate) fn lines(&mut self, key: &str) -> Option<usize> {
        self.parsed(key, |text| {
            text.trim().parse::<usize>().map_err(|_| {
                format!("\"{text}\" is not a number of lines: write a whole number such as 30")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Mender sources the file and ignores what it does not read: so do we, with a warning
    /// that names the key, its line and the key probably meant.
    #[test]
    fn unknown_keys_are_warnings_and_the_check_is_kept() {
        let file = Path::new("/etc/monitor/available/dbus_test.sh");
        let known = &crate::kind::MENDER_DBUS_KEYS;
        let text = "DBUS_NAME=test\nDBUS_WATCH_PATTERN=type='signal',interface='io.mender.Authentication1'\nDBUS_PATERN=x\nCOLOUR=red\n";
        let values = read_values(Subsystem::Dbus, known, text, file);
        let (name, warnings) = values.finish(Some("kept")).unwrap();
        assert_eq!(name, "kept");
        assert!(warnings.iter().all(Problem::is_warning));
        assert_eq!(
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "/etc/monitor/available/dbus_test.sh: DBUS_WATCH_PATTERN: line 2: unknown key for a dbus check, ignored: Mender ignores it too; remove it or use DBUS_WATCH_EXPRESSION if you meant it",
                "/etc/monitor/available/dbus_test.sh: DBUS_PATERN: line 3: unknown key for a dbus check, ignored: Mender ignores it too; remove it or use DBUS_PATTERN if you meant it",
                "/etc/monitor/available/dbus_test.sh: COLOUR: line 4: unknown key for a dbus check, ignored: Mender ignores it too; remove it, or use one of DBUS_NAME, DBUS_PATTERN, DBUS_WATCH_EXPRESSION, DBUS_ALERT_EXPIRATION, DBUS_PATTERN_EXPIRATION",
            ]
        );

        // With a real problem, the file is refused and the warnings are listed with it.
        let values = read_values(Subsystem::Dbus, known, "COLOUR=red\nA=$HOME\n", file);
        let problems = values.finish(Some("refused")).unwrap_err();
        assert_eq!(
            problems
                .iter()
                .map(|problem| (problem.field.as_deref(), problem.is_warning()))
                .collect::<Vec<_>>(),
            [(Some("A"), false), (Some("COLOUR"), true)]
        );
    }

    #[test]
    fn closest_keys() {
        let log = &crate::kind::MENDER_LOG_KEYS;
        assert_eq!(closest_key("LOG_PATERN", log), Some("LOG_PATTERN"));
        assert_eq!(
            closest_key("LOG_PATERN_EXPIRATION", log),
            Some("LOG_PATTERN_EXPIRATION")
        );
        assert_eq!(
            closest_key("LOG_ALERT_COLOUR", log),
            Some("LOG_ALERT_LEVEL")
        );
        assert_eq!(closest_key("COLOUR", log), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
