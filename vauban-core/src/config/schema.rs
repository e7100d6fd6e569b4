//! The JSON Schema of `config.yml`, generated from the config types with `schemars`
//! (draft 2020-12), for editors to complete and check the file (e.g. a
//! `# yaml-language-server: $schema=vauban.schema.json` line).
//!
//! The types derive it; the few whose YAML form is not their Rust shape say theirs
//! here: a stage is a string, a release's source is "exactly one of these keys".
//! Masters nest beside the reserved keys as `additionalProperties` (or
//! `unevaluatedProperties`, where the source's `oneOf` is merged in) holding a
//! master, so a misspelt key whose value is not a mapping is rejected.
//!
//! The loader checks more than the schema can say (a master that builds nothing,
//! names used twice, a checksum of the wrong length is caught by both).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::configuration::DracutConf;
use super::release::{Mmdebstrap, ReleaseSource};
use super::Config;
use crate::stage::{AnsibleSource, Stage};

/// The JSON Schema of `config.yml`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config);
    schema.insert(
        "description".into(),
        "vauban's config.yml: releases (top-level keys), the masters nested in them, and `configuration`".into(),
    );
    schema.to_value()
}

/// `conffs_size_limit`: bytes, or a number with a unit.
pub(crate) struct Size;

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bytes, or a number and a unit: `50MiB`, `1.5 GB`, `512k` (k, M, G: powers of 1000; Ki, Mi, Gi: of 1024).",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgGtTpPeE][iI]?[bB]?|[bB])?\s*$" }
            ]
        })
    }
}

impl JsonSchema for Stage {
    fn schema_name() -> Cow<'static, str> {
        "Stage".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A playbook relative to the Ansible root, `playbook.yml`, or `branch@playbook.yml` to take it from another branch.",
            "type": "string",
            "pattern": "^([^@]+@)?[^@/][^@]*$"
        })
    }
}

impl JsonSchema for AnsibleSource {
    fn schema_name() -> Cow<'static, str> {
        "AnsibleSource".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A directory (relative to the config file) or a git URL.",
            "type": "string",
            "minLength": 1
        })
    }
}

impl JsonSchema for DracutConf {
    fn schema_name() -> Cow<'static, str> {
        "DracutConf".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "dracut.conf lines (a value with `=` or a newline), or the path of such a file.",
            "type": "string",
            "minLength": 1
        })
    }
}

/// The source keys of a release, and the rule that at most one source is given
/// (none: the key names the suite).
impl JsonSchema for ReleaseSource {
    fn schema_name() -> Cow<'static, str> {
        "ReleaseSource".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mmdebstrap = generator.subschema_for::<Mmdebstrap>();
        json_schema!({
            "type": "object",
            "properties": {
                "image": {
                    "description": "Source: an OCI image reference, pulled (`docker.io/library/debian:12`).",
                    "type": "string", "pattern": r"^\S+$"
                },
                "tarball": {
                    "description": "Source: a root filesystem tarball, a path relative to the config file or an http(s) URL; checked against `sha256` or `sha512` before use.",
                    "type": "string", "minLength": 1
                },
                "sha256": {
                    "description": "The tarball's SHA-256, 64 hex digits.",
                    "type": "string", "pattern": "^[0-9a-fA-F]{64}$"
                },
                "sha512": {
                    "description": "The tarball's SHA-512, 128 hex digits.",
                    "type": "string", "pattern": "^[0-9a-fA-F]{128}$"
                },
                "mmdebstrap": mmdebstrap,
                "url": {
                    "description": "Source: the http(s) URL of a raw cloud image (the original's releases).",
                    "type": "string", "pattern": "^https?://"
                },
                "sha512sums": {
                    "description": "The cloud image's digest: the URL of a SHA512SUMS file listing it by file name, or the 128 hex digits.",
                    "type": "string",
                    "pattern": "^(https?://.+|[0-9a-fA-F]{128})$"
                }
            },
            "oneOf": [
                { "required": ["image"] },
                { "required": ["tarball"], "oneOf": [{ "required": ["sha256"] }, { "required": ["sha512"] }] },
                { "required": ["mmdebstrap"] },
                { "required": ["url", "sha512sums"] },
                {
                    "description": "No source: the release's key names the Debian suite bootstrapped (`bookworm`, `sid`, `stable`, `debian-12`), as the original did.",
                    "not": { "anyOf": [
                        { "required": ["image"] },
                        { "required": ["tarball"] },
                        { "required": ["mmdebstrap"] },
                        { "required": ["url"] }
                    ] }
                }
            ]
        })
    }
}
