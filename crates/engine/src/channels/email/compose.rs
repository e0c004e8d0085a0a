//! Turns a rendered plain-text email into the parts that go out: the text with the footer,
//! a small mobile-friendly HTML version (escaped, links made clickable and, when tracking,
//! rewritten to `{base}/c/{n}` plus an open pixel), the `Message-ID` and the RFC 8058
//! unsubscribe headers. Pure functions: no I/O, no clock, no randomness.

use sha2::{Digest, Sha256};

/// What every marketing email carries at the bottom (SPEC §5.2).
#[derive(Debug, Clone, Copy)]
pub struct Footer<'a> {
    pub team_name: &'a str,
    pub postal_address: &'a str,
    pub unsubscribe_url: &'a str,
}

/// The two bodies of an email and the links found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The plain-text part: the body, then `-- `, the team name, the postal address and
    /// `Unsubscribe: {url}`.
    pub text: String,
    /// The HTML part: a complete document.
    pub html: String,
    /// The distinct http(s) links of the body in order of first appearance: with tracking,
    /// `links[n]` is the target of `{base}/c/{n}` (store it server-side).
    pub links: Vec<String>,
}

const WRAP_STYLE: &str = "max-width:600px;margin:0 auto;padding:16px;\
font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif;\
font-size:16px;line-height:1.5;color:#222222;";
const P_STYLE: &str = "margin:0 0 16px;";
const A_STYLE: &str = "color:#1a5fb4;";
const HR_STYLE: &str = "border:none;border-top:1px solid #dddddd;margin:24px 0 12px;";
const FOOTER_STYLE: &str = "margin:0;font-size:12px;line-height:1.5;color:#777777;";

/// Builds the text and HTML parts of an email from its rendered plain-text `body`.
///
/// With `track_base` = `Some("https://app.example.com/t/TOKEN")`, the n-th distinct link of
/// the body points to `{base}/c/{n}` (n from 0) and an open pixel `{base}/o.gif` is appended;
/// the unsubscribe link is never rewritten. With `None`, links keep their URL and there is
/// no pixel. The text part is never rewritten.
pub fn compose(body: &str, footer: &Footer, track_base: Option<&str>) -> Composed {
    let body = normalize(body);
    let track_base = track_base.map(|b| b.trim_end_matches('/'));

    // Text part.
    let mut text = String::with_capacity(body.len() + 200);
    text.push_str(&body);
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str("-- \n");
    for line in [footer.team_name.trim(), footer.postal_address.trim()] {
        if !line.is_empty() {
            text.push_str(&normalize(line));
            text.push('\n');
        }
    }
    text.push_str("Unsubscribe: ");
    text.push_str(footer.unsubscribe_url.trim());
    text.push('\n');

    // HTML part.
    let mut links: Vec<String> = Vec::new();
    let mut content = String::with_capacity(body.len() * 2);
    for paragraph in paragraphs(&body) {
        content.push_str("<p style=\"");
        content.push_str(P_STYLE);
        content.push_str("\">");
        for (i, line) in paragraph.iter().enumerate() {
            if i > 0 {
                content.push_str("<br>\n");
            }
            linkify_line(line, track_base, &mut links, &mut content);
        }
        content.push_str("</p>\n");
    }

    let mut foot = String::new();
    for line in [footer.team_name.trim(), footer.postal_address.trim()] {
        if line.is_empty() {
            continue;
        }
        for (i, l) in normalize(line).lines().enumerate() {
            if i > 0 {
                foot.push_str("<br>");
            }
            foot.push_str(&escape(l.trim()));
        }
        foot.push_str("<br>\n");
    }
    foot.push_str(&format!(
        "<a href=\"{}\" style=\"color:#777777;\">Unsubscribe</a>",
        escape(footer.unsubscribe_url.trim())
    ));

    let pixel = match track_base {
        Some(base) => format!(
            "<img src=\"{}/o.gif\" width=\"1\" height=\"1\" alt=\"\">\n",
            escape(base)
        ),
        None => String::new(),
    };

    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"x-apple-disable-message-reformatting\">\n<title>{title}</title>\n</head>\n\
<body style=\"margin:0;padding:0;background:#ffffff;\">\n\
<div style=\"{WRAP_STYLE}\">\n{content}<hr style=\"{HR_STYLE}\">\n\
<p style=\"{FOOTER_STYLE}\">{foot}</p>\n</div>\n{pixel}</body>\n</html>\n",
        title = escape(footer.team_name.trim()),
    );

    Composed { text, html, links }
}

/// `<relentless.{touch_id}.{first 12 hex digits of sha256(seed)}@{domain}>`: the same touch
/// always gets the same `Message-ID`, so a retry cannot become a second distinct message.
pub fn message_id(touch_id: i64, seed: &str, domain: &str) -> String {
    let digest = hex::encode(Sha256::digest(seed.as_bytes()));
    format!("<relentless.{touch_id}.{}@{domain}>", &digest[..12])
}

/// The touch a [`message_id`] names, read back from its text (`None` for any other id). A
/// reply's `In-Reply-To` is matched by this touch's row, which must hold the very same id:
/// no index over every Message-ID is kept (one random index page per email sent).
pub fn touch_of_message_id(id: &str) -> Option<i64> {
    let rest = id.trim().strip_prefix("<relentless.")?;
    let (touch_id, _) = rest.split_once('.')?;
    if touch_id.is_empty() || !touch_id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    touch_id.parse().ok().filter(|id| *id > 0)
}

/// The RFC 8058 one-click unsubscribe headers: `List-Unsubscribe: <url>` and
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
pub fn list_unsubscribe_headers(unsubscribe_url: &str) -> Vec<(String, String)> {
    vec![
        (
            "List-Unsubscribe".to_string(),
            format!("<{}>", unsubscribe_url.trim()),
        ),
        (
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ),
    ]
}

/// `\r\n` and lone `\r` to `\n`, trailing white space of every line and of the whole removed.
fn normalize(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_string()
}

/// Groups lines into paragraphs separated by blank lines.
fn paragraphs(body: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// HTML-escapes `s` for text and for double- or single-quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Appends one escaped line to `out`, with every http(s) URL made a link.
fn linkify_line(line: &str, track_base: Option<&str>, links: &mut Vec<String>, out: &mut String) {
    let mut rest = 0;
    let mut from = 0;
    while let Some((start, end)) = find_url(line, from) {
        out.push_str(&escape(&line[rest..start]));
        let url = &line[start..end];
        let n = match links.iter().position(|l| l == url) {
            Some(n) => n,
            None => {
                links.push(url.to_string());
                links.len() - 1
            }
        };
        let href = match track_base {
            Some(base) => format!("{base}/c/{n}"),
            None => url.to_string(),
        };
        out.push_str(&format!(
            "<a href=\"{}\" style=\"{A_STYLE}\">{}</a>",
            escape(&href),
            escape(url)
        ));
        rest = end;
        from = end;
    }
    out.push_str(&escape(&line[rest..]));
}

/// The byte range of the next http(s) URL in `line` at or after `from`.
fn find_url(line: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        let scheme_len = if starts_with_ci(&bytes[i..], b"https://") {
            8
        } else if starts_with_ci(&bytes[i..], b"http://") {
            7
        } else {
            0
        };
        // A scheme glued to a preceding word ("xhttps://") is not a URL.
        let boundary = i == 0
            || !line[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
        if scheme_len > 0 && boundary {
            let tail = &line[i + scheme_len..];
            let stop = tail
                .char_indices()
                .find(|&(_, c)| {
                    c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '`')
                })
                .map_or(tail.len(), |(off, _)| off);
            let end = i + scheme_len + stop;
            let end = i + trim_trailing(&line[i..end]);
            if end > i + scheme_len {
                return Some((i, end));
            }
            i += scheme_len;
            continue;
        }
        i += line[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

/// The length of `url` without trailing punctuation: `.`, `,`, `;`, `:`, `!`, `?`, quotes,
/// and a closing bracket that has no opening one inside the URL.
fn trim_trailing(url: &str) -> usize {
    let mut s = url;
    loop {
        let Some(c) = s.chars().next_back() else {
            return 0;
        };
        let strip = match c {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '*' => true,
            ')' => s.matches(')').count() > s.matches('(').count(),
            ']' => s.matches(']').count() > s.matches('[').count(),
            '}' => s.matches('}').count() > s.matches('{').count(),
            _ => false,
        };
        if !strip {
            return s.len();
        }
        s = &s[..s.len() - c.len_utf8()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOOTER: Footer<'static> = Footer {
        team_name: "Acme Realty",
        postal_address: "1 Main St, Springfield, IL 62701",
        unsubscribe_url: "https://app.example.com/u/UNSUB",
    };
    const BASE: &str = "https://app.example.com/t/TOKEN";

    fn hrefs(html: &str) -> Vec<String> {
        html.split("href=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_string())
            .collect()
    }

    #[test]
    fn text_part_has_body_then_footer() {
        let c = compose(
            "Hi Ann,\r\n\r\nSee https://x.com/a.\r\n",
            &FOOTER,
            Some(BASE),
        );
        assert_eq!(
            c.text,
            "Hi Ann,\n\nSee https://x.com/a.\n\n-- \nAcme Realty\n\
1 Main St, Springfield, IL 62701\nUnsubscribe: https://app.example.com/u/UNSUB\n"
        );
    }

    #[test]
    fn html_is_a_small_document_with_paragraphs_and_line_breaks() {
        let c = compose("Hi Ann,\n\nLine one\nLine two\n\n\n\nBye", &FOOTER, None);
        assert!(c.html.starts_with("<!DOCTYPE html>"));
        assert!(c.html.contains("<meta charset=\"utf-8\">"));
        assert!(c.html.contains("name=\"viewport\""));
        assert!(c.html.contains(">Hi Ann,</p>"));
        assert!(c.html.contains(">Line one<br>\nLine two</p>"));
        assert!(c.html.contains(">Bye</p>"));
        assert_eq!(c.html.matches("<p style=\"margin:0 0 16px;\">").count(), 3);
        assert!(c.html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn lead_text_cannot_inject_html() {
        let body = "Hello <script>alert('x')</script> & \"you\" <img src=x onerror=alert(1)>\n\
https://evil.example/<script>alert(1)</script>\nhttps://evil.example/\"onmouseover=\"x";
        let footer = Footer {
            team_name: "<b>Team</b>",
            postal_address: "<i>addr</i>",
            unsubscribe_url: "https://app.example.com/u/\"><script>",
        };
        let c = compose(body, &footer, None);
        assert!(!c.html.contains("<script"), "{}", c.html);
        assert!(!c.html.contains("<img src=x"));
        assert!(!c.html.contains("<b>") && !c.html.contains("<i>"));
        assert!(
            c.html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;you&quot;")
        );
        assert_eq!(c.links, vec!["https://evil.example/"]);
        for h in hrefs(&c.html) {
            assert!(!h.contains('<') && !h.contains('>'), "{h}");
        }
    }

    #[test]
    fn tracked_links_are_numbered_by_distinct_url_and_pixel_appended() {
        let body = "Listing: https://homes.example.com/1?a=1&b=2.\n\
Again (https://homes.example.com/1?a=1&b=2), and http://other.example.com/x,\n\
Wiki https://en.wikipedia.org/wiki/Foo_(bar) ok";
        let c = compose(body, &FOOTER, Some(BASE));
        assert_eq!(
            c.links,
            vec![
                "https://homes.example.com/1?a=1&b=2",
                "http://other.example.com/x",
                "https://en.wikipedia.org/wiki/Foo_(bar)",
            ]
        );
        assert_eq!(
            hrefs(&c.html),
            vec![
                "https://app.example.com/t/TOKEN/c/0",
                "https://app.example.com/t/TOKEN/c/0",
                "https://app.example.com/t/TOKEN/c/1",
                "https://app.example.com/t/TOKEN/c/2",
                // The unsubscribe link is never rewritten.
                "https://app.example.com/u/UNSUB",
            ]
        );
        // The visible text is the original URL, escaped; punctuation stays outside.
        assert!(
            c.html
                .contains(">https://homes.example.com/1?a=1&amp;b=2</a>.")
        );
        assert!(
            c.html
                .contains(">https://homes.example.com/1?a=1&amp;b=2</a>), and")
        );
        assert!(c.html.contains(">http://other.example.com/x</a>,"));
        assert!(c.html.contains(
            "<img src=\"https://app.example.com/t/TOKEN/o.gif\" width=\"1\" height=\"1\" alt=\"\">"
        ));
        // The original targets appear only as link text, never as an href.
        assert!(!c.html.contains("href=\"https://homes"));
        // The text part keeps the real URLs.
        assert!(c.text.contains("https://homes.example.com/1?a=1&b=2."));
    }

    #[test]
    fn trailing_slash_on_track_base_is_ignored() {
        let c = compose("https://x.com", &FOOTER, Some("https://a.example/t/TOK/"));
        assert!(c.html.contains("href=\"https://a.example/t/TOK/c/0\""));
        assert!(c.html.contains("src=\"https://a.example/t/TOK/o.gif\""));
    }

    #[test]
    fn untracked_links_stay_as_is_and_no_pixel() {
        let c = compose("Go to https://x.com/a?b=1&c=2!", &FOOTER, None);
        assert_eq!(
            hrefs(&c.html),
            vec![
                "https://x.com/a?b=1&amp;c=2",
                "https://app.example.com/u/UNSUB"
            ]
        );
        assert_eq!(c.links, vec!["https://x.com/a?b=1&c=2"]);
        assert!(!c.html.contains("<img"));
        assert!(!c.html.contains("/c/0"));
    }

    #[test]
    fn url_detection_edges() {
        let find_all = |s: &str| {
            let mut out = Vec::new();
            let mut from = 0;
            while let Some((a, b)) = find_url(s, from) {
                out.push(s[a..b].to_string());
                from = b;
            }
            out
        };
        assert!(find_all("https:// and http:// alone").is_empty());
        assert!(find_all("xhttps://glued.example").is_empty());
        assert!(find_all("see https://... ok").is_empty());
        assert_eq!(
            find_all("HTTPS://Upper.example/Path"),
            ["HTTPS://Upper.example/Path"]
        );
        assert_eq!(
            find_all("<https://angle.example/a>"),
            ["https://angle.example/a"]
        );
        assert_eq!(find_all("end https://e.example/x"), ["https://e.example/x"]);
        assert_eq!(find_all("\"https://q.example/x\""), ["https://q.example/x"]);
        assert_eq!(find_all("(https://p.example/x).)"), ["https://p.example/x"]);
        assert_eq!(
            find_all("https://u.example/caf\u{e9}?q=\u{1f600}."),
            ["https://u.example/caf\u{e9}?q=\u{1f600}"]
        );
        assert_eq!(
            find_all("a https://a.example, b https://b.example; c"),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            find_all("ftp://x.example javascript:alert(1)"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn footer_is_escaped_and_multiline_address_kept() {
        let footer = Footer {
            team_name: "Smith & Sons",
            postal_address: "1 Main St\nSpringfield",
            unsubscribe_url: "https://app.example.com/u/X?a=1&b=2",
        };
        let c = compose("Hi", &footer, None);
        assert!(c.html.contains("Smith &amp; Sons<br>"));
        assert!(c.html.contains("1 Main St<br>Springfield<br>"));
        assert!(
            c.html
                .contains("href=\"https://app.example.com/u/X?a=1&amp;b=2\"")
        );
        assert!(c.text.contains("Smith & Sons\n1 Main St\nSpringfield\nUnsubscribe: https://app.example.com/u/X?a=1&b=2\n"));
    }

    #[test]
    fn a_message_id_names_its_touch() {
        let id = message_id(12_345, "https://crm.example.com", "mail.example.com");
        assert_eq!(touch_of_message_id(&id), Some(12_345));
        assert_eq!(touch_of_message_id(&format!(" {id} ")), Some(12_345));
        // Another sender's ids, and ours without a touch (one-off messages use 0), name none.
        for other in [
            "<CAF=abc.123@mail.gmail.com>",
            "<relentless.0.abcdef012345@mail.example.com>",
            "<relentless.-4.abcdef012345@x>",
            "<relentless.+4.abcdef012345@x>",
            "<relentless..abc@x>",
            "<relentless.12345@x>",
            "<relentless.99999999999999999999.abc@x>",
        ] {
            assert_eq!(touch_of_message_id(other), None, "{other}");
        }
    }

    #[test]
    fn message_id_is_deterministic() {
        let a = message_id(42, "touch-42-secret", "mail.example.com");
        assert_eq!(a, message_id(42, "touch-42-secret", "mail.example.com"));
        let digest = hex::encode(Sha256::digest(b"touch-42-secret"));
        assert_eq!(
            a,
            format!("<relentless.42.{}@mail.example.com>", &digest[..12])
        );
        assert_ne!(a, message_id(42, "other", "mail.example.com"));
        assert_ne!(a, message_id(43, "touch-42-secret", "mail.example.com"));
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a3...
        assert_eq!(
            message_id(1, "abc", "x.y"),
            "<relentless.1.ba7816bf8f01@x.y>"
        );
    }

    #[test]
    fn list_unsubscribe_headers_follow_rfc_8058() {
        assert_eq!(
            list_unsubscribe_headers("https://app.example.com/u/TOK"),
            vec![
                (
                    "List-Unsubscribe".to_string(),
                    "<https://app.example.com/u/TOK>".to_string()
                ),
                (
                    "List-Unsubscribe-Post".to_string(),
                    "List-Unsubscribe=One-Click".to_string()
                ),
            ]
        );
    }
}
