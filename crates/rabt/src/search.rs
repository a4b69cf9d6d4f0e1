//! What the searches share: turning a visitor's words into safe `to_tsquery`
//! text, and the checks of query parameters.

use crate::http::FieldError;

/// The words of a query, lowercased, at most 10 of at most 50 characters.
/// A word keeps its letters and digits and the `-` and `.` between them, and
/// nothing else, so it can never carry `to_tsquery` syntax: Postgres' parser
/// then reads `full-stack` or `node.js` as it read the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub list: Vec<String>,
}

impl Words {
    pub fn parse(q: &str) -> Option<Self> {
        let list: Vec<String> = q
            .split_whitespace()
            .map(|w| {
                let kept: String = w
                    .chars()
                    .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '.'))
                    .take(50)
                    .collect();
                kept.trim_matches(['-', '.']).to_lowercase()
            })
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .take(10)
            .collect();
        (!list.is_empty()).then_some(Self { list })
    }

    /// Every word, each as a prefix: `w1:* & w2:*`.
    pub fn all(&self) -> String {
        self.joined(" & ")
    }

    /// Any word, each as a prefix: `w1:* | w2:*`.
    pub fn any(&self) -> String {
        self.joined(" | ")
    }

    /// The words separated by spaces, for trigram similarity.
    pub fn text(&self) -> String {
        self.list.join(" ")
    }

    fn joined(&self, with: &str) -> String {
        self.list
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(with)
    }
}

/// A `too_long` error when `value` has more than `max` characters.
pub fn too_long(field: &str, value: Option<&str>, max: usize) -> Option<FieldError> {
    value
        .filter(|v| v.chars().count() > max)
        .map(|_| FieldError::new(field, "too_long", format!("At most {max} characters.")))
}

/// A comma-separated list: trimmed, lowercased, empty parts dropped, at most
/// `max` items.
pub fn list(value: Option<&str>, max: usize) -> Option<Vec<String>> {
    value.map(|s| {
        s.split(',')
            .map(|k| k.trim().to_lowercase())
            .filter(|k| !k.is_empty())
            .take(max)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_hyphens_and_dots_stay_as_the_document_parser_reads_them() {
        let words = Words::parse("Full-Stack node.js -- .net- ...").unwrap();
        assert_eq!(words.list, ["full-stack", "node.js", "net"]);
        assert_eq!(words.all(), "full-stack:* & node.js:* & net:*");
    }

    #[test]
    fn query_syntax_never_reaches_to_tsquery() {
        let words = Words::parse("Rust & !web:* | (x) '' <-> 'go'").unwrap();
        assert_eq!(words.list, ["rust", "web", "x", "go"]);
        assert_eq!(words.all(), "rust:* & web:* & x:* & go:*");
        assert_eq!(words.any(), "rust:* | web:* | x:* | go:*");
        assert_eq!(Words::parse(" &&& !! "), None);
    }
}
