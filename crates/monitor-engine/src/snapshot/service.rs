//! How a snapshot stores a condition check with a service's texts: as the `service` check
//! that every build wrote before condition checks, so that the format did not change for
//! them and snapshots of older builds restore as condition checks.

use serde::{Deserialize, Serialize};

use crate::spec::{AlertText, ConditionCheck};

/// `{"service_name": "nginx", "subject_type": "systemd"}`: a service check's spec, whose
/// alert texts followed from the service's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceSpec {
    service_name: String,
    subject_type: String,
}

impl ServiceSpec {
    /// `spec` in the service form, when its texts are exactly a service's.
    pub(crate) fn of(spec: &ConditionCheck) -> Option<Self> {
        let service = ServiceSpec {
            service_name: spec.subject_name.clone(),
            subject_type: spec.subject_type.clone(),
        };
        (service.condition() == *spec).then_some(service)
    }

    /// The condition check this service check is. The texts are those the service kind of
    /// monitor-config gives (a test there holds them equal), and those every service alert
    /// had before the engine took them from the spec.
    pub(crate) fn condition(&self) -> ConditionCheck {
        let not_running = format!("Service {} not running", self.service_name);
        let text = |name: &str, status: &str| AlertText {
            name: name.to_owned(),
            status: status.to_owned(),
        };
        ConditionCheck {
            subject_name: self.service_name.clone(),
            subject_type: self.subject_type.clone(),
            critical: text(&not_running, "not-running"),
            ok: text(&not_running, "running"),
            flapping: Some(text(
                &format!("Service {} going up and down", self.service_name),
                "flapping",
            )),
        }
    }
}

/// A condition's state in the service form: whether the service was `running`, that is
/// whether the condition did not hold, then the rest of the state as a condition has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceState<Course> {
    running: Option<bool>,
    #[serde(flatten)]
    course: Course,
}

impl<Course> ServiceState<Course> {
    pub(crate) fn new(holds: Option<bool>, course: Course) -> Self {
        ServiceState {
            running: holds.map(|holds| !holds),
            course,
        }
    }

    /// Whether the condition held, and the rest.
    pub(crate) fn into_condition(self) -> (Option<bool>, Course) {
        (self.running.map(|running| !running), self.course)
    }
}
