//! Render the man pages and shell completions of `monitord` and `monitorctl` from the
//! command-line definitions the binaries parse (`cross/build.sh` puts them in the packages):
//!
//! ```sh
//! cargo run -p monitor --example cli_docs -- OUT_DIR
//! ```
//!
//! writes `OUT_DIR/man/` (`monitord.8`, `monitorctl.1` and a page per subcommand such as
//! `monitorctl-create-log.1`) and `OUT_DIR/completions/{bash,zsh,fish}/`.

use std::fs;
use std::io;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use monitor::cli::{monitorctl, monitord};

fn main() -> io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::other("usage: cli_docs OUT_DIR"))?;

    let man = out.join("man");
    fs::create_dir_all(&man)?;
    // The agent is a system daemon (section 8); the command line is a user command.
    let mut page = Vec::new();
    clap_mangen::Man::new(monitord::Args::command())
        .section("8")
        .render(&mut page)?;
    fs::write(man.join("monitord.8"), page)?;
    clap_mangen::generate_to(monitorctl::Args::command(), &man)?;

    for (shell, folder) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let folder = out.join("completions").join(folder);
        fs::create_dir_all(&folder)?;
        for mut command in [monitord::Args::command(), monitorctl::Args::command()] {
            let name = command.get_name().to_owned();
            clap_complete::generate_to(shell, &mut command, name, &folder)?;
        }
    }
    Ok(())
}
