//! lark-codegen: reads `shared/api-spec` (`apis.json`, `events.json`) and writes the checked-in
//! generated Rust of lark-rs:
//!
//! - `lark-services/src/generated/`: typed requests, replies and accessors for every API, one
//!   module per project (each a cargo feature, listed in `lark-services/Cargo.toml`);
//! - `lark-services/tests/generated/api_rows.rs`: the rows of the all-APIs table test;
//! - `lark-events/src/generated/`: typed event payloads.
//!
//! Run from anywhere in the workspace:
//!
//! ```text
//! cargo run -p lark-codegen                       # spec from ../shared/api-spec
//! cargo run -p lark-codegen -- --spec DIR         # another snapshot
//! ```
//!
//! The output is formatted with `rustfmt` (the workspace's `rustfmt.toml`) and deterministic:
//! running it twice changes nothing, and files whose content is unchanged are not touched.

mod events;
mod names;
mod services;
mod spec;
mod types;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The generated files, by path relative to the workspace root.
#[derive(Debug, Default)]
pub(crate) struct Output {
    files: BTreeMap<String, String>,
}

impl Output {
    /// Adds a Rust file (formatted with rustfmt before it is written).
    pub(crate) fn rust(&mut self, path: String, text: String) {
        let prev = self.files.insert(path.clone(), text);
        assert!(prev.is_none(), "{path} is generated twice");
    }
}

/// Folders the generator owns: everything in them is replaced.
const OWNED_DIRS: &[&str] =
    &["lark-services/src/generated", "lark-services/tests/generated", "lark-events/src/generated"];

const FEATURES_BEGIN: &str = "# BEGIN lark-codegen features";
const FEATURES_END: &str = "# END lark-codegen features";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lark-codegen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut spec_dir = root.join("../shared/api-spec");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--spec" => spec_dir = PathBuf::from(args.next().ok_or("--spec needs a directory")?),
            "-h" | "--help" => {
                println!(
                    "usage: cargo run -p lark-codegen [-- --spec DIR]   (default DIR: ../shared/api-spec)"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let apis = spec::read_apis(&spec_dir.join("apis.json"))?;
    let events = spec::read_events(&spec_dir.join("events.json"))?;

    let mut out = Output::default();
    let projects = services::generate(&apis, &mut out)?;
    events::generate(&events, &mut out)?;

    let formatted = format_all(&root, out.files)?;
    let mut written = 0;
    for (rel, text) in &formatted {
        let path = root.join(rel);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written += 1;
        }
    }
    let removed = remove_stale(&root, &formatted)?;
    let features = update_features(&root.join("lark-services/Cargo.toml"), &projects)?;
    eprintln!(
        "lark-codegen: {} files ({written} changed, {removed} removed){}",
        formatted.len(),
        if features { "; lark-services features updated" } else { "" }
    );
    Ok(())
}

/// Formats every file with rustfmt (two at a time), keyed as given.
fn format_all(root: &Path, files: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let config = root.join("rustfmt.toml");
    let items: Vec<(String, String)> = files.into_iter().collect();
    let half = items.len().div_ceil(2);
    let (a, b) = items.split_at(half);
    let results: Vec<Result<Vec<(String, String)>, String>> = std::thread::scope(|s| {
        let ha = s.spawn(|| format_chunk(&config, a));
        let hb = s.spawn(|| format_chunk(&config, b));
        vec![
            ha.join().unwrap_or_else(|_| Err("rustfmt thread panicked".into())),
            hb.join().unwrap_or_else(|_| Err("rustfmt thread panicked".into())),
        ]
    });
    let mut out = BTreeMap::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn format_chunk(config: &Path, items: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    items.iter().map(|(path, text)| Ok((path.clone(), rustfmt(config, path, text)?))).collect()
}

fn rustfmt(config: &Path, name: &str, text: &str) -> Result<String, String> {
    let mut child = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args(["--edition", "2021", "--emit", "stdout", "--quiet", "--config-path"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt (install it with `rustup component add rustfmt`): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt has no stdin")?;
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|e| format!("rustfmt failed on {name}: {e}"))?;
    writer.join().map_err(|_| "rustfmt writer panicked")?.map_err(|e| format!("rustfmt stdin: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt rejected generated {name} (a generator bug):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt output for {name} is not UTF-8: {e}"))
}

/// Deletes files in the owned folders that were not generated this time.
fn remove_stale(root: &Path, keep: &BTreeMap<String, String>) -> Result<usize, String> {
    let mut removed = 0;
    for dir in OWNED_DIRS {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel =
                    path.strip_prefix(root).map_err(|e| e.to_string())?.to_string_lossy().replace('\\', "/");
                if !keep.contains_key(&rel) {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Rewrites the generated `[features]` block of lark-services: one feature per project, `full`.
fn update_features(manifest: &Path, projects: &[String]) -> Result<bool, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let (Some(start), Some(end)) = (text.find(FEATURES_BEGIN), text.find(FEATURES_END)) else {
        return Err(format!(
            "{} has no `{FEATURES_BEGIN}` ... `{FEATURES_END}` block in [features]",
            manifest.display()
        ));
    };
    let line_end = start + text[start..].find('\n').ok_or("unterminated features marker")? + 1;
    let mut block = String::new();
    block.push_str("full = [\n");
    for p in projects {
        block.push_str(&format!("    \"{p}\",\n"));
    }
    block.push_str("]\n");
    for p in projects {
        block.push_str(&format!("{p} = []\n"));
    }
    let new = format!("{}{}{}", &text[..line_end], block, &text[end..]);
    if new == text {
        return Ok(false);
    }
    std::fs::write(manifest, new).map_err(|e| format!("cannot write {}: {e}", manifest.display()))?;
    Ok(true)
}
