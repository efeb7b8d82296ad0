//! Agent names and the other identifiers clients send (`actors/src/validate.rs`): never a
//! panic, and whatever is accepted really is what the rules promise (a name is a lower-case DNS
//! label; an email is lower-cased, with one `@`; cpu and memory limits are positive).
#![no_main]

use flotilla_actors::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if validate::agent_name(input).is_ok() {
        assert!(!input.is_empty() && input.len() <= validate::MAX_NAME_LEN);
        assert!(
            input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!input.starts_with('-') && !input.ends_with('-'));
        assert!(!validate::RESERVED_AGENT_NAMES.contains(&input));
    }
    if validate::slug(input).is_ok() {
        assert!(!input.is_empty() && input.len() <= 64);
    }
    if let Ok(email) = validate::email(input) {
        assert_eq!(email, email.to_lowercase());
        assert_eq!(email.matches('@').count(), 1);
        assert!(!email.chars().any(char::is_control));
    }
    if let Ok(nano) = validate::parse_cpu(input) {
        assert!(nano > 0);
    }
    if let Ok(bytes) = validate::parse_memory(input) {
        assert!(bytes > 0);
    }
    let _ = validate::github_repo(input);
    let _ = validate::text(input, 128);
    let tags: Vec<String> = input.split(',').map(str::to_string).collect();
    if let Ok(tags) = validate::tags(&tags) {
        assert!(tags.iter().all(|t| !t.is_empty()));
    }
});
