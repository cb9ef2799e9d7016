//! Kaggle's rules for `dataset-metadata.json` (see DOMAIN.md §5) and the
//! file itself: part slugs and titles, field-length checks with messages that
//! name the field, the value and the rule, and the rendered JSON.

use serde_json::{json, Value};

/// Title length, in characters, that Kaggle accepts.
pub const TITLE_CHARS: (usize, usize) = (6, 50);
/// Slug length, in characters, that Kaggle accepts.
pub const SLUG_CHARS: (usize, usize) = (6, 50);
/// Subtitle length, in characters, that Kaggle accepts.
pub const SUBTITLE_CHARS: (usize, usize) = (20, 80);
/// The metadata file name the Kaggle CLI reads from a dataset folder.
pub const METADATA_NAME: &str = "dataset-metadata.json";

/// Digits of part numbers: at least three (`-part-001`).
#[must_use]
pub fn part_digits(parts: usize) -> usize {
    parts.to_string().len().max(3)
}

/// The folder name and slug of part `i` (1-based) of `n`: `PREFIX-part-001`.
#[must_use]
pub fn part_slug(prefix: &str, i: usize, n: usize) -> String {
    format!("{prefix}-part-{i:0w$}", w = part_digits(n))
}

/// The title of part `i` of `n`: `TITLE (part 1 of 3)`.
#[must_use]
pub fn part_title(title: &str, i: usize, n: usize) -> String {
    format!("{title} (part {i} of {n})")
}

/// The default subtitle of part `i` of `n`.
#[must_use]
pub fn default_subtitle(samples: usize, i: usize, n: usize) -> String {
    format!("Seismic inversion training data, {samples} samples (part {i} of {n})")
}

fn length_problem(
    field: &str,
    value: &str,
    (lo, hi): (usize, usize),
    note: &str,
) -> Option<String> {
    let n = value.chars().count();
    (n < lo || n > hi)
        .then(|| format!("{field} `{value}` is {n} characters{note}; Kaggle accepts {lo}–{hi}"))
}

/// Problems with a slug prefix given that parts are named `PREFIX-part-NNN`
/// and there are `parts` of them (empty when it is fine).
#[must_use]
pub fn slug_problems(prefix: &str, parts: usize) -> Vec<String> {
    let mut out = Vec::new();
    if prefix.is_empty() {
        out.push("slug must not be empty".to_string());
    }
    let bad: Vec<String> = prefix
        .chars()
        .filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        .map(|c| match c {
            ' ' => "space".to_string(),
            c if c.is_uppercase() => format!("uppercase `{c}`"),
            c => format!("`{c}`"),
        })
        .collect();
    if !bad.is_empty() {
        let mut uniq = bad.clone();
        uniq.dedup();
        out.push(format!(
            "slug `{prefix}` may hold only lowercase letters, digits and hyphens (found {})",
            uniq.join(", ")
        ));
    }
    if prefix.starts_with('-') || prefix.ends_with('-') {
        out.push(format!(
            "slug `{prefix}` must not start or end with a hyphen"
        ));
    }
    let full = part_slug(prefix, parts.max(1), parts.max(1));
    if let Some(p) = length_problem("slug", &full, SLUG_CHARS, " with its part suffix") {
        out.push(p);
    }
    out
}

/// Problems with a title given the part suffix of `parts` parts.
#[must_use]
pub fn title_problems(title: &str, parts: usize) -> Vec<String> {
    let mut out = Vec::new();
    if title.trim() != title || title.is_empty() {
        out.push(format!(
            "title `{title}` must not be empty or start or end with spaces"
        ));
    }
    let n = parts.max(1);
    let full = part_title(title, n, n);
    if let Some(p) = length_problem("title", &full, TITLE_CHARS, " with its part suffix") {
        out.push(p);
    }
    out
}

/// Problems with a subtitle.
#[must_use]
pub fn subtitle_problems(subtitle: &str) -> Vec<String> {
    length_problem("subtitle", subtitle, SUBTITLE_CHARS, "")
        .into_iter()
        .collect()
}

/// Problems with the owner (a Kaggle user or organisation name).
#[must_use]
pub fn owner_problems(owner: &str) -> Vec<String> {
    if owner.is_empty()
        || !owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        vec![format!(
            "owner `{owner}` must be a Kaggle user name: letters, digits, `-` and `_`, not empty"
        )]
    } else {
        Vec::new()
    }
}

/// Problems with the license list: Kaggle needs exactly one.
#[must_use]
pub fn license_problems(licenses: &[String]) -> Vec<String> {
    match licenses {
        [] => vec!["license: exactly one license is required, found none (e.g. `CC0-1.0`)".into()],
        [one] if one.trim().is_empty() || one.contains(char::is_whitespace) => vec![format!(
            "license `{one}` is not a license name (e.g. `CC0-1.0`, `CC-BY-4.0`)"
        )],
        [_] => Vec::new(),
        many => vec![format!(
            "license: exactly one license is required, found {} ({})",
            many.len(),
            many.join(", ")
        )],
    }
}

/// The `dataset-metadata.json` value of one part.
#[must_use]
pub fn render(
    owner: &str,
    slug: &str,
    title: &str,
    subtitle: &str,
    license: &str,
    description: &str,
) -> Value {
    json!({
        "title": title,
        "id": format!("{owner}/{slug}"),
        "subtitle": subtitle,
        "description": description,
        "licenses": [{ "name": license }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        assert_eq!(part_slug("fwi-aug", 2, 3), "fwi-aug-part-002");
        assert_eq!(part_slug("fwi-aug", 7, 1200), "fwi-aug-part-0007");
        assert_eq!(part_title("FWI aug", 2, 3), "FWI aug (part 2 of 3)");
    }

    #[test]
    fn slug_rules() {
        assert!(slug_problems("fwi-aug", 3).is_empty());
        let e = slug_problems("My Data", 1).join("; ");
        assert!(e.contains("uppercase `M`") && e.contains("space"), "{e}");
        let e = slug_problems("-abc", 1).join("; ");
        assert!(e.contains("hyphen"), "{e}");
        // 41 characters + "-part-001" = 50: fine; 42 is one too many.
        assert!(slug_problems(&"a".repeat(41), 5).is_empty());
        let e = slug_problems(&"a".repeat(42), 5).join("; ");
        assert!(e.contains("51 characters") && e.contains("6–50"), "{e}");
        // Very short prefixes still reach 6 characters with the suffix.
        assert!(slug_problems("a", 1).is_empty());
    }

    #[test]
    fn title_rules() {
        assert!(title_problems("FWI augmented", 3).is_empty());
        let e = title_problems(&"T".repeat(40), 3).join("; ");
        assert!(e.contains("54 characters") && e.contains("6–50"), "{e}");
        let e = title_problems(" x", 1).join("; ");
        assert!(e.contains("spaces"), "{e}");
        assert!(title_problems("", 1).iter().any(|m| m.contains("empty")));
    }

    #[test]
    fn license_rules() {
        assert!(license_problems(&["CC0-1.0".into()]).is_empty());
        assert!(license_problems(&[])[0].contains("found none"));
        let e = license_problems(&["CC0-1.0".into(), "CC-BY-4.0".into()]).join("");
        assert!(e.contains("found 2") && e.contains("CC-BY-4.0"), "{e}");
    }

    #[test]
    fn subtitle_and_owner_rules() {
        assert!(subtitle_problems(&default_subtitle(123_456_789, 999, 999)).is_empty());
        assert!(subtitle_problems("short")[0].contains("20–80"));
        assert!(owner_problems("alice").is_empty());
        assert!(!owner_problems("a/b").is_empty());
        assert!(!owner_problems("").is_empty());
    }
}
