//! The `vauban diff` row: two images of the Debian fixture (216 MB) that
//! differ in a few files, each the fixture plus one layer made by
//! `vauban run --commit`. `vauban diff --stat` against `diff -rq
//! --no-dereference` of the two images unpacked (the unpacking not timed).
//! vauban's first diff reads the shared base once to index it (reported
//! only); the row held to the target is the next one, which reads the two
//! small layers and the kept index.

use anyhow::Result;

use super::{measure, remove_all, Comparison, Ctx};
use crate::util;

/// The changes of each side: a file changed by both, one added, one
/// removed, one changed by one side only.
const CHANGES: [(&str, &str); 2] = [
    (
        "diff-a",
        "echo a > /etc/motd && echo 1 > /etc/bench-a && rm /etc/issue",
    ),
    (
        "diff-b",
        "echo b > /etc/motd && echo 2 > /etc/bench-b && echo 13 > /etc/debian_version",
    ),
];

/// `vauban diff --stat` of two images against `diff -rq` of their trees.
pub fn two_images(ctx: &mut Ctx) -> Result<Vec<Comparison>> {
    let store = ctx.fresh_dir("store-diff")?;
    util::run(
        ctx.vauban(&store)
            .arg("import")
            .arg(&ctx.fixture)
            .args(["--tag", "bench-base"]),
    )?;
    let mut trees = Vec::new();
    for (name, change) in CHANGES {
        util::run(ctx.vauban(&store).args([
            "run",
            "--commit",
            name,
            "bench-base",
            "--",
            "sh",
            "-c",
            change,
        ]))?;
        let tree = ctx.fresh_path(name)?;
        util::run(ctx.vauban(&store).arg("unpack").arg(name).arg(&tree))?;
        trees.push(tree);
    }
    let ours = |ctx: &Ctx| {
        let mut cmd = ctx.vauban(&store);
        cmd.args(["diff", "--stat", "diff-a", "diff-b"]);
        measure(ctx, &cmd)
    };
    let first = ours(ctx)?;
    let warm = ours(ctx)?;
    // `diff` exits 1 when the trees differ: only 2 is a failure.
    let mut theirs = std::process::Command::new("sh");
    theirs
        .args([
            "-c",
            "diff -rq --no-dereference \"$1\" \"$2\" >/dev/null; [ $? -le 1 ]",
            "sh",
        ])
        .args(&trees);
    let theirs = measure(ctx, &theirs)?;
    for tree in &trees {
        remove_all(tree)?;
    }
    let mut cold = Comparison::new(
        "diff --stat (first: indexes the base)",
        first,
        "diff -rq",
        theirs,
    );
    cold.checked = false;
    Ok(vec![
        cold,
        Comparison::new("diff --stat", warm, "diff -rq", theirs),
    ])
}
