//! `cargo xtask tidy` (and a test of `cargo test --workspace`): workspace-wide
//! rules checked on the source text of every `.rs` file.
//!
//! - every file starts with a `//!` module doc;
//! - no test is switched off with an ignore attribute;
//! - no placeholder macro (`todo`, `unimplemented`) is left;
//! - `unsafe` code appears only under `vauban-core/src/sandbox/`.
//!
//! The patterns are assembled at run time so this file does not match itself.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The only directory where `unsafe` code may live.
const UNSAFE_HOME: &str = "vauban-core/src/sandbox/";

fn workspace_root() -> PathBuf {
    crate::util::workspace_root()
}

/// Every `.rs` file of the workspace, outside `target/` and hidden dirs.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if kind.is_file() && name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The code part of a line: what precedes a `//` comment (good enough for
/// the patterns below; string literals holding `//` only shorten the line).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Whether the code of a line uses `unsafe` as a keyword (block, fn, impl,
/// trait, extern) or allows the `unsafe_code` lint.
fn uses_unsafe(code: &str) -> bool {
    let keyword = concat!("un", "safe");
    let allow = concat!("un", "safe_code");
    if code.contains(allow) && code.contains("allow") {
        return true;
    }
    let mut rest = code;
    while let Some(i) = rest.find(keyword) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + keyword.len()..].trim_start();
        let word_start = before.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '"');
        let used = ["{", "fn ", "impl", "trait ", "extern"]
            .iter()
            .any(|k| after.starts_with(k));
        if word_start && used {
            return true;
        }
        rest = &rest[i + keyword.len()..];
    }
    false
}

/// The problems of one file's text; `rel` is its path relative to the root.
fn check(rel: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    if !first.is_some_and(|l| l.starts_with("//!")) {
        problems.push(format!("{rel}: does not start with a `//!` module doc"));
    }
    let ignore = concat!("#[", "ignore");
    let placeholders = [concat!("to", "do!("), concat!("unimple", "mented!(")];
    let unsafe_allowed = rel.starts_with(UNSAFE_HOME);
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line);
        if code.contains(ignore) {
            problems.push(format!(
                "{rel}:{}: ignored test (tests run or panic with the reason)",
                n + 1
            ));
        }
        for p in placeholders {
            if code.contains(p) {
                problems.push(format!("{rel}:{}: placeholder `{p}` left", n + 1));
            }
        }
        if !unsafe_allowed && uses_unsafe(code) {
            problems.push(format!("{rel}:{}: `unsafe` outside {UNSAFE_HOME}", n + 1));
        }
    }
    problems
}

/// Every problem of the workspace's sources.
pub fn problems() -> Vec<String> {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut problems = Vec::new();
    if files.len() <= 5 {
        problems.push(format!(
            "found only {} .rs files under {}",
            files.len(),
            root.display()
        ));
    }
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap_or(file).to_string_lossy();
        match fs::read_to_string(file) {
            Ok(text) => problems.extend(check(&rel, &text)),
            Err(e) => problems.push(format!("{rel}: {e}")),
        }
    }
    problems
}

/// Runs the task: fails listing every problem.
pub fn task(_args: &[String]) -> Result<()> {
    let found = problems();
    if !found.is_empty() {
        bail!(
            "tidy found {} problem(s):\n{}",
            found.len(),
            found.join("\n")
        );
    }
    eprintln!("tidy: the sources are tidy");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_sources_are_tidy() {
        let problems = problems();
        assert!(
            problems.is_empty(),
            "tidy found {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    #[test]
    fn tidy_catches_each_rule() {
        let ignore = concat!("#[", "ignore", "]");
        let todo = concat!("to", "do!()");
        let unsafe_block = concat!("un", "safe { f() }");
        let bad =
            format!("fn a() {{}}\n{ignore}\nfn b() {{ {todo} }}\nfn c() {{ {unsafe_block} }}\n");
        let problems = check("vauban-oci/src/x.rs", &bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(check(
            &format!("{UNSAFE_HOME}mount.rs"),
            &format!("//! doc\n{unsafe_block}\n")
        )
        .is_empty());
        let fine =
            "//! doc\n// un-safe talk in a comment is fine: unsafe { }\nlet s = \"unsafe\";\n";
        assert!(
            check("vauban-cli/src/y.rs", fine).is_empty(),
            "{:?}",
            check("vauban-cli/src/y.rs", fine)
        );
    }
}
