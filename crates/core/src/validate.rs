//! Validation of what people type: slugs, phones, emails, time zones.

/// A slug: lowercase letters, digits and dashes, 1 to 64 characters.
pub fn slug(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(format!("'{s}' is not a slug (lowercase letters, digits and dashes, at most 64)"));
    }
    Ok(())
}
