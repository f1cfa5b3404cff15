//! A webhook through the `Destination` interface.

use std::time::Duration;

use monitor_destination::{Destination, Verdict};
use monitor_discord::{DiscordDestination, GlobalPause};
use serde_json::json;

use crate::delivery::client_for;
use crate::discord_standin::{Behaviour, DiscordStandIn, Scripted};
use crate::*;

fn destination(standin: &DiscordStandIn, pause: &GlobalPause) -> DiscordDestination {
    DiscordDestination::new(client_for(standin, None, None), pause.clone())
}

#[tokio::test]
async fn failures_become_verdicts_and_a_ban_pauses_every_webhook_sharing_the_pause() {
    let standin = DiscordStandIn::start(Behaviour::default());
    let shared = GlobalPause::default();
    let mut banned = destination(&standin, &shared);
    let other = destination(&standin, &shared);
    let alone = destination(&standin, &GlobalPause::default());
    let records = [service_justfail_critical(), service_justfail_ok()];

    standin.script([Scripted::HtmlBan]);
    let verdict = banned.deliver(DEVICE, &outgoing(&records)).await;
    let Verdict::Retry {
        delivered,
        after,
        message,
    } = verdict
    else {
        panic!("expected a retry, got {verdict:?}");
    };
    assert_eq!((delivered, after), (0, Duration::from_secs(60)));
    assert!(
        message.contains("banned") && !message.contains(TOKEN),
        "{message}"
    );
    let until = other.paused_until().expect("the other webhook pauses too");
    let left = until - tokio::time::Instant::now();
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    assert_eq!(alone.paused_until(), None);

    standin.script([Scripted::Json {
        status: 403,
        body: json!({"message": "Missing Access", "code": 50001}),
    }]);
    // Discord's own 403 (no access to the channel): the webhook is unusable as configured,
    // so the caller stops it and keeps the records, rather than splitting the batch.
    let verdict = banned.deliver(DEVICE, &outgoing(&records)).await;
    assert!(matches!(verdict, Verdict::Gone { .. }), "{verdict:?}");

    assert_eq!(
        banned.deliver(DEVICE, &outgoing(&records)).await,
        Verdict::Delivered
    );
    assert_eq!(standin.embeds().len(), 2);
}

#[tokio::test]
async fn a_deleted_webhook_is_gone_for_good() {
    let standin = DiscordStandIn::start(Behaviour {
        gone: true,
        ..Behaviour::default()
    });
    let mut gone = destination(&standin, &GlobalPause::default());
    let verdict = gone
        .deliver(DEVICE, &outgoing(&[service_justfail_critical()]))
        .await;
    let Verdict::Gone { message } = verdict else {
        panic!("expected gone, got {verdict:?}");
    };
    assert!(
        message.contains("10015") && !message.contains(TOKEN),
        "{message}"
    );
}
