//! `lark-testkit serve`: runs the fake open platform until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use lark_testkit::{FakePlatform, FakePlatformConfig};

const USAGE: &str = "\
usage: lark-testkit serve [--addr 127.0.0.1:8080] [--app-id ID] [--app-secret SECRET]
                          [--users N] [--token-ttl SECS]

Runs a fake Feishu / Lark open platform until Ctrl-C. It prints one line:
  lark-testkit listening on http://ADDR app_id=... app_secret=... app_ticket=...
(the app_ticket is valid for the marketplace app_access_token endpoint).";

struct Options {
    addr: SocketAddr,
    config: FakePlatformConfig,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut iter = args.iter();
    match iter.next().map(String::as_str) {
        Some("serve") => {}
        Some(other) => return Err(format!("unknown command `{other}`")),
        None => return Err("missing command".to_owned()),
    }
    let mut options =
        Options { addr: SocketAddr::from(([127, 0, 0, 1], 8080)), config: FakePlatformConfig::default() };
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let known = ["--addr", "--app-id", "--app-secret", "--users", "--token-ttl"];
        if !known.contains(&flag) {
            return Err(format!("unknown argument `{arg}`"));
        }
        let value = match inline {
            Some(v) => v,
            None => iter.next().cloned().ok_or_else(|| format!("`{flag}` needs a value"))?,
        };
        match flag {
            "--addr" => {
                options.addr =
                    value.parse().map_err(|_| format!("`{value}` is not a socket address (host:port)"))?;
            }
            "--app-id" if !value.is_empty() => options.config.app_id = value,
            "--app-secret" if !value.is_empty() => options.config.app_secret = value,
            "--users" => {
                options.config.user_count =
                    value.parse().map_err(|_| format!("`{value}` is not a number of users"))?;
            }
            "--token-ttl" => {
                let secs: u64 = value.parse().map_err(|_| format!("`{value}` is not a number of seconds"))?;
                options.config.token_ttl = Duration::from_secs(secs);
            }
            _ => return Err(format!("`{flag}` needs a non-empty value")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("lark-testkit: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let platform = match FakePlatform::bind(options.addr, options.config).await {
        Ok(platform) => platform,
        Err(e) => {
            eprintln!("lark-testkit: cannot listen on {}: {e}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    let ticket = platform.issue_app_ticket();
    println!(
        "lark-testkit listening on {} app_id={} app_secret={} app_ticket={ticket}",
        platform.base_url(),
        platform.app_id(),
        platform.app_secret(),
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("lark-testkit: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    platform.shutdown();
    ExitCode::SUCCESS
}
