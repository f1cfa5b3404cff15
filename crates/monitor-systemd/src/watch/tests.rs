use super::*;

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
    let delays: Vec<_> = (0..12).map(|_| backoff.next_delay()).collect();
    assert_eq!(delays[0], Duration::from_millis(100));
    assert_eq!(delays[1], Duration::from_millis(200));
    assert_eq!(delays[8], Duration::from_millis(25_600));
    assert_eq!(delays[9], Duration::from_secs(30));
    assert_eq!(delays[11], Duration::from_secs(30));
    backoff.reset();
    assert_eq!(backoff.next_delay(), Duration::from_millis(100));
}

#[test]
fn load_problems_say_what_to_do() {
    let status = UnitStatus {
        load_state: "not-found".into(),
        load_error: "Unit nothere.service not found.".into(),
        ..UnitStatus::default()
    };
    assert_eq!(
        load_problem_message(Bus::Session, "nothere.service", &status),
        "unit nothere.service not found on the session bus (Unit nothere.service not found): install its unit file and run `systemctl --user daemon-reload`, or fix the service name in the check"
    );
    let masked = UnitStatus {
        load_state: "masked".into(),
        ..UnitStatus::default()
    };
    assert_eq!(
        load_problem_message(Bus::System, "x.service", &masked),
        "unit x.service is masked: unmask it with `systemctl unmask x.service`"
    );
    let broken = UnitStatus {
        load_state: "bad-setting".into(),
        fragment_path: "/etc/systemd/system/x.service".into(),
        load_error: "Unit x.service has a bad unit file setting.".into(),
        ..UnitStatus::default()
    };
    assert_eq!(
        load_problem_message(Bus::System, "x.service", &broken),
        "unit x.service failed to load (bad-setting) (Unit x.service has a bad unit file setting): fix /etc/systemd/system/x.service and run `systemctl daemon-reload`"
    );
}
