//! `monitorctl create <subsystem> ...`: each kind describes its arguments, in the order
//! Mender's `mender-monitorctl` takes them, and builds its definition from them;
//! `monitorctl` makes its command line out of these descriptions.

use monitor_wire::duration::Expiration;
use monitor_wire::Subsystem;

/// `monitorctl create <subsystem>` for one subsystem.
#[derive(Debug, Clone, Copy)]
pub struct CreateCommand {
    pub subsystem: Subsystem,
    /// One line for `monitorctl create --help`.
    pub about: &'static str,
    /// Shown after the help: `Example:` and a command line or two.
    pub examples: &'static str,
    /// Positional, in order; the optional ones last.
    pub arguments: &'static [CreateArgument],
}

/// Checks one value of a [`CreateArgument`]: `Err` says what is wrong and what to write.
pub type ValueCheck = fn(&str) -> Result<(), String>;

/// One positional argument of a [`CreateCommand`].
#[derive(Debug, Clone, Copy)]
pub struct CreateArgument {
    /// Lowercase (`pattern`).
    pub name: &'static str,
    /// How the help shows it: `PATTERN` (as `<PATTERN>`, or `[PATTERN]` when optional).
    pub value_name: &'static str,
    /// One line of help, if any.
    pub help: Option<&'static str>,
    pub required: bool,
    /// Checks the value while the command line is parsed, so that a bad value is refused
    /// there, naming the argument; the message says what to write.
    pub check: Option<ValueCheck>,
}

impl CreateArgument {
    /// A required argument taken as it is written.
    pub(crate) const fn text(
        name: &'static str,
        value_name: &'static str,
        help: Option<&'static str>,
    ) -> Self {
        CreateArgument {
            name,
            value_name,
            help,
            required: true,
            check: None,
        }
    }

    /// The optional expiration that ends most `create` commands.
    pub(crate) const fn expiration(help: Option<&'static str>) -> Self {
        CreateArgument {
            name: "expiration",
            value_name: "EXPIRATION",
            help,
            required: false,
            check: Some(check_expiration),
        }
    }
}

fn check_expiration(text: &str) -> Result<(), String> {
    text.parse::<Expiration>()
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// The values given for a [`CreateCommand`]'s arguments, by position (`None` for an
/// optional one left out).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreateValues<'a>(pub(crate) &'a [Option<String>]);

impl CreateValues<'_> {
    /// The value at `index`; empty when missing (the command line requires it anyway).
    pub(crate) fn text(&self, index: usize) -> String {
        self.0.get(index).cloned().flatten().unwrap_or_default()
    }

    /// The expiration at `index`, if given.
    pub(crate) fn expiration(&self, index: usize) -> Result<Option<Expiration>, String> {
        match self.0.get(index).and_then(Option::as_deref) {
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|error: monitor_wire::duration::DurationError| error.to_string()),
            None => Ok(None),
        }
    }
}
