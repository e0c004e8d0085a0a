//! Engagement signals and the machine-open heuristic (SPEC §5.5).
//!
//! An email open (the tracking pixel), a link click or a video view is engagement: it makes the
//! lead `hot` and gives the agent a call task. Many of those requests are not made by the lead,
//! though: mail privacy proxies prefetch every image when a message is delivered, and security
//! scanners fetch every link within seconds of delivery to check it. Such hits are recorded on
//! the timeline but must not raise the lead. [`is_machine`] decides, from what a tracking
//! request tells us (its `User-Agent`, how long after sending it came, and how many other
//! links of the same message were hit around the same moment), and names the reason.
//!
//! # The heuristic, rule by rule (first match wins)
//!
//! 1. **No user agent.** Every browser and mail client sends one; an empty (or all-blank)
//!    `User-Agent` is a script. Reason: `"no user agent"`.
//! 2. **Security scanners and link fetchers** (case-insensitive substring of the user agent):
//!    - `Barracuda` (Barracuda Email Protection / Sentinel link checks),
//!    - `Mimecast` (Mimecast URL Protect),
//!    - `Proofpoint` (Proofpoint URL Defense, when it announces itself),
//!    - `Microsoft Office Existence Discovery` (Office probing whether a link exists),
//!    - HTTP libraries that no person browses with: `python-requests/`, `python-urllib/`,
//!      `aiohttp/`, `curl/`, `Wget/`, `Go-http-client/`, `Java/`, `Apache-HttpClient/`,
//!      `libwww-perl/`, `node-fetch`, `axios/`, `HeadlessChrome`, `PhantomJS`,
//!    - link-preview fetchers: `facebookexternalhit`, `WhatsApp/`, `TelegramBot`,
//!      `SkypeUriPreview`, and any word containing `preview`, `crawler` or `spider`,
//!    - any word of the user agent that ends in `bot` (`Googlebot`, `bingbot`,
//!      `Slackbot-LinkExpanding`, `Twitterbot`, `LinkedInBot`, `Discordbot`, …) except the
//!      phone brand `CUBOT`.
//!
//!    Reason: `"security scanner or link fetcher (TOKEN)"`.
//! 3. **Yahoo / AOL mail proxy**: `YahooMailProxy` in the user agent (real string:
//!    `YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html`). Yahoo's
//!    proxy fetches and caches the images of a message for all of its readers, including at
//!    delivery, so the fetch says nothing about the lead reading it. Reason:
//!    `"Yahoo/AOL mail proxy"`.
//! 4. **Apple Mail Privacy Protection**: Apple's proxy prefetches the remote content of every
//!    message when Mail (iOS 15+, macOS 12+) receives it, whether or not it is ever read, and
//!    sends the bare user agent `Mozilla/5.0` with nothing after it. Real Apple Mail loading
//!    images itself (Privacy Protection off) sends details, e.g.
//!    `Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148`
//!    or `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)`,
//!    and is counted. Reason: `"Apple Mail Privacy Protection"`.
//! 5. **Gmail's image proxy**: every image that Gmail (web and apps) shows is fetched through
//!    `…(via ggpht.com GoogleImageProxy)`, e.g.
//!    `Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)`.
//!    Gmail fetches when the reader opens the message (and serves its cached copy after that),
//!    so **a GoogleImageProxy open counts as a human open** — except within the first
//!    [`GMAIL_PREFETCH_SECS`] (10 s) after sending, when it is Google's delivery-time scan,
//!    not a person. The image proxy never follows links, so a *click* with this user agent is
//!    a machine. Reason: `"Gmail image proxy fetch at delivery"` /
//!    `"Gmail image proxy does not click links"`.
//! 6. **A click within [`MACHINE_CLICK_SECS`] (2 s) of sending.** Nobody receives, opens,
//!    reads and clicks within two seconds; link scanners (including those that send a normal
//!    browser user agent, such as Microsoft Defender Safe Links detonation or Proofpoint
//!    sandboxes) do. `seconds_since_sent` at or below 2, or negative (clock skew), qualifies.
//!    Reason: `"click within 2 s of sending"`.
//! 7. **All links at once**: a click while [`ALL_LINKS_OTHERS`] (2) or more *other* links of the
//!    same message were clicked within 5 s of it — three or more distinct links in five
//!    seconds is a scanner walking the message, not a person. Reason:
//!    `"several links clicked within 5 s"`.
//!
//! Anything else is a person: desktop and mobile browsers, the Gmail app and web (after the
//! delivery window), Outlook desktop (`Microsoft Office/16.0 (Windows NT 10.0; Microsoft
//! Outlook 16.0.17928; Pro)`), Apple Mail without Privacy Protection.
//!
//! Rules 1–4 apply to opens and clicks alike; video views are reported by the video page's
//! own script, which scanners do not run, so callers usually skip the check for them.
//!
//! # Weight
//!
//! Not all engagement says as much: [`weight`] gives an open 1, a click 2 and a video view 3,
//! so a click or a video view counts for more than an open (issue 3, item 6).

/// A click counts as a machine when it comes this soon (or sooner) after sending.
pub const MACHINE_CLICK_SECS: i64 = 2;
/// A Gmail image-proxy open this soon (or sooner) after sending is a delivery-time fetch.
pub const GMAIL_PREFETCH_SECS: i64 = 10;
/// A click with at least this many *other* links of the message clicked within 5 s is a scanner.
pub const ALL_LINKS_OTHERS: usize = 2;

/// What a tracking request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitKind {
    /// The open pixel was fetched.
    Open,
    /// A rewritten link was followed.
    Click,
}

/// One tracking request, as the web layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The request's `User-Agent` header (`""` when absent).
    pub user_agent: &'a str,
    /// Seconds between sending the message and this request (may be negative on clock skew).
    pub seconds_since_sent: i64,
    pub kind: HitKind,
    /// How many *other* links of the same message were clicked within 5 s of this request.
    pub other_links_clicked_within_5s: usize,
}

/// Kinds of engagement, for [`weight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngagementKind {
    Open,
    Click,
    VideoView,
}

impl From<HitKind> for EngagementKind {
    fn from(k: HitKind) -> Self {
        match k {
            HitKind::Open => EngagementKind::Open,
            HitKind::Click => EngagementKind::Click,
        }
    }
}

/// How much an engagement says: open 1, click 2, video view 3.
pub fn weight(kind: impl Into<EngagementKind>) -> u8 {
    match kind.into() {
        EngagementKind::Open => 1,
        EngagementKind::Click => 2,
        EngagementKind::VideoView => 3,
    }
}

/// Substrings (lowercase) of user agents of scanners, HTTP libraries and link-preview fetchers.
const MACHINE_TOKENS: &[&str] = &[
    "barracuda",
    "mimecast",
    "proofpoint",
    "microsoft office existence discovery",
    "python-requests/",
    "python-urllib/",
    "aiohttp/",
    "curl/",
    "wget/",
    "go-http-client/",
    "java/",
    "apache-httpclient/",
    "libwww-perl/",
    "node-fetch",
    "axios/",
    "headlesschrome",
    "phantomjs",
    "facebookexternalhit",
    "whatsapp/",
    "telegrambot",
    "skypeuripreview",
];

/// Words ending in `bot` that are not bots.
const NOT_BOTS: &[&str] = &["cubot"];

/// The word of `ua` (split on anything but letters and digits) that marks a bot, crawler,
/// spider or previewer, if any.
fn bot_word(ua_lower: &str) -> Option<&str> {
    ua_lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .find(|w| {
            (w.ends_with("bot") && !NOT_BOTS.contains(w))
                || w.contains("crawler")
                || w.contains("spider")
                || w.contains("preview")
        })
}

/// Why `hit` was made by a machine (see the module documentation), or `None` for a person.
pub fn is_machine(hit: &Hit) -> Option<&'static str> {
    let ua = hit.user_agent.trim();
    if ua.is_empty() {
        return Some("no user agent");
    }
    let lower = ua.to_ascii_lowercase();
    if let Some(t) = MACHINE_TOKENS.iter().find(|t| lower.contains(*t)) {
        return Some(scanner_reason(t));
    }
    if bot_word(&lower).is_some() {
        return Some("security scanner or link fetcher (bot, crawler or preview)");
    }
    if lower.contains("yahoomailproxy") {
        return Some("Yahoo/AOL mail proxy");
    }
    if ua == "Mozilla/5.0" {
        return Some("Apple Mail Privacy Protection");
    }
    if lower.contains("googleimageproxy") {
        match hit.kind {
            HitKind::Click => return Some("Gmail image proxy does not click links"),
            HitKind::Open if hit.seconds_since_sent <= GMAIL_PREFETCH_SECS => {
                return Some("Gmail image proxy fetch at delivery");
            }
            HitKind::Open => {}
        }
    }
    if hit.kind == HitKind::Click {
        if hit.seconds_since_sent <= MACHINE_CLICK_SECS {
            return Some("click within 2 s of sending");
        }
        if hit.other_links_clicked_within_5s >= ALL_LINKS_OTHERS {
            return Some("several links clicked within 5 s");
        }
    }
    None
}

/// A `'static` reason naming the matched token.
fn scanner_reason(token: &str) -> &'static str {
    match token {
        "barracuda" => "security scanner (Barracuda)",
        "mimecast" => "security scanner (Mimecast)",
        "proofpoint" => "security scanner (Proofpoint)",
        "microsoft office existence discovery" => {
            "link check (Microsoft Office Existence Discovery)"
        }
        "facebookexternalhit" | "whatsapp/" | "telegrambot" | "skypeuripreview" => {
            "link preview fetcher"
        }
        "headlesschrome" | "phantomjs" => "headless browser",
        _ => "HTTP library, not a browser",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real user agents of people's mail clients and browsers.
    const CHROME_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0";
    const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const IOS_MAIL_DIRECT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
    const MACOS_MAIL_DIRECT: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";
    const OUTLOOK_DESKTOP: &str =
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)";
    const GMAIL_PROXY: &str =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    const GMAIL_ANDROID_WEBVIEW: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.100 Mobile Safari/537.36";
    const CUBOT_PHONE: &str = "Mozilla/5.0 (Linux; Android 12; CUBOT X30 Build/SP1A.210812.016) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36";

    // Real user agents of machines.
    const APPLE_MPP: &str = "Mozilla/5.0";
    const YAHOO_PROXY: &str =
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html";
    const OFFICE_DISCOVERY: &str = "Microsoft Office Existence Discovery";
    const SLACKBOT: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";
    const FACEBOOK: &str =
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";
    const TWITTERBOT: &str = "Twitterbot/1.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const PYTHON: &str = "python-requests/2.32.3";
    const CURL: &str = "curl/8.5.0";
    const GO: &str = "Go-http-client/1.1";
    const GO2: &str = "Go-http-client/2.0";
    const BARRACUDA: &str = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))";
    const MIMECAST: &str = "Mozilla/5.0 (compatible; Mimecast URL Protect)";
    const PROOFPOINT: &str = "Proofpoint URL Defense";
    const LINKEDIN: &str =
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)";
    const SKYPE: &str = "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com";

    fn hit(ua: &str, secs: i64, kind: HitKind, others: usize) -> Hit<'_> {
        Hit {
            user_agent: ua,
            seconds_since_sent: secs,
            kind,
            other_links_clicked_within_5s: others,
        }
    }

    #[test]
    fn people_are_not_machines() {
        for ua in [
            CHROME_DESKTOP,
            FIREFOX_MAC,
            IPHONE_SAFARI,
            IOS_MAIL_DIRECT,
            MACOS_MAIL_DIRECT,
            OUTLOOK_DESKTOP,
            GMAIL_ANDROID_WEBVIEW,
            CUBOT_PHONE,
        ] {
            for kind in [HitKind::Open, HitKind::Click] {
                assert_eq!(is_machine(&hit(ua, 600, kind, 0)), None, "{ua} {kind:?}");
                assert_eq!(is_machine(&hit(ua, 600, kind, 1)), None, "{ua} {kind:?}");
            }
            // An open right after sending by a real client is still a person.
            assert_eq!(is_machine(&hit(ua, 1, HitKind::Open, 0)), None, "{ua}");
        }
    }

    #[test]
    fn gmail_proxy_is_a_person_unless_at_delivery() {
        // The Gmail app or web opening the message an hour later.
        assert_eq!(is_machine(&hit(GMAIL_PROXY, 3600, HitKind::Open, 0)), None);
        assert_eq!(is_machine(&hit(GMAIL_PROXY, 11, HitKind::Open, 0)), None);
        assert_eq!(
            is_machine(&hit(GMAIL_PROXY, 10, HitKind::Open, 0)),
            Some("Gmail image proxy fetch at delivery")
        );
        assert_eq!(
            is_machine(&hit(GMAIL_PROXY, 0, HitKind::Open, 0)),
            Some("Gmail image proxy fetch at delivery")
        );
        assert_eq!(
            is_machine(&hit(GMAIL_PROXY, 3600, HitKind::Click, 0)),
            Some("Gmail image proxy does not click links")
        );
    }

    #[test]
    fn apple_mail_privacy_protection() {
        for secs in [0, 5, 86_400] {
            assert_eq!(
                is_machine(&hit(APPLE_MPP, secs, HitKind::Open, 0)),
                Some("Apple Mail Privacy Protection")
            );
        }
        assert_eq!(
            is_machine(&hit(" Mozilla/5.0 ", 60, HitKind::Open, 0)),
            Some("Apple Mail Privacy Protection")
        );
    }

    #[test]
    fn proxies_scanners_and_fetchers_are_machines() {
        assert_eq!(
            is_machine(&hit(YAHOO_PROXY, 3600, HitKind::Open, 0)),
            Some("Yahoo/AOL mail proxy")
        );
        for ua in [
            OFFICE_DISCOVERY,
            SLACKBOT,
            FACEBOOK,
            TWITTERBOT,
            GOOGLEBOT,
            PYTHON,
            CURL,
            GO,
            GO2,
            BARRACUDA,
            MIMECAST,
            PROOFPOINT,
            LINKEDIN,
            SKYPE,
            "",
            "   ",
        ] {
            for kind in [HitKind::Open, HitKind::Click] {
                assert!(is_machine(&hit(ua, 3600, kind, 0)).is_some(), "{ua:?}");
            }
        }
        assert_eq!(
            is_machine(&hit("", 3600, HitKind::Open, 0)),
            Some("no user agent")
        );
        assert_eq!(
            is_machine(&hit(MIMECAST, 3600, HitKind::Click, 0)),
            Some("security scanner (Mimecast)")
        );
        assert_eq!(
            is_machine(&hit(OFFICE_DISCOVERY, 3600, HitKind::Click, 0)),
            Some("link check (Microsoft Office Existence Discovery)")
        );
    }

    #[test]
    fn fast_clicks_and_all_links_at_once() {
        // A scanner with a normal browser user agent (Safe Links detonation, sandboxes).
        for secs in [-3, 0, 1, 2] {
            assert_eq!(
                is_machine(&hit(CHROME_DESKTOP, secs, HitKind::Click, 0)),
                Some("click within 2 s of sending"),
                "{secs}"
            );
        }
        assert_eq!(is_machine(&hit(CHROME_DESKTOP, 3, HitKind::Click, 0)), None);
        // Opening two links in tabs is human; three or more within 5 s is a scanner.
        assert_eq!(
            is_machine(&hit(CHROME_DESKTOP, 90, HitKind::Click, 1)),
            None
        );
        assert_eq!(
            is_machine(&hit(CHROME_DESKTOP, 90, HitKind::Click, 2)),
            Some("several links clicked within 5 s")
        );
        assert_eq!(
            is_machine(&hit(CHROME_DESKTOP, 90, HitKind::Click, 7)),
            Some("several links clicked within 5 s")
        );
        // The link count does not apply to opens.
        assert_eq!(is_machine(&hit(CHROME_DESKTOP, 90, HitKind::Open, 7)), None);
    }

    #[test]
    fn weights() {
        assert_eq!(weight(HitKind::Open), 1);
        assert_eq!(weight(HitKind::Click), 2);
        assert_eq!(weight(EngagementKind::VideoView), 3);
        assert!(weight(EngagementKind::Click) > weight(EngagementKind::Open));
        assert!(weight(EngagementKind::VideoView) > weight(EngagementKind::Open));
    }
}
