//! The `lark-testkit` binary: argument errors and the start-up line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lark-testkit");

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [
        &[][..],
        &["bogus"][..],
        &["serve", "--addr"][..],
        &["serve", "--addr", "nope"][..],
        &["serve", "--what"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("usage: lark-testkit serve"), "{stderr}");
    }
}

#[test]
fn serve_prints_its_address() {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--app-id=cli_cafe", "--app-secret", "s3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    child.kill().unwrap();
    child.wait().unwrap();
    read.unwrap();
    assert!(line.starts_with("lark-testkit listening on http://127.0.0.1:"), "{line}");
    assert!(line.contains(" app_id=cli_cafe "), "{line}");
    let port = line["lark-testkit listening on http://127.0.0.1:".len()..].split(' ').next().unwrap();
    assert!(port.parse::<u16>().unwrap() > 0);
}
