//! Control requests: status, pending deliveries, reload, follow, record, raise and clear.

use monitor_engine::{Emitted, Observation};
use monitor_wire::control::{AgentStatus, Request, Response};
use tokio::sync::oneshot;

use super::raised::{self, Raise};
use super::Agent;
use crate::clock;

impl Agent {
    pub(super) async fn on_request(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        if !self.ready {
            self.early_requests.push((request, reply));
            return;
        }
        if let Request::Reload = request {
            self.reload().await;
            self.reload_replies.push((self.generation, reply));
            return;
        }
        if let Request::Alerts { after, wait } = request {
            self.followers.follow(after, wait, reply);
            return;
        }
        // A clear or a raise is a person's (or a script's) word, which no log line or unit
        // repeats after a crash: it is answered once it is in a written checkpoint (or
        // after a few seconds on a stalled disk; its alert was delivered either way).
        if matches!(request, Request::Clear { .. } | Request::Raise { .. }) {
            let before = self.next_seq;
            let response = self.answer(request);
            let newest = self.next_seq - 1;
            if self.next_seq > before && newest > self.persister.checkpointed_seq() {
                self.followers.reply_when_durable(newest, reply, response);
            } else {
                let _ = reply.send(response);
            }
            return;
        }
        let _ = reply.send(self.answer(request));
    }

    fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Status => {
                let mut checks = crate::status::check_statuses(
                    &self.plan,
                    &self.engine,
                    &self.source_problems,
                    &self.not_here,
                    &self.first_reads,
                    self.settings.systemd.bus,
                );
                // The agent's own check shows while it has something to say.
                checks.extend(self.state_dir.status(&self.engine, clock::now()));
                checks.extend(raised::statuses(&self.engine));
                checks.extend(super::failed_units::statuses(&self.plan, &self.engine));
                Response::Status {
                    agent: AgentStatus {
                        version: env!("CARGO_PKG_VERSION").into(),
                        device_id: self.device_id.clone(),
                        pid: std::process::id(),
                        started: self.started,
                    },
                    checks,
                    problems: self.plan.problems.clone(),
                    heartbeat: self
                        .delivery
                        .statuses()
                        .into_iter()
                        .find_map(|destination| destination.heartbeat),
                }
            }
            Request::Pending => Response::Pending {
                destinations: self.delivery.statuses(),
            },
            Request::Reload | Request::Alerts { .. } => Response::Error {
                message: "answered once the watchers caught up".into(),
            },
            Request::Record { check, unit, alert } => {
                if self
                    .plan
                    .services
                    .iter()
                    .any(|service| service.unit == unit)
                {
                    tracing::debug!(%unit, "a failure reported from outside for a unit the agent watches itself; not recorded twice");
                    return Response::Done;
                }
                tracing::info!(%unit, "recording a failure reported by monitorctl notify-failure");
                self.emit(vec![Emitted {
                    check,
                    alert: *alert,
                }]);
                Response::Done
            }
            Request::Raise {
                level,
                subject,
                name,
                details,
                status,
                subject_type,
            } => self.raise(Raise {
                level,
                subject,
                name,
                details,
                status,
                subject_type,
            }),
            Request::Clear { check } if raised::is_raised(&check) => self.clear_raised(&check),
            Request::Clear { check } => {
                let now = clock::now();
                // The agent's own checks (`monitor state_dir`) are not a person's to clear.
                if self.engine.view(&check, now).is_none()
                    || !self.plan.enabled.contains(&check)
                    || self.plan.unwatched.contains_key(&check)
                {
                    return Response::Error {
                        message: format!(
                            "no watched check \"{check}\" is enabled; see monitorctl list"
                        ),
                    };
                }
                let emitted = self.engine.observe(&check, Observation::Clear, now);
                self.emit(emitted);
                Response::Done
            }
        }
    }
}
