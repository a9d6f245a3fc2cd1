//! What a person at a terminal sees: checked under a pseudo-terminal (util-linux `script`).
//! `NO_COLOR` turns colours off, `FORCE_COLOR` and `--color always` on; no progress bar is left
//! on screen by any exit; errors read `error: <sentence>`.

use std::process::Command;

use crate::cube_sim::{self, Faults, SimConfig};
use crate::support::*;

/// Runs `cube-extract ARGS` with a terminal for stdin, stdout and stderr; returns its exit
/// code and everything the terminal received.
fn at_terminal(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_cube-extract"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &quoted.join(" "), "/dev/null"]);
    for var in [
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR_FORCE",
        "RUST_LOG",
        "TERM",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("TERM", "xterm-256color");
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("util-linux script runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The SGR (colour and style) sequences in `text`: `ESC [ ... m`.
fn colours(text: &str) -> Vec<&str> {
    text.match_indices("\x1b[")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            (rest.as_bytes()[end] == b'm').then(|| &text[i..i + 3 + end])
        })
        .collect()
}

fn extract_args<'a>(sim_url: &'a str, dest: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "call-outcomes",
        "--base-url",
        sim_url,
        "--token",
        TOKEN,
        "--dest",
        dest,
    ];
    args.extend_from_slice(rest);
    args
}

#[test]
fn no_colour_with_no_color_and_errors_read_error_colon() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let (url, dest) = (sim.base_url(), ws.dest_arg());
    // A refused run (exit 2): one line, no escape code at all.
    let refused = extract_args(&url, &dest, &["--campaign", "999", "--from", "2019-08-01"]);
    let (code, text) = at_terminal(&refused, &[("NO_COLOR", "1")]);
    assert_eq!(code, 2, "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(
        text.starts_with("error: campaign 999 is not listed"),
        "{text:?}"
    );
    // Without NO_COLOR the same line is coloured at a terminal, and not with --color never.
    let (_, text) = at_terminal(&refused, &[]);
    assert!(
        text.starts_with("\x1b[1;31merror:\x1b[0m campaign 999"),
        "{text:?}"
    );
    let never = [&refused[..], &["--color", "never"]].concat();
    assert!(colours(&at_terminal(&never, &[]).1).is_empty());
    // A run that draws its bar: no colour either.
    let run = extract_args(
        &url,
        &dest,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-05",
        ],
    );
    let (code, text) = at_terminal(&run, &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("partitions ["),
        "the bar is drawn at a terminal: {text:?}"
    );
    assert_eq!(colours(&text), Vec::<&str>::new(), "{text:?}");
    // --no-progress: no bar, and so no escape code at all.
    let quiet = [&run[..], &["--no-progress"]].concat();
    let (code, text) = at_terminal(&quiet, &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains('\x1b') && !text.contains("partitions ["),
        "{text:?}"
    );
    // FORCE_COLOR colours even without a terminal.
    let out = run_bin_env(&refused, &[("FORCE_COLOR".to_owned(), "1".to_owned())]);
    assert!(
        out.stderr.starts_with("\x1b[1;31merror:"),
        "{:?}",
        out.stderr
    );
    assert!(!run_bin(&refused).stderr.contains('\x1b'));
}

#[test]
fn no_bar_is_left_on_screen_by_exits_1_and_2() {
    let ws = Workspace::new();
    let dest = ws.dest_arg();
    // Exit 2 before any partition, and exit 1 when the API cannot be reached: no bar is drawn.
    let sim = cube_sim::start(SimConfig::default());
    let url = sim.base_url();
    let (code, text) = at_terminal(
        &extract_args(&url, &dest, &["--campaign", "999", "--from", "2019-08-01"]),
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(!text.contains("partitions ["), "{text:?}");
    drop(sim);
    let gone = "http://127.0.0.1:9";
    let (code, text) = at_terminal(
        &extract_args(
            gone,
            &dest,
            &[
                "--campaign",
                "101",
                "--from",
                "2019-08-01",
                "--max-attempts",
                "1",
            ],
        ),
        &[],
    );
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("partitions ["), "{text:?}");
    // Exit 1 with failed partitions: the bar was drawn, and is cleared before the summary.
    let failing = cube_sim::start(SimConfig {
        // Every other request answers 503: the campaign listing (the first) goes through.
        faults: Faults {
            error_every: 2,
            ..Faults::default()
        },
        ..SimConfig::default()
    });
    let url = failing.base_url();
    let args = extract_args(
        &url,
        &dest,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-03",
            "--max-attempts",
            "1",
        ],
    );
    let (code, text) = at_terminal(&args, &[]);
    assert_eq!(code, 1, "{text}");
    let last = text.rfind("partitions [").expect("the bar was drawn");
    assert!(
        text[last..].contains("\x1b[2K"),
        "the bar is cleared: {:?}",
        &text[last..]
    );
    assert!(text[last..].contains("partitions committed"), "{text:?}");
}
