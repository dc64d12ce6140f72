//! What the peer prints: JSON progress lines on stderr, one JSON result line on stdout (and --out-file).

use super::*;

pub(crate) fn die(msg: &str) -> ! {
    eprintln!("{{\"event\":\"usage_error\",\"error\":{}}}", json_str(msg));
    std::process::exit(2)
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn log(event: &str, fields: &[(&str, String)]) {
    let mut line = format!("{{\"event\":{}", json_str(event));
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", json_str(k), json_str(v)));
    }
    line.push('}');
    eprintln!("{line}");
}

/// The result line; `fields` are already-encoded JSON values.
pub(crate) fn emit_result(args: &Args, fields: Vec<(&str, String)>) {
    let mut line = String::from("{\"impl\":\"rust\"");
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", json_str(k), v));
    }
    line.push('}');
    println!("{line}");
    let _ = std::io::stdout().flush();
    if !args.out_file.is_empty() {
        let _ = std::fs::write(&args.out_file, format!("{line}\n"));
    }
}
