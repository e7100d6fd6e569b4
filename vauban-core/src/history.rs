//! What vauban writes into an image's history (`created_by` of each layer it
//! commits): the command that made the layer, as a person would type it, so
//! `vauban inspect` (or any OCI tool) says where a layer came from.

/// The `created_by` of a stage's layer: `vauban stage PLAYBOOK --host HOST`,
/// and the Ansible commit it ran from when known.
pub fn stage(stage: &crate::stage::Stage, host: &str, commit: Option<&str>) -> String {
    format!(
        "vauban stage {stage} --host {host}{}",
        commit
            .map(|c| format!(" (ansible {c})"))
            .unwrap_or_default()
    )
}

/// The `created_by` of a committed `vauban run`: its command line, each word
/// shell-quoted when it needs it.
pub fn run(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!("vauban run -- {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_its_command_line_quoted() {
        let argv = ["sh", "-c", "echo it's"].map(String::from);
        assert_eq!(run(&argv), r"vauban run -- sh -c 'echo it'\''s'");
        assert_eq!(run(&["".to_string()]), "vauban run -- ''");
    }

    #[test]
    fn a_stage_names_its_playbook_host_and_commit() {
        let s = crate::stage::Stage::parse("dev@web.yml").unwrap();
        assert_eq!(
            stage(&s, "web01", Some("abc")),
            "vauban stage dev@web.yml --host web01 (ansible abc)"
        );
        assert_eq!(
            stage(&s, "web01", None),
            "vauban stage dev@web.yml --host web01"
        );
    }
}
