//! The command line: flags, and the checks of --file and --out before any network work.

use std::path::{Path, PathBuf};

pub struct Args {
    pub command: String,
    pub discovery: String,
    pub api_key: Option<String>,
    pub out: PathBuf,
    pub peer: Option<String>,
    pub file: Option<PathBuf>,
    pub relay_count: usize,
}

pub fn usage() -> ! {
    eprintln!(
        "usage: file-transfer listen|send --discovery URL [--api-key KEY] [--relay-count N] [--out DIR] [--peer ID --file PATH]"
    );
    std::process::exit(2)
}

pub fn parse_args() -> Args {
    let mut args = Args {
        command: String::new(),
        discovery: std::env::var("DISCOVERY_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        // the account's API key, when the relays require tickets (pos-relay dev prints one)
        api_key: std::env::var("API_KEY").ok(),
        out: PathBuf::from("."),
        peer: None,
        file: None,
        relay_count: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--discovery" => args.discovery = value(),
            "--api-key" => args.api_key = Some(value()),
            "--out" => args.out = PathBuf::from(value()),
            "--peer" => args.peer = Some(value()),
            "--file" => args.file = Some(PathBuf::from(value())),
            "--relay-count" => {
                let v = value();
                args.relay_count = match v.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        eprintln!("--relay-count must be a positive integer, not {v}");
                        std::process::exit(2)
                    }
                }
            }
            "--help" | "-h" => usage(),
            a if !a.starts_with('-') && args.command.is_empty() => args.command = a.to_string(),
            _ => usage(),
        }
    }
    args
}

/// A user's mistake: one line on stderr, exit code 2, never a backtrace.
pub fn usage_error(message: String) -> ! {
    eprintln!("file-transfer: {message}");
    std::process::exit(2)
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `p` against the working directory, without `.` components (what the user reads in an error).
fn absolute(p: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `--file`, checked before any network work: a readable regular file.
pub fn readable_file(given: &Path) -> PathBuf {
    let path = absolute(given);
    let checked = std::fs::File::open(&path)
        .and_then(|f| f.metadata())
        .map_err(|e| reason(&e))
        .and_then(|m| {
            if m.is_dir() {
                Err("is a directory".to_string())
            } else {
                Ok(())
            }
        });
    if let Err(r) = checked {
        usage_error(format!(
            "cannot read --file {} ({}): {r}",
            given.display(),
            path.display()
        ));
    }
    path
}

/// `--out`, created if missing: a writable directory.
pub fn writable_dir(given: &Path) -> PathBuf {
    let path = absolute(given);
    let checked = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&path).map_err(|e| reason(&e)),
        Err(e) => Err(reason(&e)),
        Ok(m) if !m.is_dir() => Err("not a directory".to_string()),
        Ok(m) if m.permissions().readonly() => Err("permission denied".to_string()),
        Ok(_) => Ok(()),
    };
    if let Err(r) = checked {
        usage_error(format!(
            "cannot write to --out {} ({}): {r}",
            given.display(),
            path.display()
        ));
    }
    path
}
