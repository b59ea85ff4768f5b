//! The registry of every diagnostic code: the front end's and the lint rules'. `lint --explain`,
//! SARIF rule lists and Documentation/lint.md are built from it.

use super::Code;
use std::sync::LazyLock;

/// Every code, sorted by code.
pub static ALL: LazyLock<Vec<&'static Code>> = LazyLock::new(|| {
    let mut all: Vec<&'static Code> = crate::front::FRONT_CODES.to_vec();
    all.extend_from_slice(crate::lint::LINT_CODES);
    all.sort_by_key(|c| c.code);
    all
});

/// Looks a code up by its identifier (`CP2003`, case-insensitive) or its name (`shadowed-rule`).
pub fn find(query: &str) -> Option<&'static Code> {
    ALL.iter()
        .copied()
        .find(|c| c.code.eq_ignore_ascii_case(query) || c.name == query)
}

/// The reference section of Documentation/lint.md: every code with its name, severity and doc.
pub fn markdown() -> String {
    let mut out = String::new();
    for c in ALL.iter() {
        out.push_str(&format!(
            "### {} `{}` ({})\n\n{}\n\n",
            c.code,
            c.name,
            c.severity.name(),
            c.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for c in ALL.iter() {
            assert!(codes.insert(c.code), "duplicate code {}", c.code);
            assert!(names.insert(c.name), "duplicate name {}", c.name);
            let digits = c.code.strip_prefix("CP").unwrap_or("");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "bad code {}",
                c.code
            );
            let kebab = c.name.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
            assert!(kebab, "name {} is not kebab-case", c.name);
            assert!(
                c.doc.len() > 40 && c.doc.ends_with('.'),
                "{} needs a real doc",
                c.code
            );
        }
    }

    #[test]
    fn find_by_code_or_name() {
        let first = ALL[0];
        assert_eq!(find(&first.code.to_lowercase()), Some(first));
        assert_eq!(find(first.name), Some(first));
        assert_eq!(find("CP0000"), None);
    }
}
