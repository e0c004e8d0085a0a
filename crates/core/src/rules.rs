//! Rules about what leads tell us: SMS keywords (SPEC §5.2), likely opt-outs written in
//! other words, the fixed replies to `HELP`, `STOP` and `START`, and the one-way hash kept on
//! the suppression list when a lead is erased (SPEC §5.8).

use sha2::{Digest, Sha256};

/// A carrier-style SMS keyword: an inbound text whose whole body is the keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsKeyword {
    /// `STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT`, `REVOKE`, `OPTOUT`, `OPT OUT`:
    /// set `sms_opt_out`, send one confirmation.
    Stop,
    /// `START`, `UNSTOP`: clear `sms_opt_out`.
    Start,
    /// `HELP`, `INFO`: send the help reply.
    Help,
}

/// Normalizes a body for keyword matching: drops leading and trailing characters that are not
/// letters or digits (spaces, punctuation, symbols, emoji), splits what is left on whitespace,
/// `-` and `_`, and joins the words with one space, uppercased. `" opt-out! "` → `"OPT OUT"`.
fn keyword_form(body: &str) -> String {
    let core = body.trim_matches(|c: char| !c.is_alphanumeric());
    core.split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// The keyword an inbound SMS body is, if its **whole** body is one (SPEC §5.2).
///
/// Case is ignored, and so are leading and trailing spaces, punctuation and symbols
/// (`"Stop."`, `" stop! "`, `"🛑 STOP"`). Between the words of a two-word keyword any run of
/// spaces, `-` or `_` is accepted, so `"OPT  OUT"`, `"opt-out"` and `"Opt_Out"` are all
/// `OPT OUT`; `"STOP ALL"` counts as `STOPALL`. Erring towards opting out is the safe side.
/// Anything more is not a keyword: `"stop texting me"` is `None` (see
/// [`looks_like_stop_request`] for that).
///
/// Stop: `STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT "OPT OUT"`;
/// Start: `START UNSTOP`; Help: `HELP INFO`.
pub fn sms_keyword(body: &str) -> Option<SmsKeyword> {
    // A keyword is short; do not normalize a whole essay.
    if body.len() > 64 {
        let core = body.trim_matches(|c: char| !c.is_alphanumeric());
        if core.len() > 32 {
            return None;
        }
    }
    match keyword_form(body).as_str() {
        "STOP" | "STOPALL" | "STOP ALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE"
        | "OPTOUT" | "OPT OUT" => Some(SmsKeyword::Stop),
        "START" | "UNSTOP" => Some(SmsKeyword::Start),
        "HELP" | "INFO" => Some(SmsKeyword::Help),
        _ => None,
    }
}

/// One phrase pattern: a sequence of slots, each a list of alternatives, an alternative being
/// one or more words. `end` anchors the match at the end of the sentence (trailing filler
/// words such as "now" or "please" allowed).
struct Pattern {
    slots: &'static [&'static [&'static str]],
    end: bool,
}

const fn p(slots: &'static [&'static [&'static str]]) -> Pattern {
    Pattern { slots, end: false }
}

const fn p_end(slots: &'static [&'static [&'static str]]) -> Pattern {
    Pattern { slots, end: true }
}

const STOP_VERB: &[&str] = &["stop", "quit", "cease", "stp"];
const CONTACT_ING: &[&str] = &[
    "texting",
    "txting",
    "texing",
    "text",
    "txt",
    "messaging",
    "msging",
    "message",
    "msg",
    "sending",
    "contacting",
    "calling",
    "emailing",
    "bothering",
    "spamming",
    "harassing",
    "hounding",
    "pestering",
    "following up",
    "reaching out",
];
const DETERMINER: &[&str] = &[
    "the",
    "these",
    "those",
    "your",
    "ur",
    "all",
    "all the",
    "all these",
    "all of these",
    "all your",
    "this",
    "such",
];
const MESSAGES: &[&str] = &[
    "texts",
    "text",
    "txts",
    "messages",
    "message",
    "msgs",
    "emails",
    "calls",
    "spam",
    "automated",
    "robo",
    "robotexts",
];
const DONT: &[&str] = &["dont", "do not", "never"];
const ME_OBJECT: &[&str] = &[
    "me",
    "my number",
    "my phone",
    "my phone number",
    "my cell",
    "my info",
    "my information",
    "my contact",
    "my contact info",
    "my details",
    "my name",
    "my email",
    "us",
    "this number",
    "this phone",
];

/// The phrases [`looks_like_stop_request`] looks for, per sentence, after lowercasing,
/// removing apostrophes (`don't` → `dont`) and splitting on anything that is not a letter or
/// digit. A match right after a negation (`dont`, `never`, `cant`, `not`, …) does not
/// count: "please don't stop sending listings" is not an opt-out.
const PATTERNS: &[Pattern] = &[
    // "stop texting me", "quit messaging", "stop contacting me", "stop following up"
    p(&[STOP_VERB, CONTACT_ING]),
    // "stop the texts", "stop all these messages", "stop this spam"
    p(&[STOP_VERB, DETERMINER, MESSAGES]),
    // "unsubscribe me", "not interested, unsubscribe"
    p(&[&[
        "unsubscribe",
        "unsubscribed",
        "unsub",
        "unsuscribe",
        "unsubcribe",
        "unsubscibe",
    ]]),
    // "opt me out", "opt-out", "optout please"
    p(&[&["opt"], &["out", "me out", "myself out", "us out"]]),
    p(&[&["optout", "optout me"]]),
    // "remove me from your list", "delete my number", "lose my number"
    p(&[&["remove", "delete", "erase", "lose", "drop"], ME_OBJECT]),
    // "take me off your list", "get my number off"
    p(&[&["take", "get", "cross"], ME_OBJECT, &["off"]]),
    // "don't text me", "do not contact me again", "never message this number"
    p(&[
        DONT,
        &[
            "text", "txt", "message", "msg", "contact", "email", "sms", "bother", "spam",
        ],
        &[
            "me",
            "us",
            "this number",
            "again",
            "anymore",
            "any more",
            "ever",
        ],
    ]),
    // "don't call me again" (but not "don't call me, text me")
    p(&[
        DONT,
        &["call"],
        &["me", "this number", "us"],
        &["again", "anymore", "any more", "ever"],
    ]),
    // "no more texts", "no more messages please"
    p(&[
        &["no more", "enough"],
        &[
            "texts", "text", "texting", "txts", "messages", "msgs", "emails", "calls", "spam",
        ],
    ]),
    p(&[&["leave"], &["me", "us"], &["alone", "be"]]),
    p(&[&["wrong number", "wrong person"]]),
    p(&[&["do not call list", "dnc list", "dnc"]]),
    p(&[&["cease and desist"]]),
    p(&[&[
        "go away",
        "get lost",
        "fuck off",
        "f off",
        "piss off",
        "bugger off",
    ]]),
    p(&[
        &["block", "blocking", "blocked"],
        &["you", "this number", "your number", "u"],
    ]),
    p(&[
        &["report", "reporting", "reported"],
        &["you", "this number", "your number", "as spam", "spam", "u"],
    ]),
    p(&[
        &["this is", "thats", "that is", "its"],
        &["spam", "harassment"],
    ]),
    // Whole-sentence (end-anchored) forms: "please stop", "stop it", "just stop", "stop this"
    p_end(&[
        &["please", "pls", "plz", "just", "seriously", "ok", "okay"],
        &["stop"],
    ]),
    p_end(&[
        &["stop"],
        &[
            "please", "pls", "plz", "it", "now", "this", "these", "them", "that",
        ],
    ]),
];

/// Words that may trail an end-anchored pattern: "please stop now", "stop it already".
const FILLER: &[&str] = &[
    "now",
    "already",
    "please",
    "pls",
    "plz",
    "thanks",
    "thx",
    "thank",
    "you",
    "asap",
    "immediately",
    "ok",
    "okay",
    "lol",
    "it",
    "right",
    "away",
];

/// Words that, right before a match, turn it around: "dont stop sending", "cant stop texting".
const NEGATION: &[&str] = &[
    "dont", "never", "cant", "cannot", "wont", "didnt", "doesnt", "shouldnt", "wouldnt", "not",
];

/// Matches `alt` (one or more words) at `tokens[i..]`; returns the index after it.
fn match_alt(tokens: &[&str], i: usize, alt: &str) -> Option<usize> {
    let mut j = i;
    for w in alt.split(' ') {
        if tokens.get(j) != Some(&w) {
            return None;
        }
        j += 1;
    }
    Some(j)
}

/// Every end index of `slots` matched starting at `i`.
fn match_slots(tokens: &[&str], i: usize, slots: &[&[&str]], out: &mut Vec<usize>) {
    let Some((first, rest)) = slots.split_first() else {
        out.push(i);
        return;
    };
    for alt in *first {
        if let Some(j) = match_alt(tokens, i, alt) {
            match_slots(tokens, j, rest, out);
        }
    }
}

fn sentence_matches(tokens: &[&str]) -> bool {
    if tokens.is_empty() {
        return false;
    }
    // A sentence made only of stop keywords: "Stop.", "STOP STOP", "unsubscribe!!"
    if tokens
        .iter()
        .all(|t| matches!(*t, "stop" | "stopall" | "unsubscribe" | "optout"))
    {
        return true;
    }
    let mut ends = Vec::new();
    for pat in PATTERNS {
        for start in 0..tokens.len() {
            if start > 0 && NEGATION.contains(&tokens[start - 1]) {
                continue;
            }
            ends.clear();
            match_slots(tokens, start, pat.slots, &mut ends);
            for &end in &ends {
                if !pat.end || tokens[end..].iter().all(|t| FILLER.contains(t)) {
                    return true;
                }
            }
        }
    }
    false
}

/// Longest body examined, in bytes; a longer message is judged on its first part.
const STOP_SCAN_MAX: usize = 2000;

/// Whether a reply that is not a keyword asks in other words to stop: "please stop texting
/// me", "remove me from your list", "don't text me", "not interested, unsubscribe me", "leave
/// me alone", "take me off", "wrong number" (SPEC §5.2: flagged for the agent as a likely
/// opt-out; it does not opt the lead out by itself). Also `true` for a body that is a `Stop`
/// keyword, or has a sentence that is only "stop"/"unsubscribe".
///
/// Ordinary replies are not flagged: "Stop by at 5?", "Can't stop thinking about the house",
/// "yes call me", "please don't stop sending listings". The phrases are in `PATTERNS` in this
/// file; matching is per sentence (split on `.`, `!`, `?`, `;` and line breaks), on lowercase
/// words with apostrophes removed.
pub fn looks_like_stop_request(body: &str) -> bool {
    if sms_keyword(body) == Some(SmsKeyword::Stop) {
        return true;
    }
    let mut end = body.len().min(STOP_SCAN_MAX);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let text: String = body[..end]
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`' | 'ʼ'))
        .flat_map(char::to_lowercase)
        .collect();
    text.split(['.', '!', '?', ';', '\n', '\r', '…'])
        .any(|sentence| {
            let tokens: Vec<&str> = sentence
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            sentence_matches(&tokens)
        })
}

/// The reply to `HELP`: team name, support contact, message frequency, "Msg & data rates may
/// apply" and how to opt out.
pub fn help_reply(team_name: &str, support_contact: &str) -> String {
    format!(
        "{}: for help, contact {}. Msg frequency varies. Msg & data rates may apply. \
         Reply STOP to opt out.",
        team_name.trim(),
        support_contact.trim()
    )
}

/// The one confirmation sent after a `Stop` keyword.
pub fn stop_confirmation(team_name: &str) -> String {
    format!(
        "You have been unsubscribed from {} texts. No more messages will be sent. \
         Reply START to resubscribe.",
        team_name.trim()
    )
}

/// The confirmation sent after a `Start` keyword.
pub fn start_confirmation(team_name: &str) -> String {
    format!(
        "You have been resubscribed to {} texts. Msg frequency varies. \
         Msg & data rates may apply. Reply HELP for help, STOP to opt out.",
        team_name.trim()
    )
}

/// The suppression-list key of an erased lead's phone or email (SPEC §5.8): lowercase hex
/// SHA-256 of `relentless-suppression-v1:{kind}:{normalized}`, with `normalized` trimmed and
/// lowercased. `kind` is `"phone"` (pass the E.164 form) or `"email"` (pass the output of
/// [`crate::validate::email`]).
///
/// It is one-way: the phone or email cannot be read back from it, only checked by hashing a
/// candidate the same way. The same input always gives the same hash (no salt), so a lead that
/// is re-imported or re-submitted is found; `kind` keeps a phone and an email from colliding.
pub fn suppression_hash(kind: &str, normalized: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"relentless-suppression-v1:");
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(normalized.trim().to_lowercase().as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stop_keywords() {
        for body in [
            "STOP",
            "stop",
            "Stop.",
            " stop! ",
            "\tSTOP\n",
            "StopAll",
            "STOP ALL",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT",
            "revoke",
            "OPTOUT",
            "opt out",
            "OPT  OUT",
            "Opt-Out",
            "opt_out",
            "\"stop\"",
            "...STOP...",
            "🛑 STOP",
            "(stop)",
        ] {
            assert_eq!(sms_keyword(body), Some(SmsKeyword::Stop), "{body:?}");
        }
    }

    #[test]
    fn start_and_help_keywords() {
        for body in ["START", "start", " Start. ", "UNSTOP", "unstop!"] {
            assert_eq!(sms_keyword(body), Some(SmsKeyword::Start), "{body:?}");
        }
        for body in ["HELP", "help", "Help?", "INFO", "info."] {
            assert_eq!(sms_keyword(body), Some(SmsKeyword::Help), "{body:?}");
        }
    }

    #[test]
    fn not_keywords() {
        for body in [
            "",
            "   ",
            "!!!",
            "stop texting me",
            "please stop",
            "STOP STOP",
            "st op",
            "stops",
            "yes",
            "YES",
            "Stop by at 5?",
            "help me find a house",
            "OPT IN",
            "OPTOUT NOW",
            "sto p",
            "ending",
            "s.t.o.p",
        ] {
            assert_eq!(sms_keyword(body), None, "{body:?}");
        }
        let long = format!("{}stop{}", " ".repeat(100), "!".repeat(100));
        assert_eq!(sms_keyword(&long), Some(SmsKeyword::Stop));
        assert_eq!(sms_keyword(&"stop ".repeat(100)), None);
    }

    #[test]
    fn stop_requests_are_flagged() {
        for body in [
            "please stop texting me",
            "Please stop texting me!",
            "STOP TEXTING ME",
            "stop texting",
            "Stop messaging me please",
            "quit texting me",
            "stop contacting me",
            "Stop calling me",
            "stop sending me these",
            "Can you stop the texts",
            "stop all these messages",
            "stop this spam",
            "remove me from your list",
            "Remove me",
            "please remove my number",
            "delete my number",
            "lose my number",
            "don't text me",
            "Dont text me",
            "do not text me again",
            "Do NOT contact me",
            "don’t message me",
            "never text this number again",
            "not interested, unsubscribe me",
            "Not interested. Unsubscribe",
            "how do I unsubscribe",
            "leave me alone",
            "Leave me alone!!",
            "take me off",
            "Take me off your list",
            "take my number off your list",
            "opt me out",
            "I want to opt out",
            "optout please",
            "no more texts",
            "No more messages please",
            "please stop",
            "Please stop.",
            "stop please",
            "Stop it",
            "just stop",
            "ok please stop now",
            "Stop. I already bought a house.",
            "Sold already. Stop.",
            "STOP STOP",
            "unsubscribe!!",
            "wrong number",
            "You have the wrong number",
            "put me on your do not call list",
            "go away",
            "I'm going to report this number",
            "this is spam",
            "I'll block you",
            "don't call me again",
            "Who is this? Stop texting me",
            "stop",
        ] {
            assert!(looks_like_stop_request(body), "should be flagged: {body:?}");
        }
    }

    #[test]
    fn ordinary_replies_are_not_flagged() {
        for body in [
            "",
            "Stop by at 5?",
            "Can't stop thinking about the house",
            "Cant stop thinking about it",
            "yes call me",
            "Yes, call me tomorrow",
            "please don't stop sending listings!",
            "Don't stop texting me, I love these",
            "Please stop by the office",
            "We can stop at the bank first",
            "Is the bus stop close?",
            "What's the HOA fee?",
            "Sounds good, see you at the showing",
            "Can you send more info?",
            "I'm interested, what is the price?",
            "Not interested in condos, only houses",
            "Please remove the carpet before the showing",
            "Take a look at 12 Main St",
            "I want to see the house",
            "thanks!",
            "end of the month works",
            "Help, what are the next steps?",
            "the school is right next to a stop sign",
            "don't call me, text me instead",
            "can you take off the closing cost?",
        ] {
            assert!(
                !looks_like_stop_request(body),
                "should not be flagged: {body:?}"
            );
        }
    }

    #[test]
    fn replies() {
        let h = help_reply("Acme Realty", "support@acme.example or (512) 555-0134");
        assert_eq!(
            h,
            "Acme Realty: for help, contact support@acme.example or (512) 555-0134. \
             Msg frequency varies. Msg & data rates may apply. Reply STOP to opt out."
        );
        for needle in [
            "Acme Realty",
            "Reply STOP to opt out",
            "Msg frequency varies",
            "Msg & data rates may apply",
            "support@acme.example",
        ] {
            assert!(h.contains(needle), "{needle}");
        }
        assert_eq!(
            stop_confirmation(" Acme Realty "),
            "You have been unsubscribed from Acme Realty texts. No more messages will be sent. \
             Reply START to resubscribe."
        );
        let s = start_confirmation("Acme Realty");
        assert!(s.contains("resubscribed to Acme Realty texts"));
        assert!(s.contains("STOP to opt out"));
        assert!(s.contains("Msg & data rates may apply"));
    }

    #[test]
    fn suppression_hashes() {
        let a = suppression_hash("email", "Ann@Example.com");
        assert_eq!(a, suppression_hash("email", "ann@example.com"));
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // Value pinned: SHA-256("relentless-suppression-v1:email:ann@example.com").
        let expected = hex::encode(Sha256::digest(
            b"relentless-suppression-v1:email:ann@example.com",
        ));
        assert_eq!(a, expected);
        assert_eq!(
            suppression_hash("phone", "+15125550134"),
            "19c58e89a2edffcc2b2d6580d82cd19ad2cc90bbb5aa4953d9b06765edf4f1fd"
        );
        assert_ne!(
            suppression_hash("phone", "+15125550134"),
            suppression_hash("email", "+15125550134")
        );
        assert_ne!(
            suppression_hash("phone", "+15125550134"),
            suppression_hash("phone", "+15125550135")
        );
        assert!(!a.contains("ann"));
    }

    proptest! {
        #[test]
        fn keyword_functions_never_panic(s in any::<String>()) {
            let _ = sms_keyword(&s);
            let _ = looks_like_stop_request(&s);
        }

        #[test]
        fn keyword_survives_surrounding_punctuation(pre in "[ .!?\"'()*-]{0,5}", post in "[ .!?\"'()*-]{0,5}") {
            prop_assert_eq!(sms_keyword(&format!("{pre}StOp{post}")), Some(SmsKeyword::Stop));
            prop_assert_eq!(sms_keyword(&format!("{pre}opt out{post}")), Some(SmsKeyword::Stop));
            prop_assert_eq!(sms_keyword(&format!("{pre}unstop{post}")), Some(SmsKeyword::Start));
            prop_assert_eq!(sms_keyword(&format!("{pre}help{post}")), Some(SmsKeyword::Help));
        }

        #[test]
        fn suppression_hash_is_stable(k in "(phone|email)", s in any::<String>()) {
            let h = suppression_hash(&k, &s);
            prop_assert_eq!(h.len(), 64);
            prop_assert_eq!(h, suppression_hash(&k, &s.to_lowercase()));
        }
    }
}
