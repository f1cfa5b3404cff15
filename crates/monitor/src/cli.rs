//! The command lines of both binaries. They live in the library so that the packaging
//! renders the man pages and shell completions (`examples/cli_docs.rs`) from the very
//! definitions the binaries parse.

pub mod monitorctl;
pub mod monitord;
