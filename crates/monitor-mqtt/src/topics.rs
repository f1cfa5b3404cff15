//! Topic names: what a check's or a device's name may not bring into a topic.

/// `text` as one topic level: MQTT's wildcards `+` and `#`, the level separator `/` and
/// control characters (NUL included, which MQTT forbids) become `_`, so a check or device
/// name can neither add levels nor make a topic a filter; an empty text is `_`.
pub fn topic_level(text: &str) -> String {
    let level: String = text
        .chars()
        .map(|character| match character {
            '+' | '#' | '/' => '_',
            character if character.is_control() => '_',
            character => character,
        })
        .collect();
    if level.is_empty() {
        "_".to_owned()
    } else {
        level
    }
}

/// `text` as an id Home Assistant takes in a discovery topic (`node_id`, `object_id`) and
/// as an entity's `unique_id`: only `[a-zA-Z0-9_-]`, anything else `_`.
pub fn discovery_id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' {
                character
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        "_".to_owned()
    } else {
        id
    }
}

/// What is wrong with `topic` as the start of every topic published (`base_topic`,
/// `discovery_prefix`), or `None`: levels may be nested (`home/monitor`), but no wildcard,
/// no empty level, no leading `$` (the broker's own topics) and no control character.
pub fn topic_prefix_problem(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        Some("empty: write a topic such as monitor")
    } else if topic.contains(['+', '#']) {
        Some("holds a wildcard (+ or #): write a plain topic such as monitor")
    } else if topic.split('/').any(str::is_empty) {
        Some("has an empty level (a leading, trailing or double /): write levels such as home/monitor")
    } else if topic.starts_with('$') {
        Some("starts with $, which brokers keep for their own topics")
    } else if topic.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_name_adds_no_level_and_no_wildcard() {
        assert_eq!(topic_level("a/b+c#d\0e\nf"), "a_b_c_d_e_f");
        assert_eq!(topic_level("nginx.service"), "nginx.service");
        assert_eq!(topic_level(""), "_");
    }

    #[test]
    fn discovery_ids_keep_only_what_home_assistant_takes() {
        assert_eq!(discovery_id("log app.sh"), "log_app_sh");
        assert_eq!(discovery_id("pi-4"), "pi-4");
        assert_eq!(discovery_id("ü/+"), "___");
    }

    #[test]
    fn topic_prefixes_are_checked() {
        assert_eq!(topic_prefix_problem("home/monitor"), None);
        assert!(topic_prefix_problem("monitor/#").is_some());
        assert!(topic_prefix_problem("/monitor").is_some());
        assert!(topic_prefix_problem("$SYS").is_some());
        assert!(topic_prefix_problem("").is_some());
    }
}
