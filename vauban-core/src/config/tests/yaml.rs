//! The YAML tree: positions, merge keys, and what it refuses.

use std::path::Path;

use crate::config::yaml::*;

fn parse_ok(text: &str) -> Node {
    parse(text, Path::new("/t/config.yml")).unwrap().unwrap()
}

fn map(node: &Node) -> &[Entry] {
    match &node.value {
        Value::Map(entries) => entries,
        other => panic!("not a mapping: {other:?}"),
    }
}

fn keys(node: &Node) -> Vec<&str> {
    map(node).iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn positions_are_one_based() {
    let root = parse_ok("a:\n  b: [x, ~]\n");
    let a = &map(&root)[0];
    assert_eq!(a.key_pos, Pos { line: 1, column: 1 });
    let b = &map(&a.value)[0];
    assert_eq!(b.key_pos, Pos { line: 2, column: 3 });
    let Value::Seq(items) = &b.value.value else {
        panic!()
    };
    assert_eq!(items[0].pos, Pos { line: 2, column: 7 });
    assert!(matches!(items[1].value, Value::Null));
}

#[test]
fn merge_keys_take_written_keys_first_then_earlier_maps() {
    let root = parse_ok(
        "base: &base {x: 1, y: 1}\nmore: &more {y: 2, z: 2}\nm:\n  <<: [*base, *more]\n  x: 3\n",
    );
    let m = &map(&root)[2].value;
    assert_eq!(keys(m), ["y", "z", "x"]);
    let value = |k: &str| match &map(m).iter().find(|e| e.key == k).unwrap().value.value {
        Value::Str(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(value("x"), "3");
    assert_eq!(value("y"), "1");
    assert_eq!(value("z"), "2");
    // A quoted "<<" is an ordinary key.
    assert_eq!(keys(&parse_ok("\"<<\": 1\n")), ["<<"]);
}

#[test]
fn refuses_duplicates_bad_merges_and_alias_bombs() {
    let err = parse("a: 1\nb: 2\na: 3\n", Path::new("/t/c.yml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/t/c.yml:3:1 at `a`: duplicate key `a`, first written at /t/c.yml:1:1 at `a` (the \
         original silently kept the last)"
    );
    let err = parse("a:\n  <<: 3\n", Path::new("/t/c.yml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/t/c.yml:2:7: invalid YAML: a merge key"),
        "{err}"
    );
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let err = parse(&bomb, Path::new("/t/c.yml")).unwrap_err();
    assert!(err.to_string().contains("more than 200000 values"), "{err}");
    let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
    let err = parse(&deep, Path::new("/t/c.yml")).unwrap_err();
    assert!(err.to_string().contains("nested deeper"), "{err}");
}

#[test]
fn empty_text_and_two_documents() {
    assert!(parse("# nothing\n", Path::new("/t/c.yml"))
        .unwrap()
        .is_none());
    let err = parse("a: 1\n---\nb: 2\n", Path::new("/t/c.yml")).unwrap_err();
    assert!(err.to_string().contains("second one"), "{err}");
}
