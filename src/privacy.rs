//! Personal-data controls: columns left out (`--drop-columns`) or replaced by a keyed hash
//! (`--hash-columns`, HMAC-SHA256 with `CUBE_EXTRACT_HASH_KEY`), applied to every batch before
//! it is encoded, so no original value of such a column reaches the destination.
//!
//! The policy is part of the dataset: it is recorded in `schema.json` (the patterns and a check
//! value of the key, never the key) and every later run must ask for the same one, or give
//! `--rewrite` to bring the existing files to the new one.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, StringArray};
use glob::{MatchOptions, Pattern};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What happens to one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    Keep,
    Drop,
    Hash,
}

/// The policy as recorded in `schema.json`: the patterns as given and a check value of the key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_columns: Vec<String>,
    /// `HMAC-SHA256(key, "cube-extract key check")` in hex: tells whether a later run uses the
    /// same key (else its digests would not join with the earlier ones), without storing the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
}

impl PolicySpec {
    pub fn is_empty(&self) -> bool {
        self.drop_columns.is_empty() && self.hash_columns.is_empty()
    }

    /// How this policy differs from `other`, in words, or `None` when they are the same.
    pub fn difference(&self, other: &PolicySpec) -> Option<String> {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        if self.drop_columns != other.drop_columns {
            return Some(format!(
                "--drop-columns is {} but the dataset was written with {}",
                list(&self.drop_columns),
                list(&other.drop_columns)
            ));
        }
        if self.hash_columns != other.hash_columns {
            return Some(format!(
                "--hash-columns is {} but the dataset was written with {}",
                list(&self.hash_columns),
                list(&other.hash_columns)
            ));
        }
        if !self.hash_columns.is_empty() && self.key_check != other.key_check {
            return Some(format!(
                "{} is not the key the dataset's columns were hashed with",
                crate::cli::env::HASH_KEY
            ));
        }
        None
    }
}

/// Why the personal-data options cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{option} {pattern:?} is not a valid pattern ({source}); use * and ? as wildcards, e.g. 'crm__standard_info__*'")]
    BadPattern {
        option: &'static str,
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("--hash-columns needs a key: set {} to a secret (the same one on every run, so digests stay joinable)", crate::cli::env::HASH_KEY)]
    NoKey,
}

/// The patterns of a policy, compiled.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    drop: Vec<Pattern>,
    hash: Vec<Pattern>,
}

impl Matcher {
    /// Compiles a spec's patterns; the error names the bad one.
    pub fn new(spec: &PolicySpec) -> Result<Matcher, PolicyError> {
        let compile = |option: &'static str, globs: &[String]| {
            globs
                .iter()
                .map(|g| {
                    Pattern::new(g).map_err(|source| PolicyError::BadPattern {
                        option,
                        pattern: g.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Matcher {
            drop: compile("--drop-columns", &spec.drop_columns)?,
            hash: compile("--hash-columns", &spec.hash_columns)?,
        })
    }

    /// What happens to `column`; dropping wins over hashing.
    pub fn treatment(&self, column: &str) -> Treatment {
        let matches =
            |patterns: &[Pattern]| patterns.iter().any(|p| p.matches_with(column, MATCHING));
        if matches(&self.drop) {
            Treatment::Drop
        } else if matches(&self.hash) {
            Treatment::Hash
        } else {
            Treatment::Keep
        }
    }
}

/// The policy of a run, ready to apply.
#[derive(Clone, Default)]
pub struct Policy {
    spec: PolicySpec,
    matcher: Matcher,
    key: Option<Arc<HmacSha256>>,
}

impl std::fmt::Debug for Policy {
    // The key never appears, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("spec", &self.spec).finish()
    }
}

/// Column names match exactly as written: case matters, and `*` also crosses `/` and `.`.
const MATCHING: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Policy {
    /// Builds the policy from the options and the key (if set). The error is one sentence.
    pub fn new(drop: &[String], hash: &[String], key: Option<&str>) -> Result<Policy, PolicyError> {
        let mut spec = PolicySpec {
            drop_columns: drop.to_vec(),
            hash_columns: hash.to_vec(),
            key_check: None,
        };
        let matcher = Matcher::new(&spec)?;
        let key = match (hash.is_empty(), key.filter(|k| !k.is_empty())) {
            (true, _) => None,
            (false, None) => return Err(PolicyError::NoKey),
            (false, Some(k)) => Some(Arc::new(
                HmacSha256::new_from_slice(k.as_bytes()).expect("HMAC takes keys of any length"),
            )),
        };
        spec.key_check = key
            .as_ref()
            .map(|k| digest_hex(k, b"cube-extract key check"));
        Ok(Policy { spec, matcher, key })
    }

    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// What happens to `column`; dropping wins over hashing.
    pub fn treatment(&self, column: &str) -> Treatment {
        self.matcher.treatment(column)
    }

    /// The column with every value replaced by its HMAC-SHA256 in hex. Null stays null and
    /// `""` stays `""` (neither carries personal data, and both stay recognisable).
    pub fn hash_column(&self, column: &ArrayRef) -> ArrayRef {
        let key = self
            .key
            .as_ref()
            .expect("a policy that hashes has a key (checked in Policy::new)");
        let text = arrow_cast::cast(column, &arrow_schema::DataType::Utf8)
            .expect("every column type casts to Utf8");
        let strings = text
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8 gives a StringArray");
        let hashed: StringArray = strings
            .iter()
            .map(|v| {
                v.map(|s| {
                    if s.is_empty() {
                        String::new()
                    } else {
                        digest_hex(key, s.as_bytes())
                    }
                })
            })
            .collect();
        Arc::new(hashed)
    }
}

fn digest_hex(key: &HmacSha256, value: &[u8]) -> String {
    let mut mac = key.clone();
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        write!(out, "{b:02x}").expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(drop: &[&str], hash: &[&str], key: Option<&str>) -> Result<Policy, PolicyError> {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Policy::new(&v(drop), &v(hash), key)
    }

    #[test]
    fn drop_wins_over_hash_and_globs_match_whole_names() {
        let p = policy(
            &["crm__standard_info__email"],
            &["crm__standard_info__*"],
            Some("k"),
        )
        .unwrap();
        assert_eq!(p.treatment("crm__standard_info__email"), Treatment::Drop);
        assert_eq!(p.treatment("crm__standard_info__name"), Treatment::Hash);
        assert_eq!(p.treatment("crm__customer_id"), Treatment::Keep);
        assert_eq!(p.treatment("x_crm__standard_info__name"), Treatment::Keep);
        assert_eq!(p.treatment("CRM__STANDARD_INFO__NAME"), Treatment::Keep);
    }

    #[test]
    fn hashing_needs_a_key_and_bad_globs_are_named() {
        let e = policy(&[], &["crm__*"], None).unwrap_err().to_string();
        assert!(e.contains("CUBE_EXTRACT_HASH_KEY"), "{e}");
        let e = policy(&["crm__[x"], &[], None).unwrap_err().to_string();
        assert!(e.contains("--drop-columns \"crm__[x\""), "{e}");
        assert!(policy(&["a*"], &[], None).is_ok());
    }

    #[test]
    fn digests_are_keyed_stable_hex_and_keep_null_and_empty() {
        let a = policy(&[], &["*"], Some("key one")).unwrap();
        let b = policy(&[], &["*"], Some("key two")).unwrap();
        let col: ArrayRef = Arc::new(StringArray::from(vec![
            Some("Kari Nordmann"),
            None,
            Some(""),
        ]));
        let ha = a.hash_column(&col);
        let ha = ha.as_any().downcast_ref::<StringArray>().unwrap();
        let hb = b.hash_column(&col);
        let hb = hb.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ha.value(0).len(), 64);
        assert!(ha.value(0).bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(ha.value(0), hb.value(0), "another key, another digest");
        let again = a.hash_column(&col);
        assert_eq!(
            again
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0),
            ha.value(0)
        );
        assert!(ha.is_null(1));
        assert_eq!(ha.value(2), "");
        assert_ne!(a.spec().key_check, b.spec().key_check);
        assert!(!format!("{a:?}").contains("key one"));
    }

    #[test]
    fn differences_are_named() {
        let a = policy(&[], &["crm__*"], Some("k")).unwrap();
        let b = policy(&[], &["crm__*"], Some("other")).unwrap();
        let c = policy(&["x"], &["crm__*"], Some("k")).unwrap();
        assert_eq!(a.spec().difference(a.spec()), None);
        assert!(a
            .spec()
            .difference(b.spec())
            .unwrap()
            .contains("not the key"));
        assert!(c
            .spec()
            .difference(a.spec())
            .unwrap()
            .contains("--drop-columns is x"));
    }
}
