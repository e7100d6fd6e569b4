//! The JSON Schema, checked with a real validator: the sample configs pass, typos
//! and broken sources fail, as they do in the loader.

use serde_json::Value as Json;

use super::{sample_files, FILE};
use crate::config::yaml::{self, Node, Value};
use crate::config::{json_schema, Config};

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&json_schema()).expect("the schema is a valid JSON Schema")
}

/// `text` as an editor's YAML plugin hands it to the validator.
fn as_json(text: &str) -> Json {
    to_json(
        &yaml::parse(text, FILE.as_ref())
            .unwrap()
            .expect("a document"),
    )
}

fn schema_errors(validator: &jsonschema::Validator, json: &Json) -> Vec<String> {
    validator
        .iter_errors(json)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect()
}

#[test]
fn the_sample_configs_validate() {
    let validator = validator();
    for file in sample_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let errors = schema_errors(&validator, &as_json(&text));
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
        Config::parse(&text, &file).unwrap();
    }
    let minimal = "r:\n  image: x\n  m: {stages: [a.yml], conffs: 'web*', branch: main}\n";
    assert!(validator.is_valid(&as_json(minimal)));
    let suite_named = "bookworm:\n  name: debian-12/iso\n  m: {stages: [a.yml]}\n";
    assert!(validator.is_valid(&as_json(suite_named)));
}

#[test]
fn typos_and_broken_sources_are_rejected_by_the_schema_and_the_loader() {
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    // What the original ignored: the schema (an editor) flags it, the loader warns.
    let ignored = [
        "r:\n  image: x\n  web:\n    stage: [a.yml]\n",
        "r:\n  image: x\n  imgae: y\n",
        "configuration:\n  never_uplaod: [m]\nr:\n  image: x\n",
    ];
    let validator = validator();
    for text in ignored {
        assert!(
            !validator.is_valid(&as_json(text)),
            "the schema accepts:\n{text}"
        );
        let config = Config::parse(text, FILE).unwrap();
        assert!(!config.warnings.is_empty(), "no warning for:\n{text}");
    }
    let bad = [
        "r:\n  imgae: x\n".to_owned(),
        "configuration:\n  squashfs_compression: gzip\nr:\n  image: x\n".to_owned(),
        "r:\n  mmdebstrap: {suit: bookworm}\n".to_owned(),
        "r:\n  image: x\n  mmdebstrap: {suite: bookworm}\n".to_owned(),
        "r:\n  tarball: t.tar\n".to_owned(),
        format!("r:\n  tarball: t.tar\n  sha256: {}\n", &hex[1..]),
        "r:\n  url: http://127.0.0.1/d.raw\n".to_owned(),
        "r:\n  image: x\n  m:\n    stages: a.yml\n".to_owned(),
        "r:\n  image: x\n  m:\n    stages: [\"a@b@c.yml\"]\n".to_owned(),
        "r:\n  image: x\n  m:\n    stages: [a.yml]\n    schedule_options: {stage: rootfs, parents: 1}\n".to_owned(),
    ];
    // No source under a key that names no suite: the schema cannot tell a key
    // from a suite, the loader can.
    assert!(validator.is_valid(&as_json("r:\n  name: no-source\n")));
    assert!(Config::parse("r:\n  name: no-source\n", FILE).is_err());
    for text in &bad {
        assert!(
            !validator.is_valid(&as_json(text)),
            "the schema accepts:\n{text}"
        );
        assert!(
            Config::parse(text, FILE).is_err(),
            "the loader accepts:\n{text}"
        );
    }
}

#[test]
fn the_schema_is_2020_12_and_documents_the_keys() {
    let schema = json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "vauban config.yml");
    let defs = &schema["$defs"];
    let stages = &defs["Master"]["properties"]["stages"];
    assert!(
        stages["description"]
            .as_str()
            .unwrap()
            .contains("branch@playbook.yml"),
        "{stages}"
    );
    assert_eq!(
        defs["Master"]["additionalProperties"]["$ref"], "#/$defs/Master",
        "{}",
        defs["Master"]
    );
    let configuration = &defs["Configuration"];
    assert_eq!(configuration["additionalProperties"], false);
    assert_eq!(
        configuration["properties"]["conffs_size_limit"]["default"],
        50 * 1024 * 1024
    );
    assert_eq!(
        configuration["properties"]["squashfs_compression"]["default"],
        "zstd"
    );
}

/// The document as JSON, plain scalars typed as the YAML 1.2 core schema types them
/// (what an editor validating against the JSON Schema sees).
fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as Json;
    match &node.value {
        Value::Null => Json::Null,
        Value::Str(text) if node.plain => match text.as_str() {
            "true" | "True" | "TRUE" => Json::Bool(true),
            "false" | "False" | "FALSE" => Json::Bool(false),
            _ => text
                .parse::<i64>()
                .map(Json::from)
                .ok()
                .or_else(|| {
                    let numeric = text
                        .chars()
                        .all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
                    text.parse::<f64>().ok().filter(|_| numeric).map(Json::from)
                })
                .ok_or(())
                .unwrap_or_else(|_| Json::String(text.clone())),
        },
        Value::Str(text) => Json::String(text.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}

/// `drift_report:` as written: `true`, `false`, or its settings; the
/// loader agrees, and says what is wrong with the rest.
#[test]
fn drift_report_is_a_bool_or_its_settings() {
    let validator = validator();
    let with =
        |v: &str| format!("r:\n  image: x\n  m:\n    stages: [a.yml]\n    drift_report: {v}\n");
    for good in [
        "true",
        "false",
        "{exclude: [/var/cache], max_size: 32MiB}",
        "{}",
    ] {
        let text = with(good);
        let errors = schema_errors(&validator, &as_json(&text));
        assert!(errors.is_empty(), "{good}: {errors:#?}");
        Config::parse(&text, FILE).unwrap();
    }
    let on = Config::parse(&with("True"), FILE).unwrap();
    assert!(on.get("m").unwrap().drift_report.is_some());
    for (bad, says) in [
        ("maybe", "`drift_report` is true, false, or a mapping"),
        ("{exlude: [/x]}", "unknown key `exlude`"),
        ("{exclude: [../etc]}", "not a path from the root"),
        ("{exclude: [/]}", "the root itself cannot be left out"),
        ("{max_size: lots}", "is not a size"),
        ("{max_size: 0}", "must be more than 0 bytes"),
    ] {
        let err = Config::parse(&with(bad), FILE).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
