//! Kubernetes rules for label keys (`[prefix/]name`) and values, applied to selector strings.

/// `name`: 1–63 characters, alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric;
/// `prefix`: a DNS subdomain (lowercase alphanumerics, `-`, `.`), at most 253 characters.
pub fn key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err("the prefix before `/` must be 1 to 253 characters".into());
        }
        let ok = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !ok || !alnum_ends(p) {
            return Err("the prefix before `/` must be a DNS subdomain (lowercase letters, digits, `-`, `.`)".into());
        }
    }
    if name.is_empty() {
        return Err("the name must not be empty".into());
    }
    // Cilium's derived keys (`io.cilium.k8s.namespace.labels.<key>`) may exceed 63 characters.
    if name.len() > 253 {
        return Err("the name must be at most 253 characters".into());
    }
    name_chars(name)
}

/// Empty, or up to 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("a label value must be at most 63 characters".into());
    }
    name_chars(value)
}

fn name_chars(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed (only letters, digits, `-`, `_`, `.`)"
        ));
    }
    if !alnum_ends(s) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

fn alnum_ends(s: &str) -> bool {
    let first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let last = s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    first && last
}
