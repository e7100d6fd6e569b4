//! Text from a build made safe to print: a build runs code we did not write,
//! and its output reaches a terminal (Ansible's `--diff` prints the old text
//! of an image's files). A control character is a command to a terminal
//! (`ESC ]0;…BEL` retitles it, `ESC [2J` clears it, a C1 `CSI` does the same
//! in one byte on some terminals), so every C0 control but newline and tab,
//! DEL and every C1 control (U+0080–U+009F) is shown as `\xNN`, as are bytes
//! that are not UTF-8. The rest, valid UTF-8, is kept.
//!
//! Escaping happens where such text enters vauban (Ansible's lines, the
//! output tails of failed programs, paths read from layers), so every
//! consumer of the events and errors gets safe text; the CLI escapes again
//! before printing. Escaping is idempotent: escaped text has no control
//! character left, so a second pass changes nothing (a `\` is kept as it is).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown escaped: C0 controls but `\n` and `\t`, DEL, C1.
fn is_escaped(c: char) -> bool {
    matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}')
}

/// Whether `text` has no character [`escape`] would change.
pub fn is_plain(text: &str) -> bool {
    !text.chars().any(is_escaped)
}

/// `text` with its control characters (but newline and tab) as `\xNN`;
/// borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if is_plain(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// `bytes` as text: valid UTF-8 escaped as by [`escape`], every byte that is
/// not UTF-8 as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return escape(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if is_escaped(c) {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_c0_control_but_newline_and_tab_is_escaped() {
        for b in 0u8..0x20 {
            let c = char::from(b);
            let shown = escape(&format!("a{c}b")).into_owned();
            match c {
                '\n' | '\t' => assert_eq!(shown, format!("a{c}b")),
                _ => assert_eq!(shown, format!("a\\x{b:02x}b")),
            }
        }
        assert_eq!(escape("\r"), "\\x0d");
        assert_eq!(escape("\x1b"), "\\x1b");
        assert_eq!(escape("\x07"), "\\x07");
        assert_eq!(escape("\0"), "\\x00");
    }

    #[test]
    fn del_and_c1_controls_are_escaped() {
        assert_eq!(escape("\x7f"), "\\x7f");
        for n in 0x80u32..=0x9f {
            let c = char::from_u32(n).unwrap();
            assert_eq!(escape(&c.to_string()), format!("\\x{n:02x}"));
        }
        assert_eq!(escape("\u{9b}2J"), "\\x9b2J");
    }

    #[test]
    fn printable_text_is_kept_and_borrowed() {
        let text = "TASK [café] *** ¡ü € 日本 \u{a0}\u{2028} \\x1b\tend\n";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(escape_bytes(text.as_bytes()), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn a_terminal_title_and_clear_are_shown_not_sent() {
        let line = "-\x1b]0;pwned\x07\x1b[2J";
        assert_eq!(escape(line), "-\\x1b]0;pwned\\x07\\x1b[2J");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(escape_bytes(b"a\xffb\xc3"), "a\\xffb\\xc3");
        // A UTF-8-encoded C1 control is escaped as the character, a lone
        // byte of that value as the byte: both read \x9b.
        assert_eq!(escape_bytes("é\u{9b}".as_bytes()), "é\\x9b");
        assert_eq!(
            escape_bytes(b"\x9b\x1b[0m\xe2\x82"),
            "\\x9b\\x1b[0m\\xe2\\x82"
        );
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let raw = "a\x1b]0;t\x07\r\u{85}\x7f\\x1b b";
        let once = escape(raw).into_owned();
        assert_eq!(escape(&once), once);
        assert!(is_plain(&once) && !is_plain(raw));
    }
}
