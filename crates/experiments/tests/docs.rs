//! The manual stays true to the repository and the binary: every relative link in README.md and
//! docs/ points at a file that exists (and, with `#anchor`, at a heading of that file), and every
//! `smartmixed` command shown there uses only flags its subcommand accepts (checked against the
//! binary's own `--help`). Every interval the result pages quote (`mean [lo, hi]`) is one that a
//! committed report prints, and so are results/README.md's counts of calls held after Holm; the
//! committed sign-test tables are what scripts/sign-test.py prints over the committed runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn repo() -> PathBuf {
    common::crate_dir().join("../..")
}

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no pages");
    pages.extend(docs);
    pages
}

/// A page's lines, each with whether it lies inside a fenced code block; outside the blocks,
/// each paragraph (lines up to a blank line, a heading, a table row or a list item) joined into
/// one line, so that a code span or a link that wraps is read whole.
fn lines(text: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let (mut fenced, mut paragraph) = (false, false);
    for line in text.lines() {
        let starts_block = line.trim_start().starts_with("```");
        if starts_block || fenced {
            out.push((true, line.to_string()));
            fenced ^= starts_block;
            paragraph = false;
            continue;
        }
        let alone = line.trim().is_empty()
            || line.starts_with('#')
            || line.starts_with('|')
            || line.trim_start().starts_with("- ")
            || line.trim_start().starts_with("![");
        match out.last_mut() {
            Some((false, text)) if paragraph && !alone => {
                text.push(' ');
                text.push_str(line.trim());
            }
            _ => out.push((false, line.to_string())),
        }
        paragraph = !line.trim().is_empty() && !line.starts_with('#') && !line.starts_with('|');
    }
    out
}

/// Inline code spans of a line of prose, in order.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The targets of `[text](target)` and `![alt](target)` in prose, code spans left out.
fn link_targets(line: &str) -> Vec<&str> {
    let prose: Vec<&str> = line.split('`').step_by(2).collect();
    let mut targets = Vec::new();
    for part in prose {
        let mut rest = part;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(&after[..end]);
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap();
    lines(&text)
        .into_iter()
        .filter(|(fenced, l)| !fenced && l.starts_with('#'))
        .map(|(_, l)| anchor(&l))
        .collect()
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (fenced, line) in lines(&text) {
            if fenced {
                continue;
            }
            for target in link_targets(&line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((path, fragment)) => (path, Some(fragment)),
                    None => (target, None),
                };
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(path)
                };
                if !file.exists() {
                    broken.push(format!("{}: {target} (no such file)", page.display()));
                } else if let Some(fragment) = fragment {
                    if file.extension().is_some_and(|e| e == "md")
                        && !anchors(&file).contains(fragment)
                    {
                        broken.push(format!("{}: {target} (no such heading)", page.display()));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked >= 10,
        "only {checked} links found: is the parser right?"
    );
}

/// The subcommand path and the flags of one `smartmixed ...` command as written.
fn command_of(text: &str) -> Option<(Vec<String>, Vec<String>)> {
    let rest = text.trim().strip_prefix("smartmixed ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut path = Vec::new();
    for w in &words {
        let nested = path.first().is_some_and(|p| p == "bench");
        match *w {
            "train" | "sweep" | "compare" | "plot" | "bench" if path.is_empty() => {
                path.push(w.to_string())
            }
            "ops" | "train" | "cohort" if nested && path.len() == 1 => path.push(w.to_string()),
            _ => break,
        }
    }
    Some((path, flags(rest)))
}

/// Every `--flag` in `text`.
fn flags(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// Every `smartmixed` command shown in the pages, by subcommand path: the flags it shows, each
/// with where.
fn shown_commands() -> BTreeMap<Vec<String>, Vec<(String, String)>> {
    let mut shown: BTreeMap<Vec<String>, Vec<(String, String)>> = BTreeMap::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.file_name().unwrap().to_string_lossy().to_string();
        let mut open: Option<Vec<String>> = None;
        for (fenced, line) in lines(&text) {
            let line = line.as_str();
            let mut found = Vec::new();
            if fenced {
                // A command in a block, and its continuation lines (indented, starting with a
                // flag or an alternative).
                let trimmed = line.trim_start();
                if let Some(command) = command_of(trimmed.trim_start_matches("$ ")) {
                    open = Some(command.0.clone());
                    found.push(command);
                } else if let Some(path) = &open {
                    if line.starts_with(' ')
                        && (trimmed.starts_with("--") || trimmed.starts_with('|'))
                    {
                        found.push((path.clone(), flags(trimmed)));
                    } else {
                        open = None;
                    }
                }
            } else {
                open = None;
                found.extend(code_spans(line).into_iter().filter_map(command_of));
            }
            for (path, flags) in found {
                let entry = shown.entry(path).or_default();
                entry.extend(flags.into_iter().map(|f| (f, name.clone())));
            }
        }
    }
    shown
}

#[test]
fn every_flag_shown_is_accepted() {
    let shown = shown_commands();
    assert!(
        shown.keys().any(|p| p == &["train"]) && shown.keys().any(|p| p == &["sweep"]),
        "no train or sweep command found in the pages: is the parser right? {:?}",
        shown.keys().collect::<Vec<_>>()
    );
    let mut unknown = Vec::new();
    for (path, flags) in &shown {
        let output = Command::new(env!("CARGO_BIN_EXE_smartmixed"))
            .args(path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "smartmixed {path:?} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        for (flag, page) in flags {
            if !accepts(&help, flag) {
                unknown.push(format!("{page}: smartmixed {} {flag}", path.join(" ")));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "flags the binary does not take:\n{}",
        unknown.join("\n")
    );
}

/// Whether a subcommand's `--help` text lists `flag` as one of its options (an option line
/// starts with it, after `-x, ` for a short form).
fn accepts(help: &str, flag: &str) -> bool {
    let option = |line: &str| {
        let line = line.trim_start();
        let long = match line.strip_prefix('-').and_then(|l| l.get(1..)) {
            Some(rest) if rest.starts_with(", ") => &rest[2..],
            _ => line,
        };
        long.split(|c: char| c.is_whitespace() || c == '=' || c == '[' || c == ',')
            .next()
            .is_some_and(|word| word == flag)
    };
    flag == "--help" || flag == "--version" || help.lines().any(option)
}

/// The checks above see a flag that is not there, a flag that is, and the parsers find what
/// they should.
#[test]
fn a_made_up_flag_is_seen() {
    let output = Command::new(env!("CARGO_BIN_EXE_smartmixed"))
        .args(["train", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        accepts(&help, "--method") && accepts(&help, "--phase1-epochs"),
        "{help}"
    );
    assert!(!accepts(&help, "--no-such-flag"));
    // A flag named only in another option's description is not an option.
    assert!(accepts("  --a   like --b\n", "--a") && !accepts("  --a   like --b\n", "--b"));
    let joined = lines("see `smartmixed train\n--seed 3` and [a\nb](c.md)\n\nnext");
    assert_eq!(
        joined[0].1,
        "see `smartmixed train --seed 3` and [a b](c.md)"
    );
    let (path, flags) = command_of("smartmixed bench train --method pau --no-such-flag").unwrap();
    assert_eq!(path, ["bench", "train"]);
    assert_eq!(flags, ["--method", "--no-such-flag"]);
    assert_eq!(
        link_targets("see [a](docs/a.md#b) and `[not](this)` and ![c](d.png)"),
        ["docs/a.md#b", "d.png"]
    );
    assert_eq!(
        anchor("## Candidate pools (`--pool`)"),
        "candidate-pools---pool"
    );
}

/// A number as the reports print it (`+0.21`, `98.19`, `-0.05`), in hundredths; `None` for
/// anything else.
fn hundredths(token: &str) -> Option<i64> {
    let (int, frac) = token.split_once('.')?;
    let digits = int.trim_start_matches(['+', '-']);
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(digits) || !plain(frac) || int.len() - digits.len() > 1 {
        return None;
    }
    let value: f64 = token.parse().ok()?;
    Some((value * 100.0).round() as i64)
}

/// Every `mean [lo, hi]` in `text` (whitespace and line breaks between its parts allowed; the
/// mean may be bold, in a parenthesis, or followed by `%`), in hundredths.
fn quoted_intervals(text: &str) -> Vec<(String, [i64; 3])> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let Some(inside) = word.strip_prefix('[') else {
            continue;
        };
        let Some(hi) = words.get(i + 1).and_then(|w| w.split_once(']')) else {
            continue;
        };
        let before = match words[..i] {
            [.., mean, "%"] | [.., mean] => mean,
            [] => continue,
        };
        let mean = before.trim_start_matches('(').trim_matches('*');
        let lo = inside.strip_suffix(',').unwrap_or("");
        if let (Some(m), Some(l), Some(h)) = (hundredths(mean), hundredths(lo), hundredths(hi.0)) {
            out.push((format!("{mean} [{lo}, {}]", hi.0), [m, l, h]));
        }
    }
    out
}

/// README.md and results/README.md quote only intervals that a committed report
/// (`results/*/comparison.md`) prints, so a number left behind by a rerun is caught. A drop
/// quoted as a positive size (`drops by 0.31 [0.17, 0.44]`) matches its negative.
#[test]
fn quoted_intervals_come_from_the_reports() {
    let mut printed = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("results")).unwrap() {
        let report = entry.unwrap().path().join("comparison.md");
        if let Ok(text) = std::fs::read_to_string(&report) {
            // Table cells: `| +0.21 | [+0.06, +0.36] |` reads as `+0.21 [+0.06, +0.36]`.
            let cells = text.replace(" | [", " [");
            printed.extend(quoted_intervals(&cells).into_iter().map(|(_, v)| v));
        }
    }
    assert!(
        printed.len() > 100,
        "too few intervals in results/*/comparison.md"
    );
    let mut missing = Vec::new();
    for page in ["README.md", "results/README.md"] {
        let text = std::fs::read_to_string(repo().join(page)).unwrap();
        let quoted = quoted_intervals(&text);
        assert!(!quoted.is_empty(), "{page} quotes no interval");
        for (shown, [m, l, h]) in quoted {
            if !printed.contains(&[m, l, h]) && !printed.contains(&[-m, -h, -l]) {
                missing.push(format!("{page}: {shown}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "intervals no report prints (rerun `smartmixed compare` and copy them again):\n{}",
        missing.join("\n")
    );
}

/// The counts of results/README.md's table of interval calls held after Holm (rows
/// `| `set/` ... | n | a / b | c / d |`), each as the line under that report's paired table.
fn holm_rows(text: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, set, n, called, held, _] = cols[..] else {
            continue;
        };
        let Some(set) = set.strip_prefix('`').and_then(|s| s.split_once("/`")) else {
            continue;
        };
        let (Some((a, b)), Some((c, d))) = (called.split_once(" / "), held.split_once(" / "))
        else {
            continue;
        };
        let number = |x: &str| x.parse::<usize>().ok();
        let (Some(n), Some(a), Some(b), Some(c), Some(d)) =
            (number(n), number(a), number(b), number(c), number(d))
        else {
            continue;
        };
        rows.push((
            set.0.to_string(),
            format!(
                "Of these {n} comparisons, {} with a bootstrap interval clear of zero \
                 (SmartMixed better in {a}, worse in {b}); Holm p < 0.05 holds for {c} of the \
                 {a} and {d} of the {b}.",
                a + b
            ),
        ));
    }
    rows
}

#[test]
fn holm_counts_come_from_the_reports() {
    let text = std::fs::read_to_string(repo().join("results/README.md")).unwrap();
    let rows = holm_rows(&text);
    // One row per report in the table; a row the parser skips (a typo) shows as a count off.
    assert_eq!(
        rows.len(),
        12,
        "results/README.md's table of Holm counts: {rows:?}"
    );
    for (set, line) in rows {
        let report = repo().join("results").join(&set).join("comparison.md");
        let printed = std::fs::read_to_string(&report).unwrap_or_default();
        assert!(
            printed.contains(&line),
            "results/README.md's counts for {set}/ are not what {} prints (rerun `smartmixed \
             compare` and copy them again): {line}",
            report.display()
        );
    }
}

#[test]
fn intervals_are_read_as_quoted() {
    let text = "is **98.19** [98.05,\n 98.29] (5), (-0.01 [-0.19, +0.18], 5 seeds); 98.28 % \
                [98.25, 98.30]; seed [+0.35, +0.76]; [a](b.md) | +0.10 | [-0.08, +0.30] |";
    let read: Vec<[i64; 3]> = quoted_intervals(&text.replace(" | [", " ["))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        read,
        [
            [9819, 9805, 9829],
            [-1, -19, 18],
            [9828, 9825, 9830],
            [10, -8, 30]
        ]
    );
    assert_eq!(hundredths("1.2.3"), None);
    assert_eq!(hundredths("+-1.0"), None);
}

/// Each committed sign-test table (`results/*/sign-tests*.md`, from scripts/sign-test.py) is
/// what its recorded command prints over today's committed runs, so results/README.md's pooled
/// counts cannot fall behind a rerun grid.
#[test]
fn sign_tests_are_current() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("results")).unwrap() {
        let dir = entry.unwrap().path();
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("sign-tests") && name.ends_with(".md")) {
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap();
            let command = committed
                .lines()
                .find_map(|l| l.strip_prefix("`python3 scripts/sign-test.py "))
                .and_then(|l| l.strip_suffix('`'))
                .unwrap_or_else(|| panic!("{}: no recorded command", path.display()));
            let out = Command::new("python3")
                .arg("scripts/sign-test.py")
                .args(command.split_whitespace())
                .current_dir(repo())
                .output()
                .expect("python3 runs scripts/sign-test.py");
            assert!(out.status.success(), "{}: {out:?}", path.display());
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                committed,
                "{} is not what its command prints now (rerun `make report-conv-nets`)",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "found {checked} sign-test tables under results/"
    );
}
