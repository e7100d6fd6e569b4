//! `vauban diff` as an unprivileged user (run by `cargo xtask test` as
//! `vauban-test`): images changed by `vauban run` (a deletion, an opaque
//! directory, a changed file, packages installed, upgraded and purged with
//! dpkg), and two builds of the build tests' fleet differing by one
//! `host_vars` value and one template, compared as images and as conffs
//! archives.

use std::process::Output;

mod build_support;
mod cli_support;

use build_support::World;
use cli_support::fixture;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// A shell function making and installing a `.deb` of package `$1` at
/// version `$2` (a file `/usr/share/$1/version`).
const MAKE_DEB: &str = "mk() { d=/tmp/$1-$2; mkdir -p $d/DEBIAN $d/usr/share/$1; echo $2 > $d/usr/share/$1/version; \
    printf 'Package: %s\\nVersion: %s\\nArchitecture: all\\nMaintainer: t <t@example.org>\\nDescription: t\\n' $1 $2 > $d/DEBIAN/control; \
    dpkg-deb --root-owner-group -Zgzip -b $d /tmp/$1.deb >/dev/null; dpkg -i /tmp/$1.deb >/dev/null; }";

#[test]
fn deletions_opaque_dirs_content_and_packages_show_between_images() {
    let w = World::new("");
    let run = |args: &[&str]| w.cmd(args).output().unwrap();
    ok(
        run(&[
            "import",
            "-t",
            "deb",
            fixture("debian.tar").to_str().unwrap(),
        ]),
        "import",
    );
    let a_script = format!(
        "set -e; {MAKE_DEB}; mkdir -p /opt/old; echo x > /opt/old/x; echo y > /opt/old/y; \
         printf 'port 80\\nworkers 4\\n' > /etc/app.conf; mk pkg-a 1.0; mk pkg-b 1.0; rm -rf /tmp/pkg-*"
    );
    ok(
        run(&[
            "run", "deb", "--commit", "a", "--", "/bin/sh", "-c", &a_script,
        ]),
        "run a",
    );
    let b_script = format!(
        "set -e; {MAKE_DEB}; rm -rf /opt/old; mkdir /opt/old; echo z > /opt/old/z; \
         printf 'port 8080\\nworkers 4\\n' > /etc/app.conf; chmod 600 /etc/app.conf; rm /etc/motd; \
         mk pkg-a 2.0; mk pkg-c 0.1; dpkg --purge pkg-b >/dev/null; rm -rf /tmp/pkg-*"
    );
    ok(
        run(&[
            "run", "a", "--commit", "b", "--", "/bin/sh", "-c", &b_script,
        ]),
        "run b",
    );

    // The same image: no output, exit 0 with --exit-code.
    let same = run(&["diff", "--exit-code", "a", "a"]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    assert!(
        same.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    // What differs, by path.
    let names = ok(
        run(&["diff", "--name-status", "a", "b"]),
        "diff --name-status",
    );
    let names = lines(&names);
    for want in [
        "D\t/opt/old/x",
        "D\t/opt/old/y",
        "A\t/opt/old/z",
        "M\t/etc/app.conf",
        "D\t/etc/motd",
        "A\t/usr/share/pkg-c/version",
        "D\t/usr/share/pkg-b/version",
        "M\t/usr/share/pkg-a/version",
        "M\t/var/lib/dpkg/status",
    ] {
        assert!(names.contains(&want), "{want} not in {names:#?}");
    }
    assert!(
        !names
            .iter()
            .any(|l| l.contains("/etc/passwd") || l.contains("/usr/bin/")),
        "what neither run touched differs: {names:#?}"
    );

    // A path's changes and its text diff; --exit-code says they differ.
    let one = run(&["diff", "--exit-code", "a", "b", "--", "/etc/app.conf"]);
    assert_eq!(one.status.code(), Some(1));
    let text = String::from_utf8(one.stdout).unwrap();
    assert!(
        text.starts_with("M /etc/app.conf  changed: mode 0644 -> 0600, content\n"),
        "{text}"
    );
    assert!(
        text.contains("-port 80\n+port 8080\n workers 4\n"),
        "{text}"
    );

    // JSON: the schema, the shared layers (the release and a's), each change.
    let json: serde_json::Value = serde_json::from_str(&ok(
        run(&["diff", "--json", "a", "b", "--exclude", "dpkg"]),
        "json",
    ))
    .unwrap();
    assert_eq!(json["schema"], "vauban.diff/1");
    assert_eq!(json["shared_layers"], 2);
    assert_eq!(json["a"]["kind"], "image");
    let changes = json["changes"].as_array().unwrap();
    let app = changes
        .iter()
        .find(|c| c["path"] == "/etc/app.conf")
        .unwrap();
    assert_eq!(app["status"], "changed");
    assert_eq!(app["fields"], serde_json::json!(["mode", "content"]));
    assert_eq!(app["a"]["mode"], 0o644);
    assert_eq!(app["b"]["mode"], 0o600);
    assert!(
        !changes
            .iter()
            .any(|c| c["path"].as_str().unwrap().contains("/dpkg/")),
        "--exclude dpkg leaves var/lib/dpkg out"
    );

    // --stat: a line a path, a summary.
    let stat = ok(
        run(&["diff", "--stat", "a", "b", "--", "/opt"]),
        "diff --stat",
    );
    assert!(
        stat.ends_with("3 path(s) differ: 1 added, 2 removed, 0 changed; text lines +1 -2\n"),
        "{stat}"
    );

    // Packages.
    let pkgs = ok(run(&["diff", "--packages", "a", "b"]), "diff --packages");
    let pkgs = lines(&pkgs);
    assert_eq!(
        pkgs[..3],
        [
            "upgraded   pkg-a:all 1.0 -> 2.0",
            "removed    pkg-b:all 1.0",
            "added      pkg-c:all 0.1",
        ],
        "{pkgs:#?}"
    );
    assert!(pkgs[3].starts_with("3 package(s) differ ("), "{pkgs:#?}");
    assert_eq!(pkgs.len(), 4);

    // A side that is nothing: a clear error, exit 2 under --exit-code.
    let bad = run(&["diff", "--exit-code", "a", "no-such-image"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no-such-image") && err.contains("no such image"),
        "{err}"
    );
}

#[test]
fn two_builds_differ_by_a_host_value_and_a_template() {
    let w = World::new("");
    w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
    ]);
    let run = |args: &[&str]| w.cmd(args).output().unwrap();
    for host in ["web01", "web02"] {
        ok(
            run(&[
                "tag",
                &format!("master-web/{host}"),
                &format!("before/{host}"),
            ]),
            "tag",
        );
        std::fs::copy(
            w.path(&format!("out/master-web/conffs-{host}.tgz")),
            w.path(&format!("before-{host}.tgz")),
        )
        .unwrap();
    }
    w.edit("host_vars/web01.yml", "host_value: changed-for-web01\n");
    w.edit(
        "templates/web.conf.j2",
        "port={{ web_port }}\nkeepalive=on\n",
    );
    w.build_succeeds(&[
        "--name",
        "master-web",
        "--stage",
        "conffs",
        "--build-parents",
        "-1",
    ]);

    // `/imginfo` records each build's date: left out.
    let names = |a: &str, b: &str| {
        ok(
            run(&["diff", "--name-only", "--exclude", "/imginfo", a, b]),
            "diff",
        )
    };
    assert_eq!(
        lines(&names("before/web01", "master-web/web01")),
        ["/etc/vauban/host-value", "/etc/web.conf"]
    );
    assert_eq!(
        lines(&names("before/web02", "master-web/web02")),
        ["/etc/web.conf"]
    );
    let full = ok(
        run(&[
            "diff",
            "--exclude",
            "/imginfo",
            "before/web01",
            "master-web/web01",
        ]),
        "diff",
    );
    assert!(
        full.contains("-value-of-web01\n+changed-for-web01\n"),
        "{full}"
    );
    assert!(full.contains("+keepalive=on\n"), "{full}");

    // Two hosts of one build: their own conffs only (the master shared).
    let json: serde_json::Value = serde_json::from_str(&ok(
        run(&["diff", "--json", "master-web/web01", "master-web/web02"]),
        "diff --json",
    ))
    .unwrap();
    let paths: Vec<&str> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(json["shared_layers"].as_u64().unwrap() >= 3, "{json}");
    for want in [
        "/etc/hostname",
        "/etc/vauban/host-value",
        "/etc/vauban/facts",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    assert!(
        paths.iter().all(|p| !p.starts_with("/usr/")),
        "only what the hosts' conffs differ by: {paths:?}"
    );

    // The conffs archives: web01's value, nothing for web02 (its conffs
    // did not change; the template is the master's).
    let arch = |host: &str| {
        names(
            w.path(&format!("before-{host}.tgz")).to_str().unwrap(),
            w.path(&format!("out/master-web/conffs-{host}.tgz"))
                .to_str()
                .unwrap(),
        )
    };
    assert_eq!(lines(&arch("web01")), ["/etc/vauban/host-value"]);
    assert_eq!(lines(&arch("web02")), Vec::<&str>::new());
}
