//! A test certificate authority and server certificates, made by the real `openssl` CLI.
//!
//! Shared by the server's tests and the agent's end-to-end tests through `#[path]` modules,
//! so it uses only `std` and `tempfile`.

#![allow(dead_code)] // each test target uses a different part of it

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(directory: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(directory)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("the openssl CLI is needed (apt-get install openssl): {error}")
        });
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.pem`) and one server certificate it signed (`server.pem`, `server.key`) for
/// `127.0.0.1` and `localhost`, in a directory of their own.
pub struct TestCertificates {
    directory: tempfile::TempDir,
}

impl TestCertificates {
    pub fn generate() -> TestCertificates {
        let directory = tempfile::tempdir().expect("a directory for the certificates");
        let path = directory.path();
        openssl(
            path,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=monitor test CA",
            ],
        );
        std::fs::write(
            path.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            path,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            path,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        TestCertificates { directory }
    }

    pub fn ca(&self) -> PathBuf {
        self.directory.path().join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.directory.path().join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.directory.path().join("server.key")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca()).unwrap()
    }
}
