//! Validation of everything a client can send that ends up in a name, a label or a limit.
//!
//! Pure functions, no I/O: they are fuzzed and unit-tested on their own. Each returns the reason as
//! a lower-case message; callers attach the field name (see [`FleetError::invalid`]).
//!
//! [`FleetError::invalid`]: crate::FleetError::invalid

/// Words that are routes under `/api/agents/`, so they can never be agent names.
pub const RESERVED_AGENT_NAMES: &[&str] = &["context-stats", "autonomy-status"];

/// Longest accepted agent name: a DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// An agent name is a lower-case DNS label (RFC 1123): 1–63 of `a-z`, `0-9`, `-`, starting and
/// ending with a letter or digit, and not a reserved route word. It becomes part of the container
/// name, a label and URLs, so nothing else is allowed.
pub fn agent_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "may contain only lower-case letters, digits and '-' (found {c:?})"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    if RESERVED_AGENT_NAMES.contains(&name) {
        return Err(format!("'{name}' is reserved"));
    }
    Ok(())
}

/// A short identifier-like value (agent type, template name): 1–64 of `a-z A-Z 0-9 - _ .`.
pub fn slug(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Free text stored and shown back (model names): no control characters, bounded length.
pub fn text(value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A GitHub repository as `owner/repo`.
pub fn github_repo(value: &str) -> Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match value.split_once('/') {
        Some((owner, repo)) if ok_part(owner) && ok_part(repo) => Ok(()),
        _ => Err("must look like 'owner/repo'".into()),
    }
}

/// Most tags one agent may carry.
pub const MAX_TAGS: usize = 32;

/// Lower-cases, deduplicates and sorts tags; each is 1–50 of `a-z 0-9 - _ . :`.
pub fn tags(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for tag in raw {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tag.len() > 50 {
            return Err("each tag must be 1 to 50 characters".into());
        }
        if !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(format!(
                "tag '{tag}' may contain only letters, digits, '-', '_', '.' and ':'"
            ));
        }
        out.push(tag);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    Ok(out)
}

/// A CPU count as a decimal string (`"2"`, `"0.5"`) → NanoCPUs, exactly (no float rounding).
/// Between 0.01 and 1024 CPUs; the host's own count is checked by the fleet, which knows it.
pub fn parse_cpu(value: &str) -> Result<i64, String> {
    let bad = || format!("'{value}' is not a CPU count like \"2\" or \"0.5\"");
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || whole.len() > 4
        || frac.len() > 9
        || (value.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut frac_nanos: i64 = 0;
    for (i, d) in frac.chars().enumerate() {
        let digit = i64::from(d.to_digit(10).unwrap_or(0));
        frac_nanos += digit * 10_i64.pow(8 - i as u32);
    }
    let nanos = whole * 1_000_000_000 + frac_nanos;
    if nanos < 10_000_000 {
        return Err("must be at least 0.01 CPUs".into());
    }
    if nanos > 1024 * 1_000_000_000 {
        return Err("must be at most 1024 CPUs".into());
    }
    Ok(nanos)
}

/// Smallest memory limit accepted: below this an agent runtime cannot start.
pub const MIN_MEMORY_BYTES: i64 = 64 * 1024 * 1024;

/// A memory size (`"4g"`, `"512m"`, `"512Mi"`, `"1073741824"`) → bytes. Units are binary
/// (k = 1024), as in Docker's `--memory`. Between 64 MiB and 1 TiB.
pub fn parse_memory(value: &str) -> Result<i64, String> {
    let bad = || format!("'{value}' is not a memory size like \"4g\" or \"512m\"");
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    if number.is_empty() || number.len() > 15 {
        return Err(bad());
    }
    let number: i64 = number.parse().map_err(|_| bad())?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = number.checked_shl(shift).filter(|b| b >> shift == number);
    let bytes = bytes.ok_or_else(|| "must be at most 1t".to_string())?;
    if bytes < MIN_MEMORY_BYTES {
        return Err("must be at least 64m".into());
    }
    if bytes > 1 << 40 {
        return Err("must be at most 1t".into());
    }
    Ok(bytes)
}

/// A user's email: one `@`, a non-empty local part, a dotted domain, no spaces or control
/// characters, at most 254 characters. Returned lower-cased.
pub fn email(value: &str) -> Result<String, String> {
    let value = value.trim().to_lowercase();
    let bad = || format!("'{value}' is not a valid email address");
    if value.is_empty() || value.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = value.split_once('@').ok_or_else(bad)?;
    let valid_char = |c: char| c.is_ascii_graphic() && !matches!(c, '@' | '<' | '>' | '"' | '\\');
    if local.is_empty()
        || local.len() > 64
        || !local.chars().all(valid_char)
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(value)
}

/// A new password: 8 to 256 characters.
pub fn password(value: &str) -> Result<(), String> {
    let n = value.chars().count();
    if n < 8 {
        return Err("must be at least 8 characters".into());
    }
    if n > 256 {
        return Err("must be at most 256 characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_follow_dns_label_rules() {
        for ok in ["a", "agent-1", "0abc", &"a".repeat(63)] {
            assert!(agent_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Agent",
            "a_b",
            "a.b",
            "a b",
            "é",
            "a\u{0}",
            "../x",
            &"a".repeat(64),
            "context-stats",
            "autonomy-status",
        ] {
            assert!(agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_parses_exactly() {
        assert_eq!(parse_cpu("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpu("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpu(".25"), Ok(250_000_000));
        assert_eq!(parse_cpu("1.000000001"), Ok(1_000_000_001));
        for bad in [
            "", ".", "1.", "-1", "abc", "1e3", "0", "0.001", "NaN", "2000", " 1",
        ] {
            assert!(parse_cpu(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_parses_binary_units() {
        assert_eq!(parse_memory("4g"), Ok(4 << 30));
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("512Mi"), Ok(512 << 20));
        assert_eq!(parse_memory("1GB"), Ok(1 << 30));
        assert_eq!(parse_memory("134217728"), Ok(128 << 20));
        for bad in [
            "",
            "g",
            "4x",
            "-4g",
            "1m",
            "2t",
            "99999999999999999g",
            "4.5g",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags_are_normalised() {
        let raw = vec!["Prod".to_string(), "prod".into(), "staging".into()];
        assert_eq!(tags(&raw), Ok(vec!["prod".to_string(), "staging".into()]));
        assert!(tags(&["".to_string()]).is_err());
        assert!(tags(&["a b".to_string()]).is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email(" Alice@Example.COM "), Ok("alice@example.com".into()));
        for bad in ["", "alice", "@x.io", "a@b", "a@.io", "a b@x.io", "a@x..io"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }
}
