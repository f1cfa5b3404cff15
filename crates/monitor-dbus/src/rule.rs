//! Watch expressions (D-Bus match rules as users write them) into what the watcher needs: the
//! rule to register with the bus and the same rule to filter messages with.
//!
//! The grammar is dbus-daemon's: `key=value` pairs separated by commas, whitespace before a
//! key ignored, values optionally in single quotes, `\'` outside quotes a literal quote.
//! zbus's own parser is stricter (no spaces, quotes required), so users' rules are parsed
//! here and handed to zbus's rule builder key by key.

use zbus::message::Type as MessageType;
use zbus::names::BusName;
use zbus::MatchRule;

/// A check's rule, resolved.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedRule {
    /// For filtering arriving messages ([`MatchRule::matches`]).
    pub(crate) rule: MatchRule<'static>,
    /// The rule as registered with `AddMatch`, with `type='signal'` and the sender added.
    pub(crate) add_match: String,
    /// A well-known sender name: [`MatchRule::matches`] cannot check it (messages carry
    /// unique names), so the watcher follows its owner.
    pub(crate) well_known_sender: Option<String>,
}

const EXAMPLE: &str = "write it like type='signal',interface='org.example.Foo'";

/// Resolves a check's watch expression and its optional `sender`. The error is a message
/// for people.
pub(crate) fn resolve(
    watch_expression: &str,
    sender: Option<&str>,
) -> Result<ResolvedRule, String> {
    let quoted = format!("watch expression \"{watch_expression}\"");
    let mut pairs = parse(watch_expression).map_err(|error| format!("{quoted}: {error}"))?;
    let has = |pairs: &[(String, String)], key: &str| pairs.iter().any(|(k, _)| k == key);
    if !has(&pairs, "type") {
        pairs.insert(0, ("type".to_owned(), "signal".to_owned()));
    }
    if let Some(sender) = sender.map(str::trim) {
        if has(&pairs, "sender") {
            return Err(format!(
                "{quoted} names a sender and the check's sender is \"{sender}\" too: keep one of them"
            ));
        }
        if let Err(error) = BusName::try_from(sender) {
            return Err(format!(
                "sender \"{sender}\" is not a valid bus name ({error}); use a name like org.example.Service, or remove it for any sender"
            ));
        }
        pairs.push(("sender".to_owned(), sender.to_owned()));
    }
    let rule = build(&pairs).map_err(|error| format!("{quoted}: {error}"))?;
    let well_known_sender = match rule.sender() {
        Some(BusName::WellKnown(name)) if name.as_str() != "org.freedesktop.DBus" => {
            Some(name.to_string())
        }
        _ => None,
    };
    Ok(ResolvedRule {
        rule,
        add_match: render(&pairs),
        well_known_sender,
    })
}

/// The `NameOwnerChanged` rule for one name (to follow its owner).
pub(crate) fn name_owner_rule(name: &str) -> String {
    render(&[
        ("type".to_owned(), "signal".to_owned()),
        ("sender".to_owned(), "org.freedesktop.DBus".to_owned()),
        ("path".to_owned(), "/org/freedesktop/DBus".to_owned()),
        ("interface".to_owned(), "org.freedesktop.DBus".to_owned()),
        ("member".to_owned(), "NameOwnerChanged".to_owned()),
        ("arg0".to_owned(), name.to_owned()),
    ])
}

/// Splits a rule into its `(key, value)` pairs.
fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut characters = text.chars().peekable();
    loop {
        while characters.next_if(|c| c.is_whitespace()).is_some() {}
        if characters.peek().is_none() {
            break;
        }
        let mut key = String::new();
        loop {
            match characters.next() {
                Some('=') => break,
                Some(',') | None => {
                    return Err(format!("`{}` has no value; {EXAMPLE}", key.trim()))
                }
                Some(character) => key.push(character),
            }
        }
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(format!("a value has no key; {EXAMPLE}"));
        }
        let mut value = String::new();
        let mut quoted = false;
        // Whitespace outside quotes at the end of a value (before a comma) is not part of it.
        let mut trailing_space = 0;
        loop {
            match characters.next() {
                None if quoted => {
                    return Err(format!(
                        "the value of `{key}` has no closing quote; {EXAMPLE}"
                    ))
                }
                None => break,
                Some('\'') => {
                    quoted = !quoted;
                    trailing_space = 0;
                }
                Some('\\') if !quoted && characters.peek() == Some(&'\'') => {
                    characters.next();
                    value.push('\'');
                    trailing_space = 0;
                }
                Some(',') if !quoted => break,
                Some(character) => {
                    value.push(character);
                    trailing_space = if !quoted && character.is_whitespace() {
                        trailing_space + character.len_utf8()
                    } else {
                        0
                    };
                }
            }
        }
        value.truncate(value.len() - trailing_space);
        if pairs.iter().any(|(existing, _)| *existing == key) {
            return Err(format!("`{key}` is given twice; give each key once"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn build(pairs: &[(String, String)]) -> Result<MatchRule<'static>, String> {
    let mut builder = MatchRule::builder();
    for (key, value) in pairs {
        let value = value.as_str();
        let invalid = |error: zbus::Error| format!("`{key}='{value}'` is invalid: {error}");
        builder = match key.as_str() {
            "type" => match value {
                "signal" => builder.msg_type(MessageType::Signal),
                _ => {
                    return Err(format!(
                        "only signals can be watched, not `type='{value}'`; use type='signal'"
                    ))
                }
            },
            "sender" => builder.sender(value).map_err(invalid)?,
            "interface" => builder.interface(value).map_err(invalid)?,
            "member" => builder.member(value).map_err(invalid)?,
            "path" => builder.path(value).map_err(invalid)?,
            "path_namespace" => builder.path_namespace(value).map_err(invalid)?,
            "destination" => builder.destination(value).map_err(invalid)?,
            "arg0namespace" => builder.arg0ns(value).map_err(invalid)?,
            "eavesdrop" => {
                return Err(
                    "eavesdropping is not supported; remove `eavesdrop` and watch broadcast signals"
                        .to_owned(),
                )
            }
            other => match argument_key(other) {
                Some((index, false)) => builder.arg(index, value).map_err(invalid)?,
                Some((index, true)) => builder.arg_path(index, value).map_err(invalid)?,
                None => {
                    return Err(format!(
                        "unknown key `{other}`; use type, sender, interface, member, path, path_namespace, destination, argN, argNpath or arg0namespace"
                    ))
                }
            },
        };
    }
    Ok(builder.build().to_owned())
}

/// `arg3` → `(3, false)`, `arg3path` → `(3, true)`; indices 0 to 63.
fn argument_key(key: &str) -> Option<(u8, bool)> {
    let rest = key.strip_prefix("arg")?;
    let (digits, path) = match rest.strip_suffix("path") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let index: u8 = digits.parse().ok()?;
    (index < 64).then_some((index, path))
}

/// The rule as the bus reads it: every value quoted, quotes in values escaped.
fn render(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}='{}'", value.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_read_like_dbus_daemon_reads_them() {
        let resolved = resolve(
            " type='signal', interface=org.example.Sensor ,arg0='it'\\''s hot'",
            None,
        )
        .unwrap();
        assert_eq!(
            resolved.add_match,
            "type='signal',interface='org.example.Sensor',arg0='it'\\''s hot'"
        );
    }

    #[test]
    fn signals_only_and_the_sender_is_added() {
        let resolved =
            resolve("interface='org.example.Sensor'", Some("org.example.Owner")).unwrap();
        assert_eq!(
            resolved.add_match,
            "type='signal',interface='org.example.Sensor',sender='org.example.Owner'"
        );
        assert_eq!(
            resolved.well_known_sender.as_deref(),
            Some("org.example.Owner")
        );
        let own_sender = resolve("sender=':1.7'", None).unwrap();
        assert_eq!(own_sender.add_match, "type='signal',sender=':1.7'");
        assert_eq!(own_sender.well_known_sender, None);
        assert_eq!(resolve("", None).unwrap().add_match, "type='signal'");
        assert!(resolve("sender=':1.7'", Some("org.example.Owner"))
            .unwrap_err()
            .contains("keep one of them"));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (rule, expected) in [
            ("type='signal", "no closing quote"),
            ("interface", "has no value"),
            ("colour='red'", "unknown key `colour`"),
            (
                "member='not-a-member'",
                "`member='not-a-member'` is invalid",
            ),
            ("type='method_call'", "only signals"),
            ("type='signal',type='signal'", "given twice"),
            ("arg64='x'", "unknown key `arg64`"),
        ] {
            let error = resolve(rule, None).unwrap_err();
            assert!(error.contains(expected), "{rule}: {error}");
        }
        assert!(resolve("", Some("not a name"))
            .unwrap_err()
            .contains("not a valid bus name"));
    }
}
