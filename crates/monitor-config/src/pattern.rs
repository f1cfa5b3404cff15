//! Check patterns: regexes over bytes, with errors that fit on one line.

/// Compiles a check's pattern; the error is one line quoting the regex error and the pattern.
pub(crate) fn compile_pattern(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(pattern).map_err(|error| regex_error_message(pattern, &error))
}

/// Compiles a regex over text (a process's command line); errors as [`compile_pattern`]'s.
pub(crate) fn compile_text_pattern(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|error| regex_error_message(pattern, &error))
}

/// `regex parse error: unclosed group at column 1 of "(abc" — fix the pattern`.
///
/// The regex crate's message spans lines (the pattern, a caret line, `error: ...`); a problem
/// is one line, so the reason and the caret's column are taken out of it.
fn regex_error_message(pattern: &str, error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let reason = lines
                .iter()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or(text.as_str());
            // Single-line patterns are shown as: header, "    <pattern>", "    ^^^", "error: ...".
            let column = match lines.as_slice() {
                [_, _, carets, _] if !pattern.contains('\n') => carets
                    .find('^')
                    .and_then(|position| position.checked_sub(3)),
                _ => None,
            };
            match column {
                Some(column) => format!(
                    "regex parse error: {reason} at column {column} of \"{pattern}\" — fix the pattern"
                ),
                None => format!("regex parse error: {reason} in \"{pattern}\" — fix the pattern"),
            }
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "regex \"{pattern}\" is too big once compiled (over {limit} bytes) — simplify the pattern"
        ),
        other => format!("invalid regex \"{pattern}\": {other} — fix the pattern"),
    }
}
