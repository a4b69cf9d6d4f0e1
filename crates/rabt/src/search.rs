//! What the searches share: turning a visitor's words into safe `to_tsquery`
//! text, and the checks of query parameters.

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned},
};

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

/// A comma-separated query parameter (`skills=rust,go`): parts trimmed and
/// lowercased, empty ones dropped, at most `MAX` kept, each read as `T` by
/// serde, so an enum's parts are named as the API names its variants and an
/// unknown one is a 422 naming the parameter. Longer input than `MAX` parts
/// of 64 characters is refused before it is split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommaList<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: DeserializeOwned, const MAX: usize> Deserialize<'de> for CommaList<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.chars().count() > MAX * 64 {
            return Err(de::Error::custom(format!(
                "at most {} characters",
                MAX * 64
            )));
        }
        text.split(',')
            .map(|part| part.trim().to_lowercase())
            .filter(|part| !part.is_empty())
            .take(MAX)
            .map(|part| T::deserialize(de::value::StringDeserializer::<D::Error>::new(part)))
            .collect::<Result<Vec<T>, _>>()
            .map(Self)
    }
}

impl<T, const MAX: usize> CommaList<T, MAX> {
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
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
    fn comma_lists_are_trimmed_lowercased_bounded_and_typed() {
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Colour {
            Red,
            DarkBlue,
        }
        let parse = |text: &str| {
            CommaList::<Colour, 2>::deserialize(
                de::value::StrDeserializer::<de::value::Error>::new(text),
            )
        };
        assert_eq!(
            parse(" RED,, dark_blue ,red").unwrap().into_vec(),
            [Colour::Red, Colour::DarkBlue]
        );
        assert_eq!(parse("").unwrap().into_vec(), []);
        assert!(parse("red,green").is_err());
        assert!(parse(&"r".repeat(129)).is_err());
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
