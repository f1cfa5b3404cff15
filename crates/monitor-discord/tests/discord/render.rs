use monitor_destination::OutgoingAlert;
use monitor_discord::render_alerts;
use monitor_wire::{CheckId, HistoryRecord, Subsystem};
use serde_json::{json, Value};

use crate::discord_standin::validate;
use crate::*;

fn single_embed(record: HistoryRecord) -> Value {
    let messages = render_alerts(DEVICE, &outgoing(&[record]), None, None);
    assert_eq!(messages.len(), 1);
    messages[0]["embeds"][0].clone()
}

fn characters(value: &Value) -> usize {
    value.as_str().expect("a string").chars().count()
}

/// Every message Discord would accept, as the stand-in checks it.
fn assert_valid(messages: &[Value]) {
    for message in messages {
        let errors = validate(message);
        assert!(errors.is_empty(), "Discord would refuse it: {errors:#?}");
    }
}

#[test]
fn service_critical_of_seed_000_is_a_red_embed_posted_as_systemd() {
    let messages = render_alerts(
        DEVICE,
        &outgoing(&[service_justfail_critical()]),
        Some("systemd"),
        Some("https://example.invalid/systemd.png"),
    );
    assert_valid(&messages);
    assert_eq!(messages.len(), 1);
    let embed = &messages[0]["embeds"][0];
    assert_eq!(embed["color"], json!(0xFF0000));
    assert_eq!(embed["title"], "Service justfail not running");
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .contains("Active: failed (Result: exit-code)"));
    assert_eq!(messages[0]["username"], "systemd");
    assert_snapshot("service_critical", &messages[0]);
}

#[test]
fn log_critical_shows_the_matching_line_among_its_context() {
    let messages = render_alerts(DEVICE, &outgoing(&[log_crasher_critical()]), None, None);
    assert_valid(&messages);
    assert_eq!(messages[0]["allowed_mentions"], json!({"parse": []}));
    assert_snapshot("log_critical", &messages[0]);
}

#[test]
fn ok_is_green_with_its_reason() {
    let messages = render_alerts(
        DEVICE,
        &outgoing(&[service_justfail_ok()]),
        Some("systemd"),
        None,
    );
    assert_valid(&messages);
    assert_eq!(messages[0]["embeds"][0]["color"], json!(0x2ECC71));
    assert_snapshot("service_ok", &messages[0]);
}

#[test]
fn flapping_critical_is_orange() {
    let messages = render_alerts(DEVICE, &outgoing(&[service_crasher_flapping()]), None, None);
    assert_valid(&messages);
    assert_eq!(messages[0]["embeds"][0]["color"], json!(0xFFA500));
    assert_snapshot("service_flapping", &messages[0]);

    // Recognised by its name too, when the status says something else.
    let mut by_name = service_crasher_flapping();
    by_name.alert.subject.status = "not-running".into();
    assert_eq!(single_embed(by_name)["color"], json!(0xFFA500));
}

#[test]
fn usernames_discord_refuses_become_monitor() {
    for refused in ["Discord alerts", "CLYDE", "", "   "] {
        let messages = render_alerts(
            DEVICE,
            &outgoing(&[service_justfail_ok()]),
            Some(refused),
            None,
        );
        assert_eq!(messages[0]["username"], "monitor", "{refused:?}");
        assert_valid(&messages);
    }
    let long = "é".repeat(100);
    let messages = render_alerts(
        DEVICE,
        &outgoing(&[service_justfail_ok()]),
        Some(&long),
        None,
    );
    assert_eq!(characters(&messages[0]["username"]), 80);
    assert_valid(&messages);
}

#[test]
fn long_multibyte_log_lines_are_cut_by_characters_keeping_the_end() {
    let mut record = numbered_log_alert(1);
    // 5000 two-byte characters, then the cause.
    let line = format!("{}the cause", "é".repeat(5000));
    record.alert.subject.details.line_matching = Some(log_line(7, &line));
    let embed = single_embed(record);
    let description = embed["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 4096);
    assert!(description.len() > 4096, "counted in characters, not bytes");
    assert!(description.starts_with("```\n…"), "{}", &description[..20]);
    assert!(description.ends_with("éthe cause\n```"));
}

#[test]
fn emoji_lines_of_context_are_cut_by_characters() {
    let mut record = numbered_log_alert(1);
    let details = &mut record.alert.subject.details;
    details.description = Some(format!("🦀{}", "ü".repeat(3000)));
    details.lines_before = (0..300)
        .map(|number| log_line(number, &format!("🔥 context line {number} 💥")))
        .collect();
    details.line_matching = Some(log_line(300, "🚨 the matching line"));
    let embed = single_embed(record);
    let description = embed["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 4096);
    // The intro keeps its beginning, within a quarter of the room.
    assert!(description.starts_with(&format!("🦀{}…\n```\n…", "ü".repeat(1022))));
    assert!(description.ends_with("➤ 🚨 the matching line\n```"));
}

#[test]
fn titles_and_fields_keep_their_beginning() {
    let mut record = service_justfail_critical();
    record.alert.name = "é".repeat(300);
    record.alert.subject.status = "🦀".repeat(2000);
    let embed = single_embed(record);
    assert_eq!(characters(&embed["title"]), 256);
    assert_eq!(
        embed["title"].as_str().unwrap(),
        format!("{}…", "é".repeat(255))
    );
    let status = &embed["fields"][2];
    assert_eq!(status["name"], "Status");
    assert_eq!(characters(&status["value"]), 1024);
    assert!(status["value"].as_str().unwrap().ends_with("🦀…"));
}

#[test]
fn empty_values_never_reach_discord() {
    let mut record = service_justfail_ok();
    record.alert.subject.status = String::new();
    record.alert.name = " ".into();
    let messages = render_alerts("", &outgoing(&[record]), None, None);
    assert_valid(&messages);
    let embed = &messages[0]["embeds"][0];
    assert_eq!(embed["title"], "service justfail");
    assert_eq!(embed["fields"][0]["value"], "-");
    assert_eq!(embed["fields"][2]["value"], "-");
}

#[test]
fn one_embed_too_large_for_a_message_alone_is_shrunk() {
    let mut record = service_justfail_critical();
    record.alert.name = "t".repeat(1000);
    record.alert.subject.status = "s".repeat(2000);
    record.alert.subject.details.description = Some("d".repeat(10_000));
    record
        .alert
        .subject
        .details
        .fields
        .insert("reason".into(), Value::from("r".repeat(2000)));
    let long_device = "é".repeat(2000);
    let messages = render_alerts(&long_device, &outgoing(&[record]), None, None);
    assert_valid(&messages);
    assert_eq!(messages.len(), 1);
}

#[test]
fn bursts_are_coalesced_within_ten_embeds_and_6000_characters_in_order() {
    // Records of varied sizes: many small, some near the description limit.
    let records: Vec<HistoryRecord> = (0..57u64)
        .map(|index| {
            let mut record = numbered_log_alert(index);
            let size = match index % 7 {
                0 => 3900,
                3 => 1500,
                _ => 20,
            };
            record.alert.subject.details.lines_after =
                vec![log_line(index + 1, &"ö".repeat(size as usize))];
            record
        })
        .collect();
    let messages = render_alerts(DEVICE, &outgoing(&records), Some("systemd"), None);
    assert_valid(&messages);
    let titles: Vec<String> = messages
        .iter()
        .flat_map(|message| message["embeds"].as_array().unwrap().clone())
        .map(|embed| embed["title"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = records
        .iter()
        .map(|record| record.alert.name.clone())
        .collect();
    assert_eq!(titles, expected, "each record once, in order");
    for message in &messages {
        assert!(message["embeds"].as_array().unwrap().len() <= 10);
    }
    // Greedy: a message is only closed when the next embed would not fit.
    for pair in messages.windows(2) {
        let first = pair[0]["embeds"].as_array().unwrap();
        let next_embed = &pair[1]["embeds"][0];
        let mut joined = pair[0].clone();
        let mut embeds = first.clone();
        embeds.push(next_embed.clone());
        joined["embeds"] = Value::from(embeds);
        assert!(
            first.len() == 10 || !validate(&joined).is_empty(),
            "a message was closed early"
        );
    }
    // Small alerts only: 10 per message.
    let small: Vec<HistoryRecord> = (0..25).map(numbered_log_alert).collect();
    let counts: Vec<usize> = render_alerts(DEVICE, &outgoing(&small), None, None)
        .iter()
        .map(|message| message["embeds"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [10, 10, 5]);
}

#[test]
fn reason_that_is_not_text_is_shown_as_json_and_other_subsystems_show_text() {
    let mut record = record(
        9,
        CheckId::new(Subsystem::Dbus, "upower"),
        service_justfail_ok().alert,
    );
    record
        .alert
        .subject
        .details
        .fields
        .insert("reason".into(), json!({"exit_code": 3}));
    record.alert.subject.details.description = Some("battery low".into());
    let embed = single_embed(record);
    assert_eq!(
        embed["fields"][3],
        json!({"name": "Reason", "value": "{\"exit_code\":3}", "inline": false})
    );
    assert_eq!(embed["description"], "battery low");
}

/// An alert as monitor-server has it: Mender's wire alert, naming no check.
fn of_no_known_check(record: &HistoryRecord) -> OutgoingAlert<'_> {
    OutgoingAlert {
        check: None,
        ..OutgoingAlert::from(record)
    }
}

#[test]
fn an_alert_of_no_known_check_shows_its_subject_and_is_otherwise_rendered_alike() {
    for record in [
        service_justfail_critical(),
        service_justfail_ok(),
        log_crasher_critical(),
        service_crasher_flapping(),
    ] {
        let mut expected = single_embed(record.clone());
        expected["fields"][1] = json!({
            "name": "Subject",
            "value": format!("{} {}", record.alert.subject.kind, record.alert.subject.name),
            "inline": true,
        });
        let messages = render_alerts(DEVICE, &[of_no_known_check(&record)], None, None);
        assert_valid(&messages);
        assert_eq!(messages[0]["embeds"][0], expected, "{}", record.alert.name);
    }
}

#[test]
fn without_a_check_a_service_is_known_by_its_subject_type() {
    let mut record = service_justfail_critical();
    let status = record.alert.subject.details.description.clone().unwrap();
    for kind in ["systemd", "sysV", "sysv", "docker"] {
        record.alert.subject.kind = kind.into();
        let messages = render_alerts(DEVICE, &[of_no_known_check(&record)], None, None);
        assert_eq!(
            messages[0]["embeds"][0]["description"],
            format!("```\n{status}\n```"),
            "{kind}"
        );
    }
    // Any other subject type: the description is text, and an empty name falls back to
    // the subject.
    record.alert.subject.kind = "dbus".into();
    record.alert.name = String::new();
    let messages = render_alerts(DEVICE, &[of_no_known_check(&record)], None, None);
    assert_valid(&messages);
    let embed = &messages[0]["embeds"][0];
    assert_eq!(embed["description"], status.as_str());
    assert_eq!(embed["title"], "dbus justfail");
}

#[test]
fn no_records_no_messages() {
    assert!(render_alerts(DEVICE, &outgoing(&[]), None, None).is_empty());
}

#[test]
fn an_alerts_link_makes_its_title_a_link() {
    let record = service_justfail_critical();
    let link = "https://monitor.example/ui/devices/d1";
    let linked = OutgoingAlert {
        link: Some(link),
        ..of_no_known_check(&record)
    };
    let messages = render_alerts(DEVICE, &[linked], None, None);
    assert_valid(&messages);
    assert_eq!(messages[0]["embeds"][0]["url"], link);
    let unlinked = render_alerts(DEVICE, &[of_no_known_check(&record)], None, None);
    assert!(unlinked[0]["embeds"][0].get("url").is_none());
}
