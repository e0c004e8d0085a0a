//! Twilio's request signature (`X-Twilio-Signature`), computed and checked exactly as Twilio
//! does for its form-encoded webhooks (SPEC §6 "Webhooks and tracking").
//!
//! Twilio signs each webhook request it makes:
//!
//! 1. take the full URL it requested (scheme, host, path and query string, as configured on
//!    the number, so the **public** URL, `RELENTLESS_PUBLIC_URL` + path + query, not the
//!    address the server listens on);
//! 2. sort the POST parameters by name and append each name and its value to the URL, with no
//!    separators (a name that occurs more than once is appended once per value, values in
//!    sorted order);
//! 3. HMAC-SHA1 the result with the account's auth token as the key;
//! 4. base64-encode the digest (standard alphabet, with padding).
//!
//! [`verify`] compares in constant time, and also accepts the signature computed over the
//! URL with its default port added or removed (`https://host/…` ⇄ `https://host:443/…`), as
//! Twilio's own helper libraries do, because Twilio does not sign consistently on that point.
//!
//! Pure: no I/O. The webhook handlers collect the form parameters and call [`verify`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The `X-Twilio-Signature` value Twilio sends for a POST to `url` with the form parameters
/// `params` (in any order), signed with `auth_token`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header_value` (the `X-Twilio-Signature` header) is Twilio's signature of a POST to
/// `url` with the form parameters `params`. Constant-time comparison; a value that is not
/// valid base64 is rejected. `url` must be the public URL Twilio was given, query included.
pub fn verify(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_value: &str,
) -> bool {
    let Ok(expected) = STANDARD.decode(header_value.trim()) else {
        return false;
    };
    let mut ok = false;
    for candidate in url_variants(url) {
        // Each candidate is checked in constant time; no early exit between candidates either.
        ok |= mac(auth_token, &candidate, params)
            .verify_slice(&expected)
            .is_ok();
    }
    ok
}

/// The parameters of a form-encoded webhook body (`application/x-www-form-urlencoded`), in
/// the order sent; `None` when the body is not UTF-8. `+` is a space and `%XX` escapes are
/// decoded (invalid UTF-8 after decoding becomes U+FFFD, as Twilio's own libraries read it).
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Byte order = code point order, as Twilio's libraries sort. Values break ties so that a
    // repeated name gives one answer whatever order the form listed them in.
    sorted.sort();
    let mut m =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts any key length");
    m.update(url.as_bytes());
    for (name, value) in sorted {
        m.update(name.as_bytes());
        m.update(value.as_bytes());
    }
    m
}

/// `url` itself, then the same URL with its scheme's default port removed (if it had one) or
/// added (if it had none): the two forms Twilio's helper libraries try.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let scheme = url[..scheme_end].to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let auth_start = scheme_end + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    let authority = &url[auth_start..auth_end];
    // The host part begins after any `user:pass@`.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let hostport = &authority[host_start..];
    // A port is a `:digits` suffix that is not inside an IPv6 literal (`[::1]`).
    let port_colon = hostport
        .rfind(':')
        .filter(|&i| !hostport[i..].contains(']'));
    let (before, after) = (&url[..auth_start + host_start], &url[auth_end..]);
    match port_colon {
        Some(i) => {
            let port = &hostport[i + 1..];
            if port == default_port {
                out.push(format!("{before}{}{after}", &hostport[..i]));
            }
        }
        None => out.push(format!("{before}{hostport}:{default_port}{after}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    /// Twilio's published example, parameters deliberately not in sorted order.
    fn params() -> Vec<(String, String)> {
        [
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn matches_twilio_published_example() {
        assert_eq!(signature(TOKEN, URL, &params()), EXPECTED);
        assert!(verify(TOKEN, URL, &params(), EXPECTED));
    }

    #[test]
    fn a_changed_param_fails() {
        let mut p = params();
        p[2].1 = "1235".into();
        assert_ne!(signature(TOKEN, URL, &p), EXPECTED);
        assert!(!verify(TOKEN, URL, &p, EXPECTED));
        // An added parameter, a removed one, a renamed one.
        let mut added = params();
        added.push(("Body".into(), "STOP".into()));
        assert!(!verify(TOKEN, URL, &added, EXPECTED));
        assert!(!verify(TOKEN, URL, &params()[1..], EXPECTED));
        let mut renamed = params();
        renamed[0].0 = "to".into();
        assert!(!verify(TOKEN, URL, &renamed, EXPECTED));
    }

    #[test]
    fn a_changed_url_token_or_header_fails() {
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params(),
            EXPECTED
        ));
        assert!(!verify(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params(),
            EXPECTED
        ));
        assert!(!verify(
            TOKEN,
            "https://mycompany.com/myapp.php",
            &params(),
            EXPECTED
        ));
        assert!(!verify("12346", URL, &params(), EXPECTED));
        assert!(!verify(
            TOKEN,
            URL,
            &params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
        assert!(!verify(
            TOKEN,
            URL,
            &params(),
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(TOKEN, URL, &params(), ""));
        assert!(!verify(TOKEN, URL, &params(), "not base64!"));
    }

    #[test]
    fn default_port_added_or_removed_is_accepted() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let sig = signature(TOKEN, with_port, &params());
        assert!(verify(TOKEN, URL, &params(), &sig));
        assert!(verify(TOKEN, with_port, &params(), EXPECTED));
        // Another port is another URL.
        let other = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(!verify(TOKEN, other, &params(), EXPECTED));
    }

    #[test]
    fn url_variants_handle_userinfo_ipv6_and_no_path() {
        assert_eq!(
            url_variants("https://u:p@h.example:443/x"),
            ["https://u:p@h.example:443/x", "https://u:p@h.example/x"]
        );
        assert_eq!(
            url_variants("http://[::1]/x?a=1"),
            ["http://[::1]/x?a=1", "http://[::1]:80/x?a=1"]
        );
        assert_eq!(
            url_variants("https://h.example"),
            ["https://h.example", "https://h.example:443"]
        );
        assert_eq!(
            url_variants("http://h.example:8080/"),
            ["http://h.example:8080/"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }

    #[test]
    fn repeated_names_are_order_independent() {
        let a = vec![
            ("Media".to_string(), "b".to_string()),
            ("Media".to_string(), "a".to_string()),
        ];
        let b = vec![
            ("Media".to_string(), "a".to_string()),
            ("Media".to_string(), "b".to_string()),
        ];
        assert_eq!(signature(TOKEN, URL, &a), signature(TOKEN, URL, &b));
    }
}
