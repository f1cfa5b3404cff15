//! The script an `@command` source hands to `sh -c`: Mender's command text, with `exec`
//! put before the command when the text is one simple command.
//!
//! `sh -c 'tail -F f'` stays the parent of `tail` (dash, Debian's `sh`, forks even for the
//! last command; bash and busybox do not), so every source would cost two processes. With
//! `exec` the shell still does all a shell does with the text (quoting, `$VAR`,
//! redirections, assignments, the PATH search and its "not found" with status 127), then
//! becomes the command: one process, whose exit status or signal is the command's own.
//!
//! Only a text that is certainly one simple command gets `exec`: pipelines, lists
//! (`;`, `&&`, `&`), compound commands, builtins and anything the scan below cannot
//! follow (command substitution, `${…}` with more than a name) run unchanged, since there
//! the shell has work left after the command. Misjudging costs a process, never a meaning.

use std::borrow::Cow;

/// Reserved words and builtins of dash, bash and busybox ash: `exec echo` would run
/// `/bin/echo` instead of the shell's own, and `exec exit 3` fails.
const SHELL_WORDS: &[&str] = &[
    "!",
    "[[",
    "]]",
    "case",
    "coproc",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "time",
    "until",
    "while",
    ".",
    ":",
    "alias",
    "bg",
    "break",
    "builtin",
    "caller",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// What `sh -c` runs for `command`: `exec` before its command word when the text is one
/// simple command whose command word is a plain program name or path, else the text as is.
pub(crate) fn shell_script(command: &str) -> Cow<'_, str> {
    match exec_position(command) {
        Some(at) => Cow::Owned(format!("{}exec {}", &command[..at], &command[at..])),
        None => Cow::Borrowed(command),
    }
}

/// Where the command word of a single simple command starts (after any `NAME=value`
/// assignments), or `None` when `exec` there could change what the text does.
fn exec_position(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut command_word: Option<usize> = None;
    // The word being read: where it started, and whether it holds only unquoted bytes.
    let mut word: Option<(usize, bool)> = None;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b' ' | b'\t' => {
                if let Some((start, literal)) = word.take() {
                    if command_word.is_none() {
                        command_word = first_word(text, start, index, literal)?;
                    }
                }
                index += 1;
                continue;
            }
            b'#' if word.is_none() => {
                // A comment to the end of the line; only one line is one command.
                if bytes[index..].contains(&b'\n') {
                    return None;
                }
                break;
            }
            // Lists, pipelines, background jobs, subshells, more lines.
            b'|' | b'&' | b';' | b'(' | b')' | b'\n' | b'`' => return None,
            b'<' | b'>' => {
                // A redirection before the command word (`2>/dev/null tail`, `tail>x`) is
                // legal, but then the words are harder to tell apart: leave it to the shell.
                command_word?;
                // What was read is the operator's file descriptor (`2>&1`) or an argument.
                word = None;
                if bytes.get(index + 1) == Some(&b'<') && byte == b'<' {
                    return None; // a here-document spans lines
                }
                index += 1;
                // `>>`, `>&`, `<&`, `<>`, `>|`: one operator, not a pipe or a background job.
                while matches!(bytes.get(index), Some(b'>' | b'<' | b'&' | b'|')) {
                    index += 1;
                }
                continue;
            }
            _ => {}
        }
        let start = word.map_or(index, |(start, _)| start);
        index = match byte {
            b'\'' => {
                let end = bytes[index + 1..].iter().position(|&b| b == b'\'')?;
                index + 1 + end + 1
            }
            b'"' => skip_double_quoted(bytes, index + 1)?,
            b'\\' => {
                if index + 1 >= bytes.len() {
                    return None;
                }
                index + 2
            }
            b'$' => skip_expansion(bytes, index)?,
            _ => index + 1,
        };
        let plain = !matches!(
            byte,
            b'\'' | b'"' | b'\\' | b'$' | b'*' | b'?' | b'[' | b'{' | b'}' | b'~' | b'='
        );
        // Only a command word needs to be literal; an assignment is told by its `NAME=`.
        let literal = word.is_none_or(|(_, literal)| literal) && plain;
        word = Some((start, literal));
    }
    if let Some((start, literal)) = word {
        if command_word.is_none() {
            command_word = first_word(text, start, bytes.len(), literal)?;
        }
    }
    command_word
}

/// A word met before the command word: `Some(None)` for an assignment (look further),
/// `Some(Some(start))` for a command word `exec` may go before, `None` otherwise.
fn first_word(text: &str, start: usize, end: usize, literal: bool) -> Option<Option<usize>> {
    let word = &text[start..end];
    if let Some((name, _)) = word.split_once('=') {
        if is_name(name) {
            return Some(None);
        }
    }
    if literal && !word.contains('=') && !SHELL_WORDS.contains(&word) {
        Some(Some(start))
    } else {
        None
    }
}

fn is_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Past the closing `"` of a double-quoted string starting at `index`; `None` for what
/// the scan does not follow (command substitution, unclosed quotes).
fn skip_double_quoted(bytes: &[u8], mut index: usize) -> Option<usize> {
    while index < bytes.len() {
        match bytes[index] {
            b'"' => return Some(index + 1),
            b'\\' => index += 2,
            b'`' => return None,
            b'$' => index = skip_expansion(bytes, index)?,
            _ => index += 1,
        }
    }
    None
}

/// Past a `$` expansion: `$NAME`, `$1`, `$?`, `${NAME}`; `None` for `$(…)`, `$((…))`,
/// `${…}` with operators (they may hold quotes and operators of their own) and bash's
/// `$'…'` (where `\'` does not end the quotes).
fn skip_expansion(bytes: &[u8], dollar: usize) -> Option<usize> {
    match bytes.get(dollar + 1) {
        Some(b'(' | b'\'') => None,
        Some(b'{') => {
            let close = bytes[dollar + 2..].iter().position(|&b| b == b'}')?;
            let inside = &bytes[dollar + 2..dollar + 2 + close];
            let simple = !inside.is_empty()
                && inside
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_');
            simple.then_some(dollar + 2 + close + 1)
        }
        _ => Some(dollar + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_script;

    #[track_caller]
    fn execs(text: &str, expected: &str) {
        assert_eq!(shell_script(text), expected, "for {text:?}");
    }

    #[track_caller]
    fn unchanged(text: &str) {
        assert_eq!(shell_script(text), text, "for {text:?}");
    }

    #[test]
    fn a_simple_command_is_execed() {
        execs("tail -F /var/log/x", "exec tail -F /var/log/x");
        execs("  docker events", "  exec docker events");
        execs(
            "journalctl -u mender-authd -f",
            "exec journalctl -u mender-authd -f",
        );
        execs("/usr/bin/tail -F x", "exec /usr/bin/tail -F x");
        execs("/nonexistent/binary", "exec /nonexistent/binary");
    }

    #[test]
    fn shell_syntax_within_one_command_is_kept_for_the_shell() {
        execs("tail -F 'my log.txt'", "exec tail -F 'my log.txt'");
        execs(
            r#"tail -F "$LOGDIR/a b" 2>&1"#,
            r#"exec tail -F "$LOGDIR/a b" 2>&1"#,
        );
        execs(
            "tail -F ${LOGDIR}/app.log",
            "exec tail -F ${LOGDIR}/app.log",
        );
        execs("tail -F x 2>/dev/null", "exec tail -F x 2>/dev/null");
        execs("tail -F x >>out <in", "exec tail -F x >>out <in");
        execs(r"grep -e a\|b f", r"exec grep -e a\|b f");
        execs("tail -F 'a|b;c&d'", "exec tail -F 'a|b;c&d'");
        execs(
            "tail -F x # a comment's quote",
            "exec tail -F x # a comment's quote",
        );
        execs("tail -F /var/log/*.log", "exec tail -F /var/log/*.log");
        execs("tail -F x >| y", "exec tail -F x >| y");
    }

    #[test]
    fn assignments_stay_before_exec() {
        // The shell exports assignments before `exec` to the command (dash, bash, busybox).
        execs("LC_ALL=C tail -F x", "LC_ALL=C exec tail -F x");
        execs(
            "A='1 2' B=\"$C\" tail -F x",
            "A='1 2' B=\"$C\" exec tail -F x",
        );
    }

    #[test]
    fn anything_but_one_simple_command_runs_unchanged() {
        unchanged("tail -F a | grep x");
        unchanged("tail -F a || true");
        unchanged("echo run; exit 3");
        unchanged("sleep 1 & wait");
        unchanged("tail -F a\ntail -F b");
        unchanged("(tail -F a)");
        unchanged("{ tail -F a; }");
        unchanged("if true; then tail -F a; fi");
        unchanged("while :; do sleep 1; done");
        unchanged("exec tail -F a");
        unchanged("echo hi");
        unchanged("exit 3");
        unchanged("trap '' TERM");
        unchanged("cd /tmp");
        unchanged("tail -F $(cat name)");
        unchanged("tail -F `cat name`");
        unchanged("tail -F \"$(cat name)\"");
        unchanged("tail -F ${NAME:-x;y}");
        unchanged("$TOOL -F x");
        unchanged(r"tail -F $'a\tb'");
        unchanged("'tail' -F x");
        unchanged("2>/dev/null tail -F x");
        unchanged("cat <<EOF");
        unchanged("tail -F 'unclosed");
        unchanged("A=1");
        unchanged("");
        unchanged("# only a comment");
        unchanged("tail -F x &>/dev/null");
        unchanged("trailing\\");
    }
}
