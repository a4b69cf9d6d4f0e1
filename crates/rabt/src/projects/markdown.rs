//! Rich text: Markdown sources cleaned on write, and their HTML rendering.
//!
//! A description is stored twice, both safe to serve:
//! - the Markdown source, in which every raw HTML fragment has been passed
//!   through the `ammonia` allow-list and every link or image whose address has
//!   a scheme outside the allow-list (`javascript:`, `data:`, …) has been
//!   replaced by its text;
//! - `description_html`, the rendering of that source, cleaned by `ammonia`
//!   again (so the guarantee does not depend on the first pass).

use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

/// The cleaned source and its sanitised HTML rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RichText {
    pub source: String,
    pub html: String,
}

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

fn allow_list() -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("nofollow noopener noreferrer"));
    builder
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // No scheme (relative, fragment) unless the colon is past a path char.
        None => true,
        Some((scheme, _)) if scheme.contains(['/', '?', '#']) => true,
        Some((scheme, _)) => matches!(scheme, "http" | "https" | "mailto"),
    }
}

/// Cleans a Markdown source and renders it.
pub fn render(markdown: &str) -> RichText {
    // A replaced link's text can itself hold raw HTML or links: clean until
    // nothing changes (each pass removes at least one level of nesting).
    let mut source = clean_source(markdown);
    for _ in 0..8 {
        let again = clean_source(&source);
        if again == source {
            break;
        }
        source = again;
    }
    let mut rendered = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut rendered, Parser::new_ext(&source, options()));
    let html = allow_list().clean(&rendered).to_string();
    RichText { source, html }
}

/// The source with raw HTML sanitised and unsafe links reduced to their text.
fn clean_source(markdown: &str) -> String {
    let builder = allow_list();
    let allowed_tags = builder.clone_tags();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    // Open links and images with an unsafe address: where they start, and the
    // span of their text.
    let mut unsafe_links: Vec<(Range<usize>, Option<Range<usize>>)> = Vec::new();
    let mut html_block: Option<Range<usize>> = None;

    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        // The end of the innermost unsafe link: replace it by its text.
        if matches!(event, Event::End(TagEnd::Link | TagEnd::Image))
            && unsafe_links
                .last()
                .is_some_and(|(whole, _)| *whole == range)
        {
            if let Some((whole, text)) = unsafe_links.pop() {
                let text = text.map(|t| markdown[t].to_owned()).unwrap_or_default();
                edits.push((whole, text));
            }
            continue;
        }
        for (_, text) in unsafe_links.iter_mut() {
            let span = text.get_or_insert(range.clone());
            span.start = span.start.min(range.start);
            span.end = span.end.max(range.end);
        }
        match event {
            Event::Start(Tag::HtmlBlock) => html_block = Some(range),
            Event::End(TagEnd::HtmlBlock) => {
                if let Some(block) = html_block.take() {
                    let cleaned = builder.clean(&markdown[block.clone()]).to_string();
                    edits.push((block, cleaned + "\n"));
                }
            }
            Event::InlineHtml(fragment) => {
                edits.push((range, clean_inline_tag(&builder, &allowed_tags, &fragment)));
            }
            Event::Html(_) if html_block.is_none() => {
                let cleaned = builder.clean(&markdown[range.clone()]).to_string();
                edits.push((range, cleaned));
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. })
                if !safe_url(&dest_url) =>
            {
                unsafe_links.push((range, None));
            }
            _ => {}
        }
    }

    // Apply from the end; an edit inside one already applied is dropped.
    edits.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut out = String::with_capacity(markdown.len());
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            continue;
        }
        out.push_str(&markdown[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&markdown[at..]);
    out
}

/// An inline tag on its own (`<b>`, `</b>`, `<img src=x onerror=…>`): kept only
/// as the allow-list rewrites it.
fn clean_inline_tag(
    builder: &ammonia::Builder<'_>,
    allowed: &std::collections::HashSet<&str>,
    fragment: &str,
) -> String {
    let trimmed = fragment.trim();
    if let Some(closing) = trimmed.strip_prefix("</") {
        let name = closing.trim_end_matches('>').trim().to_ascii_lowercase();
        return if allowed.contains(name.as_str()) {
            format!("</{name}>")
        } else {
            String::new()
        };
    }
    let cleaned = builder.clean(trimmed).to_string();
    // ammonia closes what it opened; the source closes it later itself.
    match cleaned.rfind("</") {
        Some(at) if cleaned.ends_with('>') && !trimmed.ends_with("/>") => cleaned[..at].to_owned(),
        _ => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_plain_text_survives() {
        let text = render("# Hello\n\n> a quote, and 3 < 4 & 5 > 2\n\n* **bold**\n");
        assert_eq!(
            text.source,
            "# Hello\n\n> a quote, and 3 < 4 & 5 > 2\n\n* **bold**\n"
        );
        assert!(text.html.contains("<h1>Hello</h1>"), "{}", text.html);
        assert!(text.html.contains("<blockquote>"), "{}", text.html);
        assert!(text.html.contains("<strong>bold</strong>"), "{}", text.html);
        assert!(text.html.contains("3 &lt; 4"), "{}", text.html);
    }

    #[test]
    fn scripts_handlers_and_javascript_links_are_removed_from_both() {
        let attacks = [
            "hi <script>alert(1)</script> there",
            "<script>\nalert(1)\n</script>\n",
            "x <img src=x onerror=alert(1)> y",
            "<div onclick=\"alert(1)\">block</div>\n",
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1)) and ![i](data:text/html;base64,PHNjcmlwdD4=)",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "[<img src=x onerror=alert(1)>](javascript:x)",
            "[[a](javascript:b)](javascript:c)",
        ];
        for attack in attacks {
            let text = render(attack);
            for part in [&text.source, &text.html] {
                let lower = part.to_ascii_lowercase();
                for bad in [
                    "<script",
                    "onerror",
                    "onclick",
                    "javascript:",
                    "data:",
                    "<iframe",
                ] {
                    assert!(!lower.contains(bad), "{bad} in {part:?} from {attack:?}");
                }
            }
        }
    }

    #[test]
    fn allowed_html_and_safe_links_are_kept() {
        let text = render("a <b>bold</b> word and [site](https://rabt.dev) <em>x</em>");
        assert_eq!(
            text.source,
            "a <b>bold</b> word and [site](https://rabt.dev) <em>x</em>"
        );
        assert!(text.html.contains("<b>bold</b>"), "{}", text.html);
        assert!(
            text.html.contains("href=\"https://rabt.dev\""),
            "{}",
            text.html
        );
        assert!(text.html.contains("rel=\"nofollow"), "{}", text.html);
        let unsafe_link = render("see [the docs](javascript:void(0)) now");
        assert_eq!(unsafe_link.source, "see the docs now");
    }
}
