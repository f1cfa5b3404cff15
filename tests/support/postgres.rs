//! A fresh database on a real PostgreSQL server, for tests.
//!
//! The server is the one `.ci/run` installs and starts from Debian's packages; tests reach
//! it as `MONITOR_TEST_POSTGRES_URL` (default `postgres://monitor:monitor@127.0.0.1:5432/postgres`,
//! a role allowed to create databases). Each [`PostgresDatabase`] is a new database with a
//! unique name, dropped again when the value is dropped, so tests run in parallel. Uses
//! only `std` and the `psql` client.

#![allow(dead_code)] // each test target uses a different part of it

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_ADMIN_URL: &str = "postgres://monitor:monitor@127.0.0.1:5432/postgres";

pub struct PostgresDatabase {
    admin_url: String,
    pub name: String,
    /// The URL of this database, for `--database-url`.
    pub url: String,
}

impl PostgresDatabase {
    /// A new empty database. `None` (and says why) when no PostgreSQL server answers,
    /// unless `CI=true`, where that is a failure.
    pub fn create() -> Option<PostgresDatabase> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = std::env::var("MONITOR_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!(
            "monitor_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(problem) = psql(&admin_url, &format!("CREATE DATABASE {name}")) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but no PostgreSQL server answers ({problem}); .ci/run installs and starts one");
            }
            eprintln!(
                "skipping: no PostgreSQL server answers ({problem}); set MONITOR_TEST_POSTGRES_URL"
            );
            return None;
        }
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("MONITOR_TEST_POSTGRES_URL ends with /<database>");
        let url = format!("{base}/{name}");
        Some(PostgresDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// Runs SQL in this database, returning what `psql -At` printed.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql).unwrap_or_else(|problem| panic!("{sql}: {problem}"))
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .map_err(|error| format!("cannot run psql: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
