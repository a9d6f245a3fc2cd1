//! A way around a bug in arrow-json 60.1's tape decoder: it joins the halves of an escaped
//! surrogate pair with `|` where it must add (`char_from_surrogate_pair`: `(hi << 10) |
//! (lo + 0x10000)`), so every character whose high half sets bit 16 reads wrong: `\ud840\udc00`
//! (U+20000, the first of CJK Extension B) reads as U+10000. The fuzz target found it, in a key
//! the serde scan read one way and the decoder another. The JSON the tape reads gets every
//! escaped pair written as the character's UTF-8 instead, which JSON allows in a string.

use std::borrow::Cow;

/// `json` with every escaped surrogate pair (`\uD8xx\uDCxx`) written as the UTF-8 of its
/// character; `json` itself (no copy) when it has none, as nearly every page.
pub(super) fn unescape_surrogate_pairs(json: &[u8]) -> Cow<'_, [u8]> {
    // A fast look for a `\u` escape of a high half; one found (or text that only looks like
    // one, after an escaped backslash) sends the whole array through the exact walk below.
    let maybe = memchr::memmem::find_iter(json, b"\\u").any(|at| {
        matches!(json.get(at + 2), Some(b'd' | b'D'))
            && matches!(
                json.get(at + 3),
                Some(b'8' | b'9' | b'a' | b'b' | b'A' | b'B')
            )
    });
    if !maybe {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    let mut from = 0;
    // Backslashes only start escapes (they appear nowhere but in strings), and each escape is
    // taken whole, so `\\` followed by `u` is never read as an escape of its own.
    while let Some(offset) = memchr::memchr(b'\\', &json[from..]) {
        let at = from + offset;
        out.extend_from_slice(&json[from..at]);
        let escape = &json[at..];
        if let Some(c) = surrogate_pair(escape) {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            from = at + 12;
        } else {
            let len = escape.len().min(2);
            out.extend_from_slice(&escape[..len]);
            from = at + len;
        }
    }
    out.extend_from_slice(&json[from..]);
    Cow::Owned(out)
}

/// The character of the escaped surrogate pair `escape` starts with, if it starts with one.
fn surrogate_pair(escape: &[u8]) -> Option<char> {
    let high = hex4(escape.get(..6)?.strip_prefix(b"\\u")?)?;
    let low = hex4(escape.get(6..12)?.strip_prefix(b"\\u")?)?;
    if !(0xD800..0xDC00).contains(&high) || !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
}

fn hex4(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_pairs_become_their_characters_and_the_rest_is_kept() {
        let json = br#"["\ud840\udc00", "\uD83D\uDE00 x", "\\ud840\udc00", "\u00f8\n", "\ud840"]"#;
        let out = unescape_surrogate_pairs(json);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "[\"\u{20000}\", \"\u{1F600} x\", \"\\\\ud840\\udc00\", \"\\u00f8\\n\", \"\\ud840\"]"
        );
        assert!(matches!(
            unescape_surrogate_pairs(br#"[{"a": "\u00e5"}]"#),
            Cow::Borrowed(_)
        ));
    }

    /// What serde reads from the original, it reads from the rewritten text.
    #[test]
    fn the_rewritten_text_reads_the_same() {
        let json = br#"[{"k\ud840\udc00": "\uDAED\uDDAD \\u \" \ud83d\ude00"}]"#;
        let out = unescape_surrogate_pairs(json);
        let original: serde_json::Value = serde_json::from_slice(json).unwrap();
        let rewritten: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(original, rewritten);
        assert_eq!(original[0]["k\u{20000}"], "\u{CB5AD} \\u \" \u{1F600}");
    }
}
