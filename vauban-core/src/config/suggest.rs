//! "Did you mean ...?": the candidate closest to a misspelt word, by optimal string
//! alignment distance (a swap of two letters counts as one edit), when it is close
//! enough to be a likely typo.

/// The candidate nearest to `word`, if within a third of its length (at least one
/// edit). Ties go to the earliest candidate.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = strsim::osa_distance(word, candidate);
        let limit = (candidate.chars().count() / 3).max(1);
        if distance == 0 || distance > limit {
            continue;
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        let keys = ["name", "stages", "conffs", "branch"];
        assert_eq!(closest("stage", keys), Some("stages"));
        assert_eq!(closest("stgaes", keys), Some("stages"));
        assert_eq!(closest("conf", keys), Some("conffs"));
        assert_eq!(closest("brnch", keys), Some("branch"));
        assert_eq!(closest("description", keys), None);
        assert_eq!(closest("x", keys), None);
    }
}
